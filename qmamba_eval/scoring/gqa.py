"""GQA (testdev-balanced) accuracy: exact match of one prediction against one answer, under three rules.

* ``lmms`` (default) -- lmms-eval 0.7.3 ``tasks/gqa/gqa.yaml``: metric ``exact_match`` with ``ignore_case`` and
  ``ignore_punctuation`` (``api/metrics.py: exact_match_hf_evaluate``): both sides lower-cased, every
  ``string.punctuation`` character deleted.  Intended difference: we also collapse runs of whitespace and strip
  the ends ("the  cat" == "the cat"), which lmms-eval does not.
* ``official`` -- GQA's own ``eval.py`` ("Evaluation code for GQA", distributed as nlp.stanford.edu/data/gqa/
  eval.zip, the version LLaVA's scripts/v1_5/eval/gqa.sh runs): ``correct = (predicted == gold)``, the prediction
  string compared as it is with the answer (no case folding, no stripping: "Yes" and "yes " are wrong).
* ``llava`` -- LLaVA 1.5 (haotian-liu/LLaVA, ``scripts/convert_gqa_for_eval.py`` at a689fd8): the prediction
  becomes ``text.rstrip('.').lower()`` (every trailing period removed, then lower-cased) and is then compared with
  the answer as is by GQA's eval.py.  LLaVA's ``model_vqa_loader.py`` strips the generation before writing it, so
  we ``strip()`` first too.
"""

from __future__ import annotations

import string

RULES = ("lmms", "official", "llava")
_TABLE = str.maketrans("", "", string.punctuation)


def _check_rule(rule: str) -> None:
    if rule not in RULES:
        raise ValueError(f"unknown GQA rule {rule!r}; choose from {RULES}")


def normalize(text: str, rule: str = "lmms") -> str:
    """The prediction as the rule compares it."""
    _check_rule(rule)
    text = text or ""
    if rule == "official":
        return text
    if rule == "llava":
        return text.strip().rstrip(".").lower()
    return " ".join(text.lower().translate(_TABLE).split())


def exact_match(prediction: str, answer: str, rule: str = "lmms") -> float:
    """1.0 when the prediction matches the answer under ``rule``; the answer is normalised only under ``lmms``
    (lmms-eval treats both sides alike; GQA's eval.py and LLaVA leave the gold answer as it is)."""
    gold = normalize(answer, "lmms") if rule == "lmms" else (answer or "")
    return float(normalize(prediction, rule) == gold)
