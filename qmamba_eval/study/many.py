"""Many training runs at once (one process each, e.g. all on one GPU), each followed by its test-split table.

    python run_eval.py train-many --jobs JOBS.json --out DIR [--parallel 12] [--timeout 900]

JOBS.json is a list of ``{"name": ..., "args": [...]}``: ``args`` are ``run_eval.py train`` arguments (the
output folder is added: ``DIR/<name>``).  After training, ``run_eval.py table`` answers the synthetic test split
with the exported model (``--orders``, default raster) into ``DIR/<name>/table``, on the CPU (``--gpus`` spreads
the trainings only). For many runs on one GPU add ``--mps`` (CUDA MPS, started and stopped
here): without it the processes time-slice the GPU (on one H200, 13 runs without MPS got through about 1,000
instruct steps in 400 s, results/train/gpu_probe_runs.json; 12 with MPS ran 9,048 steps each in 374-410 s,
results/train/gpu_training_runs.json).  A job that fails
or times out is recorded and the others go on.  Writes ``DIR/summary.json`` (per job: seconds, return codes,
final losses, test accuracy) and prints one line per job as it ends.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

ENTRY = [sys.executable, "-m", "qmamba_eval.cli"]  # run_eval.py, wherever the package is installed


def run_job(job: dict, out: Path, timeout: float, orders: str, gpu=None, deadline=None) -> dict:
    if deadline is not None:  # the whole batch must end by then: a late job gets less time, or none
        timeout = min(timeout, deadline - time.time() - 60)
        if timeout < 30:
            return {"name": job["name"], "args": job["args"], "train_s": 0, "train_rc": "skipped (deadline)"}
    folder = out / job["name"]
    folder.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(gpu)
    res = {"name": job["name"], "args": job["args"]}
    t0 = time.time()
    with open(folder / "stdout.txt", "w") as log:
        try:
            rc = subprocess.run([*ENTRY, "train", "--out", str(folder),
                                 "--no-progress", "--threads", "1", *job["args"]], stdout=log,
                                stderr=subprocess.STDOUT, env=env, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
        res["train_s"], res["train_rc"] = round(time.time() - t0, 1), rc
        info = folder / "model" / "training.json"
        model = folder / "model"
        if rc == 0 and info.is_file():
            summary = json.loads(info.read_text())
            res["final_loss"], res["steps"] = summary["final_loss"], summary["steps"]
        elif (folder / "checkpoint" / "config.json").is_file():  # cut short: the last resumable checkpoint
            model = folder / "checkpoint"
            res["evaluated"] = "checkpoint (training cut short)"
        else:
            model = None
        if model is not None and deadline is not None:  # evaluation too must end by the deadline
            timeout = min(timeout, deadline - time.time() - 5)
            if timeout < 10:
                res["eval_rc"], model = "skipped (deadline)", None
        if model is not None:
            t1 = time.time()
            try:
                rc2 = subprocess.run([*ENTRY, "table", "--models", str(model), "--out", str(folder / "table"),
                                      "--orders", orders, "--threads", "1"], stdout=log, stderr=subprocess.STDOUT,
                                     env=env, timeout=timeout).returncode
            except subprocess.TimeoutExpired:
                rc2 = "timeout"
            res["eval_s"], res["eval_rc"] = round(time.time() - t1, 1), rc2
            table = folder / "table" / "table.json"
            if rc2 == 0 and table.is_file():
                rows = [r for r in json.loads(table.read_text())["rows"] if r["model"] != "majority"]
                res["accuracy"] = {r["order"]: {k: round(v["accuracy"], 1) for k, v in r["tasks"].items()}
                                   for r in rows}
    return res


def run_jobs(a, jobs: list) -> list:
    """``a``: the parsed ``run_eval.py train-many`` options; ``jobs``: the checked jobs file. Returns the per-job
    summaries (also in summary.json)."""
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    deadline = time.time() + a.deadline if a.deadline else None
    mps = a.mps and start_mps()
    try:
        run_all(a, jobs, out, results, deadline)
    finally:
        if mps:
            subprocess.run(["nvidia-cuda-mps-control"], input="quit\n", text=True, check=False)
    return results


def start_mps() -> bool:
    """CUDA MPS lets many small training processes share one GPU instead of time-slicing it."""
    try:
        ok = subprocess.run(["nvidia-cuda-mps-control", "-d"], check=False).returncode == 0
    except FileNotFoundError:
        ok = False
    print("CUDA MPS started" if ok else "CUDA MPS not available: the processes will time-slice the GPU", flush=True)
    return ok


def run_all(a, jobs, out, results, deadline) -> None:
    with ThreadPoolExecutor(a.parallel) as pool:
        futures = [pool.submit(run_job, j, out, a.timeout, a.orders, i % a.gpus if a.gpus else None,
                               deadline)
                   for i, j in enumerate(jobs)]
        for f in as_completed(futures):
            r = f.result()
            results.append(r)
            acc = r.get("accuracy", {}).get("raster")
            print(f"{r['name']}: train {r['train_s']} s rc {r['train_rc']} loss {r.get('final_loss')} "
                  f"test {acc}", flush=True)
            (out / "summary.json").write_text(json.dumps(results, indent=1) + "\n")

