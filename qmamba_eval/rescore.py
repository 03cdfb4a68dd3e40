"""Re-score predictions made anywhere: our samples files, lmms-eval ``samples_*.jsonl``, LLaVA answer files.

    run_eval.py score --task pope --predictions answers.jsonl --references ../POPE/output/coco \
        --questions llava_pope_test.jsonl
    run_eval.py score --task mme --predictions mme_answers.jsonl --references MME/eval_tool/Your_Results

Every format is turned into our sample rows (answer, references, split) and scored by the task's hooks.
"""

from __future__ import annotations

from pathlib import Path

from .data.files import read_jsonl
from .data.ids import question_id
from .tasks import Task, get_task, task_options


def detect(rows: list[dict]) -> str:
    if not rows:
        raise ValueError("the predictions file is empty")
    first = rows[0]
    if "answer" in first and "references" in first:
        return "qmamba"
    if "doc" in first and ("filtered_resps" in first or "resps" in first):
        return "lmms_eval"
    if "question_id" in first and "text" in first:
        return "llava"
    raise ValueError(f"unrecognised predictions format (keys {sorted(first)}); expected our samples file, "
                     "lmms-eval samples (doc + filtered_resps) or LLaVA answers (question_id + text)")


def _lmms_answer(row) -> str:
    resp = row.get("filtered_resps") or row.get("resps")
    while isinstance(resp, list):
        resp = resp[0] if resp else ""
    return "" if resp is None else str(resp)


def from_lmms_eval(task: Task, rows: list[dict]) -> list[dict]:
    out = []
    for r in rows:
        doc = r["doc"]
        missing = [c for c in task.required_columns if c != "image" and c not in doc]
        if missing:
            raise ValueError(f"lmms-eval sample {r.get('doc_id')} lacks {missing} in its doc")
        out.append({"question_id": str(doc.get("question_id", doc.get("id", r.get("doc_id")))),
                    "split": task.split_of(doc), "answer": _lmms_answer(r), "references": task.hooks.references(doc)})
    return out


def load_predictions(task: Task, predictions: Path, references: Path | None = None,
                     questions: Path | None = None) -> tuple[str, list[dict]]:
    rows = read_jsonl(predictions)
    fmt = detect(rows)
    if fmt == "qmamba":
        return fmt, rows
    if fmt == "lmms_eval":
        return fmt, from_lmms_eval(task, rows)
    if references is None:
        raise ValueError(f"LLaVA answer files carry no ground truth: pass --references for task {task.name}")
    if task.hooks.read_answers is not None:  # the benchmark's own way of joining answers to references
        return fmt, task.hooks.read_answers(task, rows, references, questions)
    return fmt, from_answers_and_data(task, rows, references)


def from_answers_and_data(task: Task, rows: list[dict], references: Path) -> list[dict]:
    """``{question_id, text}`` answers joined by question id to any data source we can load (official layout,
    hub-schema jsonl/parquet) -- VQAv2, GQA, TextVQA."""
    from .data.sources import load_docs

    docs, _ = load_docs(task, str(references))
    by_id = {question_id(d): d for d in docs}
    out = []
    for r in rows:
        doc = by_id.get(str(r["question_id"]))
        if doc is None:
            raise ValueError(f"answer for question {r['question_id']} has no reference in {references}")
        out.append({"question_id": str(r["question_id"]), "split": task.split_of(doc), "answer": r["text"],
                    "references": task.hooks.references(doc)})
    return out


def rescore(task_name: str, predictions, references=None, questions=None, options: dict | None = None) -> dict:
    task = get_task(task_name)
    opts = task_options(task, options or {})
    fmt, samples = load_predictions(task, Path(predictions), references and Path(references),
                                    questions and Path(questions))
    for s in samples:
        s["parsed"], s["score"] = task.hooks.score_one(s.get("answer", ""), s["references"], opts)
        if s.get("error"):
            s["score"] = 0.0
    return {"task": task.name, "version": task.version, "format": fmt, "options": opts,
            "n_samples": len(samples), "metrics": task.hooks.aggregate(samples, opts)}
