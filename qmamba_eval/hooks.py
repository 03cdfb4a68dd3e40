"""Per-task hook functions: prompt fields, references, per-sample score and aggregation.

Task definitions (``tasks/*.toml``) name one of the hook sets below.  Every function is pure, so any
predictions file can be re-scored later (``run_eval.py score``).  A sample is a dict with at least
``answer`` (raw model output), ``references`` and ``split``; ``error`` marks a sample the model never saw
(e.g. an undecodable image) and it scores as wrong.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Callable

from .scoring import gqa, mme, pope, vqa

MME_SUFFIX = " Please answer yes or no."


@dataclass(frozen=True)
class Hooks:
    fields: Callable[[dict], dict]  # doc -> values for the prompt template
    references: Callable[[dict], object]  # doc -> what scoring needs (JSON-able)
    score_one: Callable[[str, object, dict], tuple]  # (answer, references, options) -> (parsed, score)
    aggregate: Callable[[list, dict], dict]  # (samples, options) -> {metric: value}


def _mean(xs) -> float:
    xs = list(xs)
    return 100.0 * sum(xs) / len(xs) if xs else 0.0


def _by_split(samples) -> dict:
    out = defaultdict(list)
    for s in samples:
        out[s.get("split") or "all"].append(s["score"])
    return out


def _question_fields(doc):
    q = str(doc["question"]).strip()
    return {"question": q, "Question": q[:1].upper() + q[1:].lower() if q else q}


# -- VQAv2 -------------------------------------------------------------------------------------


def _vqa_answers(doc):
    answers = doc.get("answers")
    if not answers:  # VQAv2 test-dev / test: no public answers -> unscored, goes to the submission file
        return None
    if isinstance(answers[0], dict):
        answers = [a["answer"] for a in answers]
    return [str(a) for a in answers]


def _vqav2_score(answer, refs, opts):
    parsed = vqa.normalize(vqa.clean_whitespace(answer or ""))
    return parsed, None if refs is None else vqa.soft_accuracy(answer, refs, rule=opts.get("vqa_rule", "lmms"))


def _accuracy_aggregate(samples, opts):
    unscored = sum(1 for s in samples if s["score"] is None)
    samples = [s for s in samples if s["score"] is not None]
    if not samples:
        return {"unscored": unscored}  # a test split: the answers go to the submission file
    out = {"accuracy": _mean(s["score"] for s in samples)}
    splits = _by_split(samples)
    if len(splits) > 1 or "all" not in splits:
        for split, scores in sorted(splits.items()):
            out[f"{split}/accuracy"] = _mean(scores)
    return out


VQAV2 = Hooks(_question_fields, _vqa_answers, _vqav2_score, _accuracy_aggregate)

# -- TextVQA -----------------------------------------------------------------------------------


def _textvqa_fields(doc):
    f = _question_fields(doc)
    f["ocr"] = ", ".join(str(t) for t in (doc.get("ocr_tokens") or []))
    return f


def _textvqa_score(answer, refs, opts):
    return vqa.full_processor(answer or ""), vqa.soft_accuracy(answer, refs, textvqa=True)


TEXTVQA = Hooks(_textvqa_fields, _vqa_answers, _textvqa_score, _accuracy_aggregate)

# -- GQA ---------------------------------------------------------------------------------------


def _gqa_score(answer, ref, opts):
    return gqa.normalize(answer), gqa.exact_match(answer, ref)


GQA = Hooks(_question_fields, lambda doc: str(doc["answer"]), _gqa_score, _accuracy_aggregate)

# -- POPE --------------------------------------------------------------------------------------


def _pope_score(answer, label, opts):
    parsed = pope.parse(answer, opts.get("pope_parser", "llava"))
    return parsed, float(parsed == str(label).strip().lower())


def _pope_aggregate(samples, opts):
    out = {}
    per = defaultdict(list)
    for s in samples:
        per[s.get("split") or "all"].append((s["parsed"], s["references"]))
    names = ("accuracy", "precision", "recall", "f1", "yes_ratio")
    for split, pairs in sorted(per.items()):
        m = pope.metrics(pairs)
        for k in names:
            out[f"{split}/{k}"] = 100.0 * m[k]
        out[f"{split}/n"] = m["n"]
    for k in names:
        out[f"mean/{k}"] = sum(out[f"{s}/{k}"] for s in per) / len(per)
    return out


POPE = Hooks(_question_fields, lambda doc: str(doc["answer"]).strip().lower(), _pope_score, _pope_aggregate)

# -- MME ---------------------------------------------------------------------------------------


def _mme_fields(doc):
    f = _question_fields(doc)
    f["question_stem"] = f["question"].replace(MME_SUFFIX.strip(), "").strip()
    return f


def _mme_refs(doc):
    # question_id is "<category>/<image>" in the hub data: the image key for acc+
    return {"label": str(doc["answer"]).strip().lower(), "image": str(doc["question_id"])}


def _mme_score(answer, refs, opts):
    parsed = mme.parse(answer)
    return parsed, float(parsed == refs["label"])


def _mme_aggregate(samples, opts):
    res = mme.scores((s["split"], s["references"]["image"], s["parsed"], s["references"]["label"]) for s in samples)
    out = {"perception": res["perception"], "cognition": res["cognition"], "total": res["total"]}
    for cat, c in res["categories"].items():
        out[f"{cat}/score"] = c["score"]
        out[f"{cat}/acc"] = 100.0 * c["acc"]
        out[f"{cat}/acc_plus"] = 100.0 * c["acc_plus"]
    return out


MME = Hooks(_mme_fields, _mme_refs, _mme_score, _mme_aggregate)

HOOKS = {"vqav2": VQAV2, "textvqa": TEXTVQA, "gqa": GQA, "pope": POPE, "mme": MME}
