#!/usr/bin/env python
"""Many consecutive two-rank runs on the CPU (gloo), each in a fresh folder: every exit code and any abort message
recorded, to show the teardown race (a rank killed by SIGABRT after its results were complete) is gone.

    python scripts/stress_teardown.py --runs 50 --out results/distributed/teardown_50.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torchrun = shutil.which("torchrun")
    cmd = [torchrun, "--standalone", "--nproc-per-node=2", str(ROOT / "run_eval.py"), "--tasks", "gqa,pope",
           "--limit", "9", "--batch-size", "2", "--no-progress", "--no-plot"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    runs, t0 = [], time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(a.runs):
            t = time.time()
            p = subprocess.run(cmd + ["--output-dir", tmp, "--run-name", f"r{i}"], cwd=ROOT, env=env,
                               capture_output=True, text=True, timeout=600)
            text = p.stdout + p.stderr
            aborted = "terminate called" in text or "SIGABRT" in text or "ChildFailedError" in text
            runs.append({"run": i, "returncode": p.returncode, "aborted": aborted, "seconds": round(time.time() - t, 1),
                         "results": (Path(tmp) / f"r{i}" / "results.json").is_file(),
                         "tail": text[-400:] if p.returncode or aborted else ""})
            print(f"run {i}: exit {p.returncode}{' ABORT' if aborted else ''} ({runs[-1]['seconds']} s)", flush=True)
    doc = {"command": " ".join(sys.argv), "runs": a.runs, "all_exit_0": all(r["returncode"] == 0 for r in runs),
           "aborts": sum(r["aborted"] for r in runs), "wall_s": round(time.time() - t0, 1),
           "machine": f"{platform.machine()}, {os.cpu_count()} cores", "per_run": runs}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(doc, indent=1) + "\n")
    print(f"{sum(r['returncode'] == 0 for r in runs)} of {a.runs} runs exited 0; aborts: {doc['aborts']}")
    return 0 if doc["all_exit_0"] else 1


if __name__ == "__main__":
    sys.exit(main())
