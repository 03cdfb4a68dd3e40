"""lmms-eval's samples files, turned into our sample rows: with their documents (``log_samples`` in memory) or as
0.7.3 writes them (``doc_id, target, filtered_resps, <metric dicts>``; documents and arguments dropped).

An answer must be text. A multiple-choice line holds one (log-likelihood, is-greedy) pair per choice instead:
its answer is the likeliest choice -- the smallest first element, as lmms-eval 0.7.3 picks (its model outputs are
losses) -- named by the task's ``answer_options`` in order, and a note says so. Anything else (a lone pair, null, a
number) is refused with the file, line and field.
"""

from __future__ import annotations

import json
import numbers
from pathlib import Path

from ..readers.ids import question_id


def _is_pair(x) -> bool:
    return (isinstance(x, (list, tuple)) and len(x) == 2 and isinstance(x[0], numbers.Real)
            and not isinstance(x[0], bool) and isinstance(x[1], bool))


def lmms_answer(row: dict, task, where: str, notes: list) -> str:
    """The answer text of one lmms-eval sample line (see the module docstring)."""
    resp = row["filtered_resps"] if "filtered_resps" in row else row.get("resps")
    while isinstance(resp, list) and len(resp) == 1 and not _is_pair(resp[0]) and not _is_pair(resp):
        resp = resp[0]
    if isinstance(resp, list) and len(resp) > 1 and all(_is_pair(x) for x in resp):
        return _likeliest(resp, task, where, notes)
    if isinstance(resp, str):
        return resp
    shown = json.dumps(resp)[:60]
    what = "a log-likelihood pair, not an answer" if _is_pair(resp) else f"{type(resp).__name__} {shown}"
    raise ValueError(f"{where}: filtered_resps is {what}; expected the model's answer as text (or one "
                     "log-likelihood pair per choice of a multiple-choice task)")


def _likeliest(pairs, task, where: str, notes: list) -> str:
    options = list(task.answer_options)
    if len(options) != len(pairs):
        raise ValueError(f"{where}: {len(pairs)} log-likelihood pairs (a multiple-choice line) but task "
                         f"{task.name} has {len(options)} answer options {options}: these cannot be matched")
    note = (f"multiple-choice lines: the answer is the likeliest choice (the smallest loss, as lmms-eval 0.7.3 "
            f"picks), named by the task's answer options in order: {', '.join(options)}")
    if note not in notes:
        notes.append(note)
    k = min(range(len(pairs)), key=lambda i: pairs[i][0])
    return options[k]


def _target(row: dict, task) -> dict:
    """A multiple-choice target is an index into the choices: the option's text instead."""
    t = row.get("target")
    if isinstance(t, int) and not isinstance(t, bool) and task.answer_options and 0 <= t < len(task.answer_options):
        return dict(row, target=task.answer_options[t])
    return row


def _question_id(row) -> str | None:
    """The question id lmms-eval keeps inside its per-metric dicts (``<task>_<metric>: {question_id, ...}``)."""
    for value in row.values():
        if isinstance(value, dict) and "question_id" in value:
            return str(value["question_id"])
    return None


def from_lmms_eval(task, rows: list[dict], path: Path, notes: list) -> list[dict]:
    out = []
    for i, r in enumerate(rows, 1):
        doc = r["doc"]
        missing = [c for c in task.required_columns if c != "image" and c not in doc]
        if missing:
            raise ValueError(f"lmms-eval sample {r.get('doc_id')} lacks {missing} in its doc")
        out.append({"question_id": str(doc.get("question_id", doc.get("id", r.get("doc_id")))),
                    "split": task.split_of(doc), "answer": lmms_answer(r, task, f"{path}: line {i}", notes),
                    "references": task.hooks.references(doc)})
    return out


def from_lmms_eval_saved(task, rows: list[dict], references: Path | None, path: Path, notes: list) -> list[dict]:
    """With ``references``: joined by question id (from the metric dicts), else by ``doc_id`` = row position in the
    references (lmms-eval numbers the documents in dataset order). Without: what the file itself allows, through
    the task's ``from_lmms_target`` hook (its ``target`` and metric dicts), with a note of what is missing."""
    if references is not None:
        docs = reference_docs(task, references)
        by_id = {question_id(d): d for d in docs}
        out = []
        for i, r in enumerate(rows, 1):
            qid = _question_id(r)
            doc = by_id.get(qid) if qid is not None else _nth(docs, r.get("doc_id"))
            if doc is None:
                raise ValueError(f"lmms-eval sample line {i} (doc_id {r.get('doc_id')}, question {qid}) has no "
                                 f"reference in {references}")
            out.append({"question_id": question_id(doc), "split": task.split_of(doc),
                        "answer": lmms_answer(r, task, f"{path}: line {i}", notes),
                        "references": task.hooks.references(doc)})
        return out
    from_target = getattr(task.hooks, "from_lmms_target", None)
    if from_target is None:
        raise ValueError(f"lmms-eval samples files keep no {task.name} references that we can score from: pass "
                         "--references (the task's data: official layout or hub-schema file)")
    out = []
    for i, r in enumerate(rows, 1):
        ref = from_target(_target(r, task))
        out.append({"question_id": _question_id(r) or str(r.get("doc_id", i)), "split": ref["split"],
                    "answer": lmms_answer(r, task, f"{path}: line {i}", notes), "references": ref["references"]})
    notes.append(f"scored from the samples file alone (lmms-eval's target); {from_target.__doc__.strip()}")
    return out


def _nth(docs, doc_id):
    try:
        k = int(doc_id)
    except (TypeError, ValueError):
        return None
    return docs[k] if 0 <= k < len(docs) else None


def reference_docs(task, references: Path):
    from ..data.sources import load_docs

    try:
        docs, _ = load_docs(task, str(references), need_images=False)
    except (ValueError, FileNotFoundError) as e:  # the loader speaks of --data; here the file came as --references
        raise type(e)(str(e).replace("--data ", "--references ")) from None
    return docs
