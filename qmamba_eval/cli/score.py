"""``run_eval.py score``: re-score a predictions file made anywhere (ours, lmms-eval's, LLaVA's)."""

from __future__ import annotations

import json
import sys

from .options import add_scoring_options, check_output, scoring_options

DESCRIPTION = ("Re-score a predictions file: our samples file, lmms-eval samples, or LLaVA answer files. Prints a "
               "table (--json: the JSON document alone, for scripts; --output FILE: the JSON written there).")


def add_arguments(p) -> None:
    p.add_argument("--task", required=True)
    p.add_argument("--predictions", required=True)
    p.add_argument("--references", help="POPE: folder of coco_pope_*.json; MME: ground-truth folder; "
                   "VQAv2/GQA/TextVQA: the data (official layout or hub-schema file)")
    p.add_argument("--questions", help="POPE: LLaVA's question file (question_id -> category)")
    add_scoring_options(p)
    p.add_argument("--json", action="store_true", help="print the result as one JSON document on stdout, nothing else")
    p.add_argument("--output", help="also write the JSON document to this file")


def run(a) -> int:
    from ..rescore import rescore
    from ..results import write_json_atomic

    check_output(a.output, "--output", folder=False)  # before the work
    res = rescore(a.task, a.predictions, a.references, a.questions, scoring_options(a))
    if a.output:
        write_json_atomic(a.output, res)
    if a.json:
        print(json.dumps(res, indent=1))
        return 0
    print(f"{res['task']} v{res['version']}: {res['n_samples']} samples ({res['format']} format), "
          f"options {res['options']}")
    for note in res["notes"]:
        print(f"note: {note}")
    for k, v in res["metrics"].items():
        print(f"{res['task']:<8} {k:<28} {v:>9.2f}")
    if a.output:
        print(f"\nresult: {a.output}", file=sys.stderr)
    return 0
