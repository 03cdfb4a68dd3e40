"""Re-score predictions made anywhere: our samples files, lmms-eval ``samples_*.jsonl``, LLaVA answer files.

    run_eval.py score --task pope --predictions answers.jsonl --references ../POPE/output/coco \
        --questions llava_pope_test.jsonl
    run_eval.py score --task mme --predictions mme_answers.jsonl --references MME/eval_tool/Your_Results

Every format is turned into our sample rows (answer, references, split) and scored by the task's hooks.
"""

from __future__ import annotations

from pathlib import Path

from ..readers.files import read_jsonl
from ..readers.ids import question_id
from ..tasks import Task, get_task, task_options
from ..runner.scoring import answer_warnings
from .checks import check_predictions
from .lmms import from_lmms_eval, from_lmms_eval_saved, reference_docs


def detect(rows: list[dict]) -> str:
    if not rows:
        raise ValueError("the predictions file is empty")
    first = rows[0]
    if "answer" in first and "references" in first:
        return "qmamba"
    if "doc" in first and ("filtered_resps" in first or "resps" in first):
        return "lmms_eval"
    if "doc_id" in first and ("filtered_resps" in first or "resps" in first):
        return "lmms_eval_saved"  # lmms-eval 0.7.3's saved samples: doc and arguments dropped
    if "question_id" in first and "text" in first:
        return "llava"
    raise ValueError(f"unrecognised predictions format (keys {sorted(first)}); expected our samples file, "
                     "lmms-eval samples (doc_id + filtered_resps) or LLaVA answers (question_id + text)")


def load_predictions(task: Task, predictions: Path, references: Path | None = None,
                     questions: Path | None = None, notes: list | None = None) -> tuple[str, list[dict]]:
    notes = [] if notes is None else notes
    rows = read_jsonl(predictions)
    fmt = detect(rows)
    if fmt == "qmamba":
        return fmt, rows
    if fmt == "lmms_eval":
        return fmt, from_lmms_eval(task, rows, predictions, notes)
    if fmt == "lmms_eval_saved":
        return fmt, from_lmms_eval_saved(task, rows, references, predictions, notes)
    if references is None:
        raise ValueError(f"LLaVA answer files carry no ground truth: pass --references for task {task.name}")
    if task.hooks.read_answers is not None:  # the benchmark's own way of joining answers to references
        return fmt, task.hooks.read_answers(task, rows, references, questions)
    return fmt, from_answers_and_data(task, rows, references, notes)


def from_answers_and_data(task: Task, rows: list[dict], references: Path, notes: list | None = None) -> list[dict]:
    """``{question_id, text}`` answers joined by question id to any data source we can load (official layout,
    hub-schema jsonl/parquet) -- VQAv2, GQA, TextVQA."""
    docs = reference_docs(task, references)
    by_id = {question_id(d): d for d in docs}
    by_key = {}
    if task.hooks.join_keys:  # the benchmark's second way to match answers to references
        answer_key, doc_key = task.hooks.join_keys
        by_key = {doc_key(d): d for d in docs}
    out = []
    for i, r in enumerate(rows, 1):
        doc = by_id.get(str(r["question_id"]))
        if doc is None and by_key:
            doc = by_key.get(answer_key(r))
        if doc is None:
            raise ValueError(f"answer line {i}: question {r['question_id']} has no reference in {references}")
        out.append({"question_id": question_id(doc), "split": task.split_of(doc), "answer": r["text"],
                    "references": task.hooks.references(doc)})
    answered = len({o["question_id"] for o in out})
    if answered < len(docs) and notes is not None:  # said, not silent: metrics over the answered questions only
        import warnings

        notes.append(f"the answers cover {answered} of the {len(docs)} questions in {references}; "
                     f"the metrics are over those {answered} only")
        warnings.warn(notes[-1], stacklevel=2)
    return out


def rescore(task_name: str, predictions, references=None, questions=None, options: dict | None = None) -> dict:
    task = get_task(task_name)
    opts = task_options(task, options or {})
    notes: list = []
    fmt, samples = load_predictions(task, Path(predictions), references and Path(references),
                                    questions and Path(questions), notes)
    samples = check_predictions(task, fmt, samples, Path(predictions), notes)
    try:
        for s in samples:
            if s.get("error"):  # stays an error sample, as in the run: wrong, parsed as no answer (never "yes")
                s["parsed"], s["score"] = "", 0.0
            else:
                s["parsed"], s["score"] = task.hooks.score_one(s["answer"], s["references"], opts)
        metrics = task.hooks.aggregate(samples, opts)
    except (TypeError, KeyError, AttributeError, IndexError) as e:
        raise ValueError(f"{predictions}: its references are not {task.name}'s ({type(e).__name__}: {e}); "
                         "is it another task's file? check --task") from None
    if samples and all(s["score"] is None for s in samples):
        raise ValueError(f"{predictions}: none of its {len(samples)} answers could be scored as {task.name} (no "
                         "reference answers: a test split, or another task's references? check --task and "
                         "--references)")
    for w in answer_warnings(samples):
        notes.append(w)
    n_errors = sum(1 for s in samples if s.get("error"))
    if n_errors:
        notes.append(f"{n_errors} of {len(samples)} samples are errors (no readable image in the run): scored as "
                     "wrong")
    bad = [k for k, v in metrics.items() if isinstance(v, float) and v != v]
    if bad:
        notes.append(f"metric(s) {bad} are not numbers (NaN)")
    return {"task": task.name, "version": task.version, "format": fmt, "options": opts,
            "n_samples": len(samples), "n_errors": sum(1 for s in samples if s.get("error")), "notes": notes,
            "metrics": metrics}
