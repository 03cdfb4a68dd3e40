"""Pieces shared by several hook modules."""

from __future__ import annotations

from collections import defaultdict


def mean_percent(xs) -> float:
    xs = list(xs)
    return 100.0 * sum(xs) / len(xs) if xs else 0.0


def scores_by_split(samples) -> dict:
    out = defaultdict(list)
    for s in samples:
        out[s.get("split") or "all"].append(s["score"])
    return out


def question_fields(doc) -> dict:
    q = str(doc["question"]).strip()
    return {"question": q, "Question": q[:1].upper() + q[1:].lower() if q else q}


def accuracy_aggregate(samples, opts) -> dict:
    """Mean score in percent, overall and per split; unscored samples (no references) only counted."""
    unscored = sum(1 for s in samples if s["score"] is None)
    samples = [s for s in samples if s["score"] is not None]
    if not samples:
        return {"unscored": unscored}  # a test split: the answers go to the submission file
    out = {"accuracy": mean_percent(s["score"] for s in samples)}
    splits = scores_by_split(samples)
    if len(splits) > 1 or "all" not in splits:
        for split, scores in sorted(splits.items()):
            out[f"{split}/accuracy"] = mean_percent(scores)
    return out


def vqa_aggregate(samples, opts) -> dict:
    """Accuracy, plus a count of questions whose answer list is not the standard 10 (scored all the same, with
    the official leave-one-out arithmetic; reported so nobody mistakes such data for the benchmark's)."""
    from ..scoring import vqa

    out = accuracy_aggregate(samples, opts)
    out.update(vqa.answer_list_warnings(s["references"] for s in samples))
    return out


def vqa_answers(doc):
    """The human answers of a VQA-style row as strings, or None where there are none (test splits)."""
    answers = doc.get("answers")
    if not answers:
        return None
    if isinstance(answers[0], dict):
        answers = [a["answer"] for a in answers]
    return [str(a) for a in answers]
