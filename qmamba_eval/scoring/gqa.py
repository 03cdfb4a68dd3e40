"""GQA (testdev-balanced) accuracy: exact match after lower-casing and removing punctuation."""

from __future__ import annotations

import string

_TABLE = str.maketrans("", "", string.punctuation)


def normalize(text: str) -> str:
    return " ".join((text or "").lower().translate(_TABLE).split())


def exact_match(prediction: str, answer: str) -> float:
    return float(normalize(prediction) == normalize(answer))
