"""Functions for the lmms-eval tasks in this folder: the embedded sample (qmamba_eval/assets/sample), whose rows
name their image file instead of holding it."""

from pathlib import Path

from PIL import Image

SAMPLE = Path(__file__).resolve().parents[2] / "qmamba_eval" / "assets" / "sample"
POST_PROMPT = "\nAnswer the question using a single word or phrase."  # lmms-eval's pope.yaml and our default


def doc_to_visual(doc):
    image = doc["image"]
    return [(image if isinstance(image, Image.Image) else Image.open(SAMPLE / "images" / image)).convert("RGB")]


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    return f"{doc['question'].strip()}{POST_PROMPT}"


def doc_to_target(doc):
    """Index into doc_to_choice ["Yes", "No"]."""
    return 0 if doc["answer"].strip().lower() == "yes" else 1
