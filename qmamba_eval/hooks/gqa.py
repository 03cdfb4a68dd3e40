"""GQA: exact match (``scoring.gqa``)."""

from __future__ import annotations

from pathlib import Path

from ..readers.files import first_match, read_json
from ..scoring import gqa
from . import Hooks
from .common import accuracy_aggregate, question_fields


def from_lmms_target(row: dict) -> dict:
    """lmms-eval's GQA target is the answer; every question counts in one split."""
    return {"split": "all", "references": str(row.get("target", ""))}


def score_one(answer, ref, opts):
    rule = opts.get("gqa_rule", "lmms")
    return gqa.normalize(answer, rule), gqa.exact_match(answer, ref, rule=rule)


def load_layout(folder: Path):
    """``testdev_balanced_questions.json`` (or any ``*questions*.json``) + ``images/<imageId>.jpg``."""
    if folder.is_file():  # the questions file itself
        qf, folder = folder, folder.parent
    else:
        qf = folder / "testdev_balanced_questions.json"
        qf = qf if qf.is_file() else first_match(folder, "*questions*.json")
    if qf is None:
        raise FileNotFoundError(f"{folder}: GQA layout needs testdev_balanced_questions.json")
    root = folder / "images" if (folder / "images").is_dir() else folder
    questions = read_json(qf)
    if not isinstance(questions, dict):
        raise ValueError(f"{qf}: expected GQA's {{questionId: {{imageId, question, answer}}}} object")
    rows = []
    for n, (qid, q) in enumerate(questions.items(), 1):
        missing = [k for k in ("imageId", "question", "answer") if not isinstance(q, dict) or k not in q]
        if missing:
            raise ValueError(f"{qf}: question {n} (id {qid}) lacks field(s) {missing}")
        rows.append({"id": qid, "imageId": q["imageId"], "question": q["question"], "answer": q["answer"],
                     "fullAnswer": q.get("fullAnswer"), "image": str(root / f"{q['imageId']}.jpg")})
    return rows, [qf]


HOOKS = Hooks(question_fields, lambda doc: str(doc["answer"]), score_one, accuracy_aggregate,
              load_layout=load_layout, from_lmms_target=from_lmms_target)
