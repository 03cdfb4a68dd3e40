"""``run_eval.py train-many``: many trainings at once, each followed by its test-split table (``study/many.py``)."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

from .options import check_output, positive_int

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


def read_jobs(path) -> list:
    """The jobs file, every job's arguments parsed and its training config checked before any job starts."""
    from . import parser_for
    from .train import build_config

    shape = f'{path}: expected a JSON list of {{"name": ..., "args": [...]}}'
    text = Path(path).read_text()
    if not text.strip():
        raise ValueError(f"{path}: the file is empty; {shape.split(': ', 1)[1]}")
    try:
        jobs = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not JSON ({e}); {shape.split(': ', 1)[1]}") from None
    if not isinstance(jobs, list) or not jobs:
        raise ValueError(shape + (" (the list is empty)" if jobs == [] else ""))
    for i, j in enumerate(jobs):
        if isinstance(j, dict) and set(j) - {"name", "args"}:
            raise ValueError(f"{path}: job {i + 1}: unknown key(s) {sorted(set(j) - {'name', 'args'})} (a job is "
                             '{"name": ..., "args": [...]})')
        if not isinstance(j, dict) or not isinstance(j.get("args"), list):
            raise ValueError(f"{path}: job {i + 1}: expected {{\"name\": ..., \"args\": [...]}}, got {j!r:.100}")
        name = j.get("name")
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", name):
            raise ValueError(f"{path}: job {i + 1}: name {name!r} must be a folder name (letters, digits, _ . -)")
        if not all(isinstance(x, str) for x in j["args"]):
            raise ValueError(f"{path}: job {name}: args must be strings (as typed on the command line), got "
                             f"{j['args']!r:.100}")
        if any(x == "--out" or x.startswith("--out=") for x in j["args"]):
            raise ValueError(f"{path}: job {name}: --out is set by train-many (OUT/{name}); remove it from args")
        try:
            build_config(parser_for("train").parse_args([*j["args"], "--out", "-"]))
        except SystemExit:  # argparse said why on stderr
            raise ValueError(f"{path}: job {name}: its args are not valid 'run_eval.py train' arguments "
                             "(see the usage message above)") from None
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path}: job {name}: {e}") from None
    names = [j["name"] for j in jobs]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: job names repeat")
    return jobs


def run(a) -> int:
    from ..study.many import run_jobs

    check_output(a.out, "--out", folder=True)
    results = run_jobs(a, read_jobs(a.jobs))
    failed = [r["name"] for r in results if r.get("train_rc") != 0]
    if failed:
        print(f"error: jobs that did not finish training: {', '.join(failed)} (their OUT/<job>/stdout.txt says why)",
              file=sys.stderr)
        return 2
    return 0
