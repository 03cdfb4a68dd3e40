"""TextVQA: VQA soft accuracy with the full EvalAI processor; OCR tokens available to the prompt."""

from __future__ import annotations

from pathlib import Path

from ..data.files import read_json
from ..scoring import vqa
from . import Hooks
from .common import question_fields, vqa_aggregate, vqa_answers


def fields(doc):
    f = question_fields(doc)
    f["ocr"] = ", ".join(str(t) for t in (doc.get("ocr_tokens") or []))
    return f


def score_one(answer, refs, opts):
    return vqa.full_processor(answer or ""), vqa.soft_accuracy(answer, refs, textvqa=True)


def load_layout(folder: Path):
    """``TextVQA_0.5.1_val.json`` + ``train_images/<image_id>.jpg``."""
    qf = folder / "TextVQA_0.5.1_val.json"
    if not qf.is_file():
        raise FileNotFoundError(f"{folder}: TextVQA layout needs TextVQA_0.5.1_val.json")
    root = folder / "train_images" if (folder / "train_images").is_dir() else folder
    rows = [{"question_id": d["question_id"], "question": d["question"], "answers": d["answers"],
             "ocr_tokens": d.get("ocr_tokens", []), "image_id": d["image_id"],
             "image": str(root / f"{d['image_id']}.jpg")} for d in read_json(qf)["data"]]
    return rows, [qf]


HOOKS = Hooks(fields, vqa_answers, score_one, vqa_aggregate, load_layout=load_layout)
