"""One GPU vs N GPUs on the same GQA-shaped evaluation, in one go: throughput scaling and identical answers.

    python scripts/bench_multigpu.py --out DIR [--gpus 2] [--rows 4096]
    python scripts/bench_multigpu.py --out DIR --device cpu --model tiny-qmamba --dtype float32 \\
        --backend reference --rows 24 --batch-size 4         # the same logic on the CPU (gloo), for testing

Writes a GQA-shaped local JSONL once (real 640x480 JPEGs, ``profiler.photos.photo_questions``), then runs the same
``run_eval.py`` command twice, each into a fresh folder: as one process (``CUDA_VISIBLE_DEVICES=0``) and through
``torchrun --nproc-per-node N``. It then checks that the merged N-rank run equals the one-process run (answers
digest, metrics, sample counts, the samples file byte for byte) and computes the scaling from the samples/s that
each results.json records (the runner's clock starts once the model is built on every rank). ``DIR/multigpu.json``
holds the environment, both commands with their whole wall time, both runs' timing, the scaling and the checks.

Autotuning: mamba-ssm's fused add + RMSNorm Triton kernel picks its ``num_warps`` by timing, separately in every
process, and two picks sum a row in different orders. On random weights that flipped 239 of 4,096 greedy answers
between a one-process run on GPU 0 and a 2-rank run on GPUs 0 and 1 (first H200 run, results/gpu/multigpu_run1.json). So every process here
gets ``TRITON_CACHE_AUTOTUNING=1`` and one fresh ``TRITON_CACHE_DIR``: a warm-up process (one batch) tunes and
compiles once, both timed runs read that pick from the cache (``--per-process-autotune`` turns this off).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qmamba_eval.profiler.photos import photo_questions  # noqa: E402
from qmamba_eval.results import environment, read_samples, write_json_atomic  # noqa: E402

RUN_NAME = "gqa-shaped"
# NVLink multicast stays off (shared hosts); set here too in case the caller's environment lacks them
NCCL_SAFE = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}


def eval_args(a, data: Path, output_dir: Path) -> list[str]:
    """The run_eval.py arguments both runs share (only the output folder differs)."""
    args = ["run_eval.py", "--tasks", "gqa", "--data", str(data), "--model", a.model, "--device", a.device,
            "--dtype", a.dtype, "--backend", a.backend, "--batch-size", str(a.batch_size),
            "--max-new-tokens", str(a.max_new_tokens), "--output-dir", str(output_dir), "--run-name", RUN_NAME,
            "--no-progress", "--no-plot"]
    if a.workers is not None:
        args += ["--workers", str(a.workers)]
    return args


def launch(label: str, cmd: list[str], env_update: dict) -> dict:
    """Run ``cmd`` from the repository root, its output passed through; its wall time and exit status."""
    env = {**os.environ, **NCCL_SAFE, **env_update}
    shown = " ".join(f"{k}={v}" for k, v in env_update.items()) + " " + " ".join(cmd)
    print(f"\n== {label}: {shown.strip()}", flush=True)
    t = time.perf_counter()
    rc = subprocess.run(cmd, cwd=ROOT, env=env).returncode
    wall = time.perf_counter() - t
    print(f"== {label}: exit {rc} after {wall:.1f} s", flush=True)
    return {"command": shown.strip(), "returncode": rc, "command_wall_s": round(wall, 2)}


def task_entry(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())["tasks"]["gqa"]


def summary(entry: dict) -> dict:
    keep = ("world_size", "n_samples", "n_errors", "answers_digest", "metrics", "timing")
    return {k: entry.get(k) for k in keep}


def compare(one: Path, many: Path, world: int) -> dict:
    """What must be equal between the one-process run and the merged N-rank run (samples rows have no timing
    fields: the samples files are compared whole, byte for byte, and row by row)."""
    a, b = task_entry(one), task_entry(many)
    sa, sb = one / "samples_gqa.jsonl", many / "samples_gqa.jsonl"
    ra, rb = read_samples(sa), read_samples(sb)
    checks = {
        "answers_digest": a["answers_digest"] == b["answers_digest"],
        "metrics": a["metrics"] == b["metrics"],
        "n_samples": a["n_samples"] == b["n_samples"],
        "n_errors": a["n_errors"] == b["n_errors"],
        "samples_file_bytes": sa.read_bytes() == sb.read_bytes(),
        "samples_rows": ra == rb,
        "world_sizes_1_and_n": (a["world_size"], b["world_size"]) == (1, world),
        "no_shards_left": not list(many.glob("*.shard*")),
    }
    differing = [x["key"] for x, y in zip(ra, rb) if x != y]
    return {"identical": all(checks.values()), "checks": checks, "rows_compared": len(ra),
            "differing_rows": len(differing) + abs(len(ra) - len(rb)), "first_differing_keys": differing[:5]}


def warm_up(a, data: Path) -> None:
    """One batch on random weights built straight on the device (seconds), in a process of its own: the
    Triton kernels get compiled (and, with ``TRITON_CACHE_AUTOTUNING=1``, tuned) into the on-disk cache here, so
    neither timed run pays for that and both use the same kernel configurations."""
    import torch
    from PIL import Image

    from qmamba_eval.models import build_model
    from qmamba_eval.models.vision import to_uint8

    t = time.perf_counter()
    model = build_model(a.model, device=a.device, dtype=a.dtype, init="device")
    rows = [json.loads(line) for line in data.read_text().splitlines()[: a.batch_size]]
    ims = [to_uint8(Image.open(data.parent / "images" / r["image"])) for r in rows]
    model.set_kernels(a.backend)
    model.generate(ims, [r["question"] for r in rows], max_new_tokens=a.max_new_tokens)
    if a.device.startswith("cuda"):
        torch.cuda.synchronize()
    print(f"warm-up: one batch of {len(rows)} in {time.perf_counter() - t:.1f} s (build included)", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="results/gpu", help="where multigpu.json goes")
    ap.add_argument("--work", default="/tmp/bench_multigpu", help="data and run folders (emptied first)")
    ap.add_argument("--gpus", type=int, default=2, help="ranks of the torchrun run")
    ap.add_argument("--rows", type=int, default=4096)
    ap.add_argument("--model", default="qmamba-2.8b")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--backend", default="auto", help="kernels (run_eval.py --backend)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--max-new-tokens", type=int, default=8)
    ap.add_argument("--workers", type=int, default=None, help="per process (default: run_eval.py's)")
    ap.add_argument("--per-process-autotune", action="store_true",
                    help="let every process autotune the Triton kernels itself (answers may then differ)")
    ap.add_argument("--warm-up", metavar="JSONL", help=argparse.SUPPRESS)  # internal: the warm-up process
    a = ap.parse_args()
    if a.warm_up:
        warm_up(a, Path(a.warm_up))
        return 0
    cuda = a.device.startswith("cuda")
    out, work = Path(a.out), Path(a.work)
    out.mkdir(parents=True, exist_ok=True)
    if work.exists():
        shutil.rmtree(work)
    doc = {"what": f"GQA-shaped eval, {a.rows} rows: 1 process vs torchrun --nproc-per-node {a.gpus}",
           "command": " ".join([Path(sys.executable).name, *sys.argv]), "environment": environment(a.device),
           "settings": {k: v for k, v in vars(a).items() if k not in ("out", "work", "warm_up")}}
    result_file = out / "multigpu.json"

    t = time.perf_counter()
    data = photo_questions(work / "data", a.rows)
    doc["data"] = {"rows": a.rows, "jsonl": data.name, "images": "640x480 JPEG, quality 90",
                   "write_s": round(time.perf_counter() - t, 2)}
    print(f"data: {a.rows} rows in {doc['data']['write_s']} s", flush=True)

    # one Triton cache for the three processes; with cached autotuning, one kernel configuration for all
    triton = {"TRITON_CACHE_DIR": str(work / "triton-cache")}
    if not a.per_process_autotune:
        triton["TRITON_CACHE_AUTOTUNING"] = "1"
    if a.backend != "reference":
        me = str(Path(__file__).resolve().relative_to(ROOT))
        warm = launch("warm-up", [sys.executable, me, "--warm-up", str(data), "--model", a.model,
                                  "--device", a.device, "--dtype", a.dtype, "--batch-size", str(a.batch_size),
                                  "--max-new-tokens", str(a.max_new_tokens), "--backend", a.backend],
                      {"CUDA_VISIBLE_DEVICES": "0", **triton} if cuda else triton)
        doc["warm_up"] = {**warm, "why": "compiles (and tunes) the Triton kernels into the cache before the timed runs"}
        if warm["returncode"] != 0:
            write_json_atomic(result_file, doc)
            return 1

    # two folders whatever --gpus is (with --gpus 1 a shared folder would let the second run resume the first)
    one_dir, many_dir = work / "runs-one-process", work / f"runs-torchrun-{a.gpus}"
    torchrun = shutil.which("torchrun")
    launcher = [torchrun] if torchrun else [sys.executable, "-m", "torch.distributed.run"]
    cpus = os.cpu_count() or 1
    # the same CPU threads per process in both runs (torchrun's default would be 1 per rank), the same Triton cache
    common = {"OMP_NUM_THREADS": str(max(1, cpus // a.gpus)), **triton}
    one_env = {"CUDA_VISIBLE_DEVICES": "0", **common} if cuda else common
    many_env = {"CUDA_VISIBLE_DEVICES": ",".join(map(str, range(a.gpus))), **common} if cuda else common
    runs = {
        "one_process": (eval_args(a, data, one_dir), [sys.executable], one_env),
        f"torchrun_{a.gpus}": (eval_args(a, data, many_dir),
                               [*launcher, "--standalone", "--nproc-per-node", str(a.gpus)], many_env),
    }
    doc["runs"] = {}
    for label, (args, prefix, env) in runs.items():
        r = launch(label, [*prefix, *args], env)
        doc["runs"][label] = r
        write_json_atomic(result_file, doc)
        if r["returncode"] != 0:
            print(f"{label} failed; see the output above", flush=True)
            return 1
        run_dir = (one_dir if label == "one_process" else many_dir) / RUN_NAME
        r.update(summary(task_entry(run_dir)))
        r["startup_and_build_s"] = round(r["command_wall_s"] - r["timing"]["wall_s"], 2)

    one, many = doc["runs"]["one_process"], doc["runs"][f"torchrun_{a.gpus}"]
    sps1, spsn = one["timing"]["samples_per_s"], many["timing"]["samples_per_s"]
    doc["scaling"] = {"samples_per_s_1": sps1, f"samples_per_s_{a.gpus}": spsn,
                      "scaling": round(spsn / sps1, 3), "ideal": a.gpus, "efficiency": round(spsn / sps1 / a.gpus, 3),
                      "target": 0.9 * a.gpus, "meets_target": spsn / sps1 >= 0.9 * a.gpus,
                      "command_wall_ratio": round(one["command_wall_s"] / many["command_wall_s"], 3)}
    doc["comparison"] = compare(one_dir / RUN_NAME, many_dir / RUN_NAME, a.gpus)
    write_json_atomic(result_file, doc)
    s, c = doc["scaling"], doc["comparison"]
    print(f"\n1 process: {sps1} samples/s ({one['timing']['wall_s']} s eval, {one['command_wall_s']} s command); "
          f"{a.gpus} ranks: {spsn} samples/s ({many['timing']['wall_s']} s eval, {many['command_wall_s']} s command)")
    print(f"scaling {s['scaling']}x (target {s['target']}x: {'met' if s['meets_target'] else 'NOT met'}); "
          f"identical: {c['identical']} {c['checks']}; digest {one['answers_digest']} / {many['answers_digest']}")
    print(f"written: {result_file}")
    return 0 if c["identical"] else 2


if __name__ == "__main__":
    sys.exit(main())
