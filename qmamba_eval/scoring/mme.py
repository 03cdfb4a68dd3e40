"""MME: the official yes/no parse and per-category score 100*acc + 100*acc+.

acc is over questions, acc+ over images (both questions of an image right).  Perception sums ten categories
(max 2000), cognition four (max 800).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable

PERCEPTION = ("existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark",
              "artwork", "OCR")
COGNITION = ("commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning")


def parse(text: str) -> str:
    """Lower-case; exact yes/no, else yes/no within the first 4 characters, else 'other' (wrong)."""
    t = (text or "").lower()
    if t in ("yes", "no"):
        return t
    head = t[:4]
    if "yes" in head:
        return "yes"
    if "no" in head:
        return "no"
    return "other"


def scores(rows: Iterable[tuple[str, str, str, str]]) -> dict:
    """rows of (category, image key, parsed prediction, label) -> per-category and total scores."""
    by_cat = defaultdict(lambda: defaultdict(list))
    for category, image, pred, label in rows:
        by_cat[category][image].append(pred == label.strip().lower())
    if not by_cat:
        raise ValueError("no MME predictions to score")
    unknown = sorted(set(by_cat) - set(PERCEPTION) - set(COGNITION))
    if unknown:
        raise ValueError(f"unknown MME categories {unknown}")
    out = {"categories": {}}
    for cat, images in sorted(by_cat.items()):
        answers = [ok for oks in images.values() for ok in oks]
        acc = sum(answers) / len(answers)
        acc_plus = sum(all(oks) for oks in images.values()) / len(images)
        out["categories"][cat] = {"score": 100 * acc + 100 * acc_plus, "acc": acc, "acc_plus": acc_plus,
                                  "n": len(answers), "images": len(images)}
    c = out["categories"]
    out["perception"] = sum(c[k]["score"] for k in PERCEPTION if k in c)
    out["cognition"] = sum(c[k]["score"] for k in COGNITION if k in c)
    out["total"] = out["perception"] + out["cognition"]
    out["missing_categories"] = [k for k in PERCEPTION + COGNITION if k not in c]
    return out
