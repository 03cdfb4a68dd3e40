"""``run_eval.py train-many``: many trainings at once, each followed by its test-split table (``study/many.py``)."""

from __future__ import annotations

import os
import sys

from .options import positive_int

DESCRIPTION = ("Run many 'run_eval.py train' jobs at once (one process each; e.g. all on one GPU under CUDA MPS), "
               "each followed by 'run_eval.py table' on its model. Writes OUT/<job>/ and OUT/summary.json.")


def add_arguments(p) -> None:
    p.add_argument("--jobs", required=True, help='JSON list of {"name": ..., "args": [run_eval.py train arguments]}')
    p.add_argument("--out", required=True)
    p.add_argument("--parallel", type=positive_int, default=max(1, (os.cpu_count() or 2) - 2))
    p.add_argument("--timeout", type=float, default=900, help="seconds per training (and per evaluation)")
    p.add_argument("--orders", default="raster", help="visual-token orders of each job's table")
    p.add_argument("--deadline", type=float, help="seconds from now by which every job must have ended")
    p.add_argument("--gpus", type=int, default=0, help="spread jobs over this many GPUs (CUDA_VISIBLE_DEVICES)")
    p.add_argument("--mps", action="store_true",
                   help="start CUDA MPS for the batch (nvidia-cuda-mps-control -d) and stop it at the end")


def run(a) -> int:
    from ..study.many import run_jobs

    results = run_jobs(a)
    failed = [r["name"] for r in results if r.get("train_rc") != 0]
    if failed:
        print(f"error: jobs that did not finish training: {', '.join(failed)} (their OUT/<job>/stdout.txt says why)",
              file=sys.stderr)
        return 2
    return 0
