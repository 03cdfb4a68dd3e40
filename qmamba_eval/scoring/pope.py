"""POPE: yes/no answer parsers and per-split metrics.

Parsers (the choice is recorded with every result):
* ``llava`` -- POPE's ``evaluate.py`` (RUCAIBox/POPE) as LLaVA runs it, ``llava/eval/eval_pope.py``
  (haotian-liu/LLaVA at 4241f08): keep the first sentence, drop commas, then "no" if any space-separated word is
  "No", "not" or "no", otherwise "yes" (so an empty or rambling answer counts as "yes").
* ``strict`` -- lmms-eval 0.7.3 ``tasks/pope/utils.py`` style: lower-case and strip; exactly "yes" or "no",
  anything else is "other" and is wrong.

Metrics with "yes" as the positive class: accuracy, precision, recall, F1 and yes-ratio. The yes-ratio is the
fraction of *predicted* yes, as in POPE's paper; lmms-eval 0.7.3 computes it from the ground truth instead
(always about 0.5), which we do not copy.  An "other" answer predicts neither class: it is wrong for accuracy,
a false negative when the truth is yes, and not a false positive.  Precision / recall / F1 with an empty
denominator are 0 here (eval_pope.py would divide by zero).
"""

from __future__ import annotations

from typing import Iterable

PARSERS = ("llava", "strict")


def parse_llava(text: str) -> str:
    text = (text or "").split(".")[0].replace(",", "")
    words = text.split(" ")
    return "no" if ("No" in words or "not" in words or "no" in words) else "yes"


def parse_strict(text: str) -> str:
    t = (text or "").strip().lower()
    return t if t in ("yes", "no") else "other"


def parse(text: str, parser: str = "llava") -> str:
    if parser == "llava":
        return parse_llava(text)
    if parser == "strict":
        return parse_strict(text)
    raise ValueError(f"unknown POPE parser {parser!r}; choose from {PARSERS}")


def metrics(pairs: Iterable[tuple[str, str]]) -> dict:
    """pairs of (parsed prediction, label) -> accuracy, precision, recall, f1, yes_ratio, n (fractions)."""
    tp = fp = tn = fn = other = n = 0
    for pred, label in pairs:
        label = label.strip().lower()
        if label not in ("yes", "no"):
            raise ValueError(f"POPE label must be yes/no, got {label!r}")
        n += 1
        if pred == "yes":
            tp, fp = tp + (label == "yes"), fp + (label == "no")
        elif pred == "no":
            tn, fn = tn + (label == "no"), fn + (label == "yes")
        else:
            other += 1
            fn += label == "yes"
    if n == 0:
        raise ValueError("no POPE predictions to score")
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"accuracy": (tp + tn) / n, "precision": precision, "recall": recall, "f1": f1,
            "yes_ratio": (tp + fp) / n, "other_ratio": other / n, "n": n}
