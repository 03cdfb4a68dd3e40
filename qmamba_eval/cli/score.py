"""``run_eval.py score``: re-score a predictions file made anywhere (ours, lmms-eval's, LLaVA's)."""

from __future__ import annotations

import json

from .options import add_scoring_options, scoring_options

DESCRIPTION = "Re-score a predictions file: our samples file, lmms-eval samples, or LLaVA answer files."


def add_arguments(p) -> None:
    p.add_argument("--task", required=True)
    p.add_argument("--predictions", required=True)
    p.add_argument("--references", help="POPE: folder of coco_pope_*.json; MME: ground-truth folder; "
                   "VQAv2/GQA/TextVQA: the data (official layout or hub-schema file)")
    p.add_argument("--questions", help="POPE: LLaVA's question file (question_id -> category)")
    add_scoring_options(p)


def run(a) -> int:
    from ..rescore import rescore

    res = rescore(a.task, a.predictions, a.references, a.questions, scoring_options(a))
    print(json.dumps(res, indent=1))
    print()
    for k, v in res["metrics"].items():
        print(f"{res['task']:<8} {k:<28} {v:>9.2f}")
    return 0
