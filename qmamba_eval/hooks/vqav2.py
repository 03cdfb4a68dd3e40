"""VQAv2: VQA soft accuracy (``scoring.vqa``), per answer type; EvalAI submission file for test splits."""

from __future__ import annotations

import json
from pathlib import Path

from ..readers.files import coco_image_root, coco_val_name, first_match, read_json
from ..scoring import vqa
from . import Hooks
from .common import question_fields, vqa_aggregate, vqa_answers


def score_one(answer, refs, opts):
    parsed = vqa.normalize(vqa.clean_whitespace(answer or ""), rule=opts.get("vqa_rule", "lmms"))
    return parsed, None if refs is None else vqa.soft_accuracy(answer, refs, rule=opts.get("vqa_rule", "lmms"))


def load_layout(folder: Path):
    """``*questions*.json`` + ``*annotations*.json`` + COCO images (``val2014/`` or the folder itself)."""
    qf, af = first_match(folder, "*questions*.json"), first_match(folder, "*annotations*.json")
    if not (qf and af):
        raise FileNotFoundError(f"{folder}: VQAv2 layout needs *questions*.json and *annotations*.json")
    questions = read_json(qf)["questions"]
    anns = {a["question_id"]: a for a in read_json(af)["annotations"]}
    root = coco_image_root(folder)
    rows = []
    for q in questions:
        a = anns.get(q["question_id"])
        if a is None:
            raise ValueError(f"{af}: no annotation for question {q['question_id']}")
        rows.append({"question_id": q["question_id"], "question": q["question"], "answers": a["answers"],
                     "answer_type": a.get("answer_type"), "image": str(root / coco_val_name(q["image_id"]))})
    return rows, [qf, af]


def write_submission(samples: list, run_dir: Path) -> dict:
    """EvalAI's format, ``[{question_id, answer}]``, for test-dev / test runs (written for every run)."""
    path = Path(run_dir) / "submission_vqav2.json"
    path.write_text(json.dumps([{"question_id": int(s["question_id"]) if str(s["question_id"]).isdigit()
                                 else s["question_id"], "answer": s["answer"]} for s in samples]))
    return {"submission_file": path.name}


HOOKS = Hooks(question_fields, vqa_answers, score_one, vqa_aggregate, load_layout=load_layout,
              write_outputs=write_submission)
