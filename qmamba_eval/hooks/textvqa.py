"""TextVQA: VQA soft accuracy with the full EvalAI processor; OCR tokens available to the prompt."""

from __future__ import annotations

from pathlib import Path

from ..readers.files import read_json
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
    qf = folder if folder.is_file() else folder / "TextVQA_0.5.1_val.json"
    folder = qf.parent
    if not qf.is_file():
        raise FileNotFoundError(f"{folder}: TextVQA layout needs TextVQA_0.5.1_val.json")
    root = folder / "train_images" if (folder / "train_images").is_dir() else folder
    rows = [{"question_id": d["question_id"], "question": d["question"], "answers": d["answers"],
             "ocr_tokens": d.get("ocr_tokens", []), "image_id": d["image_id"],
             "image": str(root / f"{d['image_id']}.jpg")} for d in read_json(qf)["data"]]
    return rows, [qf]


INSTRUCTION = "Answer the question using a single word or phrase."
OCR_LINE = "Reference OCR token:"


def question_from_prompt(prompt: str) -> str:
    """The question line of a LLaVA TextVQA prompt: neither the OCR-token line nor the answer instruction."""
    lines = [ln.strip() for ln in str(prompt).split("\n")]
    rest = [ln for ln in lines if ln and not ln.startswith(OCR_LINE) and ln != INSTRUCTION]
    return rest[0] if rest else ""


def answer_join_key(row: dict) -> tuple:
    """LLaVA's TextVQA answers carry the image id in ``question_id``: like LLaVA's eval_textvqa.py, join them on
    (image id, question text from the prompt, lower-cased)."""
    return str(row["question_id"]), question_from_prompt(row.get("prompt", "")).lower()


def doc_join_key(doc: dict) -> tuple:
    return str(doc.get("image_id")), str(doc["question"]).strip().lower()


HOOKS = Hooks(fields, vqa_answers, score_one, vqa_aggregate, load_layout=load_layout,
              join_keys=(answer_join_key, doc_join_key))
