"""Profiler: image-token sweeps of every system against an outside reference pipeline (``run_eval.py profile``).

``profile(out_dir, device, ...)`` builds each system (random weights, on the device), sweeps image tokens N and
batch sizes, and writes ``profile.csv``, ``profile.json`` (rows, environment, floors, systems, and the
scorecard's ``profile`` section), ``report.md`` and PNG plots under ``out_dir``.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from ..distributed import init_world, rank_device
from ..results import environment, write_json_atomic
from ..report.profile import plots
from .report import frame, markdown, profile_section
from .sweep import run_sweep
from .systems import GPU_SYSTEMS, TINY_SYSTEMS, ProjectReference, ProjectSystem, reference_available

DEFAULT_TOKENS = {"cuda": (64, 256, 729, 2304, 9216), "cpu": (16, 64)}
DEFAULT_BATCHES = {"cuda": (1, 8), "cpu": (1, 2)}
DEFAULT_QUERIES = {"cuda": (64, 144, 256, 576, 729), "cpu": (4, 16)}


def factory(device, dtype, tiny: bool, seed: int = 0):
    table = TINY_SYSTEMS if tiny else GPU_SYSTEMS
    qmamba_preset = table["qmamba"][0]

    def make(name):
        if name == "reference":
            if reference_available(device) and not tiny:
                from .systems import ReferencePipeline

                return ReferencePipeline(device, dtype, seed)
            return ProjectReference(device, dtype, seed)
        if name.startswith("qmamba-q"):
            return ProjectSystem(name, qmamba_preset, device, dtype, seed, num_queries=int(name[len("qmamba-q"):]))
        preset, overrides = table[name]
        return ProjectSystem(name, preset, device, dtype, seed, **overrides)

    return make


def profile(out_dir, device="cpu", dtype=None, systems=None, n_tokens=None, batches=None, query_counts=None,
            tiny=None, repeats=3, warmup=1, long=True, name=None, log=print) -> dict:
    world = init_world(str(device))  # under torchrun: whole systems spread over the ranks' GPUs
    device = rank_device(str(device), world)
    kind = torch.device(device).type
    tiny = (kind != "cuda") if tiny is None else tiny
    systems = list(systems or ["reference", *GPU_SYSTEMS])
    n_tokens = list(n_tokens or DEFAULT_TOKENS[kind])
    batches = list(batches or DEFAULT_BATCHES[kind])
    query_counts = DEFAULT_QUERIES[kind] if query_counts is None else query_counts
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"points.rank{world.rank}.jsonl").unlink(missing_ok=True)  # a killed earlier sweep's points
    t0 = time.perf_counter()
    rows, infos, floors = run_sweep(factory(device, dtype, tiny), systems, n_tokens, batches, device, log,
                                    warmup, repeats, query_counts, long, shard=(world.rank, world.size),
                                    rows_file=out / f"points.rank{world.rank}.jsonl")
    if world.distributed:  # rank 0 gathers every rank's points and writes the one report
        import torch.distributed as dist

        parts = [None] * world.size if world.is_main else None
        dist.gather_object((rows, infos, floors), parts, dst=0)
        world.close()
        if not world.is_main:
            return {"doc": None, "frame": None, "plots": []}
        rows = [r for part_rows, _, _ in parts for r in part_rows]
        infos = {k: v for _, part_infos, _ in parts for k, v in part_infos.items()}
        floors = {**floors, "per_rank": [f for _, _, f in parts]}
    wall = time.perf_counter() - t0
    df = frame(rows)
    df.to_csv(out / "profile.csv", index=False)
    meta = {"name": name or out.name, "device": str(device), "dtype": str(dtype or "float32"), "tiny": tiny,
            "n_tokens": n_tokens, "batches": batches, "query_counts": list(query_counts), "repeats": repeats,
            "warmup": warmup, "wall_s": round(wall, 1), "floors": floors, "systems": infos, "world_size": world.size,
            "environment": environment(str(device)),
            "notes": _notes(kind)}
    rows_out = df.astype(object).where(df.notna(), None).to_dict(orient="records")  # NaN -> null
    doc = {**meta, "profile": profile_section(df), "rows": rows_out}
    write_json_atomic(out / "profile.json", doc)
    for f in out.glob("points.rank*.jsonl"):  # the report holds every point now
        f.unlink()
    pngs = plots(df, out)
    (out / "report.md").write_text(markdown(df, meta))
    log(f"profile: {len(df)} points in {wall:.1f} s -> {out}")
    return {"doc": doc, "frame": df, "plots": pngs}


def _notes(kind: str) -> list[str]:
    notes = ["random weights; systems built on the device (their weights differ from CPU-built ones)",
             "image-token counts are square grids: encoders run at patch*sqrt(N) pixels"]
    if kind == "cuda":
        notes.append("decode ms/token: median of 16 CUDA-graph replays of the static decoder (project systems) or "
                     "the difference of two generate(cg=True) lengths (the mamba-ssm reference)")
    else:
        notes += ["CPU: tiny presets, host clock, no device memory figures; the reference is tiny-cobra on the "
                  "reference kernels with a Python decode loop (mamba-ssm needs CUDA)"]
    return notes
