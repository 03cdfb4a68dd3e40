"""MME: the official yes/no parse and per-category score 100*acc + 100*acc+.

Follows MME's ``eval_tool/calculation.py`` (shipped with MME_Benchmark_release_version; BradyFU/Awesome-
Multimodal-Large-Language-Models, Evaluation branch; the release carries no version number and we could not pin
a commit -- the agreement is checked by the issue-8 audit, which ran calculation.py on 2,374 real answers):
predictions and labels lower-cased; exactly "yes"/"no", else "yes" / "no" within the first 4 characters
(yes tested first), else "other" (wrong).  acc is over questions, acc+ over images (both questions of an image
right).  Perception sums ten categories (max 2000), cognition four (max 800).

calculation.py reads each image's two questions as a pair and asserts there are two (lmms-eval 0.7.3's
``mme_aggregate_results`` asserts the same); we score any number (acc+ then needs every question of the image
right) and ``irregular_images`` lists the images whose count is not two so that the aggregate can warn.

Differences from lmms-eval 0.7.3 (``tasks/mme/utils.py: parse_pred_ans``, "brought from Otter Eval"), which first
does ``pred.lower().strip().replace(".", "")``:
* leading whitespace: "  yes", "\\n\\nyes", "   no" are "other" here and in calculation.py (their first 4
  characters hold neither "yes" nor "no"), yes/no for lmms-eval;
* periods anywhere: "y.e.s", "...yes", "n.o" are "other" here, yes/no for lmms-eval ("Yes." and "No." agree:
  "yes." and "no." hold yes/no in their first 4 characters);
* a lone "y" / "n" (after that stripping) is yes / no for lmms-eval, "other" here.
lmms-eval also compares with the label after ``lower().strip().replace(".", "")``; MME labels are plain Yes/No,
so that makes no difference.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable

PAIR = 2  # questions per image in MME (calculation.py asserts it)

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


def irregular_images(rows: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """rows of (category, image key) -> {(category, image): number of questions} for every image whose number of
    questions is not two (calculation.py and lmms-eval would refuse these); empty when all are pairs."""
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for category, image in rows:
        counts[(category, image)] += 1
    return {key: n for key, n in sorted(counts.items()) if n != PAIR}


def irregular_image_warnings(rows: Iterable[tuple[str, str]]) -> dict:
    """Aggregate-side helper: ``{"n_images_not_two_questions": k}`` when k > 0 images have a number of questions
    other than two, else ``{}``."""
    k = len(irregular_images(rows))
    return {"n_images_not_two_questions": k} if k else {}
