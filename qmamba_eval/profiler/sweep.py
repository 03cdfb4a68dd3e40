"""The sweep: every system at every (image tokens N, batch) point; one row of figures per point.

Per point (medians of ``repeats`` after ``warmup``, CUDA events on CUDA): vision, projector, LLM prefill and
time to first token (pixels to first token), all four from the same runs of the chain (events between stages),
decode ms per token, end-to-end for a short answer (8 tokens) and,
at batch 1, a 256-token description (Cobra's protocol); samples/s and tokens/s; peak allocator memory and NVML
device memory; prefill TFLOP/s and the fraction of the floor (floors measured in the same run on CUDA).
An out-of-memory point is recorded as ``status: oom`` and the sweep goes on.
"""

from __future__ import annotations

import gc
import time

import torch

from ..models.flops import vit_flops
from ..models.vision import BACKBONES
from ..results import append_samples
from .timing import is_oom, kernel_ms, nvml_used_gib, peak_gib, reset_peak, sync, time_ms, time_stages

SHORT, LONG = 8, 256


@torch.no_grad()
def measure_floors(device) -> dict:
    """bf16 GEMM TFLOP/s and device copy bandwidth, measured now (None on the CPU)."""
    if torch.device(device).type != "cuda":
        return {"bf16_tflops": None, "copy_gbps": None}
    a = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    ms = time_ms(lambda: a @ b, device, warmup=3, repeats=10)
    src = torch.randn(2 ** 29, device=device)  # 2 GiB
    dst = torch.empty_like(src)
    cms = time_ms(lambda: dst.copy_(src), device, warmup=2, repeats=10)
    return {"bf16_tflops": 2 * 8192 ** 3 / ms / 1e9, "copy_gbps": 2 * src.numel() * 4 / cms / 1e6}


def point(system, n_tokens: int, batch: int, device, floors: dict, warmup=1, repeats=3, long=True) -> dict:
    """All figures of one sweep point; ``long``: also the 256-token answer (at batch 1)."""
    row = {"system": system.name, "kind": system.kind, "n_tokens": n_tokens, "batch": batch, "status": "ok"}
    try:
        system.prepare(n_tokens, batch)
        reset_peak(device)
        # one chain, pixels to first token, timed stage by stage in the same runs
        stages = [system.vision, system.project, lambda v: system.prefill(v).argmax(-1)]
        medians, row["ttft_ms"], spreads, row["ttft_iqr_ms"] = time_stages(stages, device, warmup, repeats)
        (row["vision_ms"], row["projector_ms"], row["prefill_ms"]), row["prefill_iqr_ms"] = medians, spreads[2]
        visual = system.project(system.vision())
        row["llm_tokens"] = length = system.llm_length(visual)
        row["prefill_kernel_ms"] = kernel_ms(lambda: system.prefill(visual), device)  # beside the wall time
        row["visual_tokens_to_llm"] = int(visual.shape[1])
        if not getattr(system, "decode_by_length", False):
            system.prefill(visual)
            row["decode_ms_per_token"] = time_ms(lambda: system.decode_steps(16), device, 1, repeats) / 16
            row["e2e_short_ms"] = time_ms(lambda: system.generate(SHORT), device, warmup, repeats)
        else:  # mamba-ssm owns its decode graph: difference of two generate lengths
            row["e2e_short_ms"] = time_ms(lambda: system.generate(SHORT), device, warmup, repeats)
            t40 = time_ms(lambda: system.generate(SHORT + 32), device, warmup, repeats)
            row["decode_ms_per_token"] = (t40 - row["e2e_short_ms"]) / 32
        if long and batch == 1:
            row["e2e_256_ms"] = time_ms(lambda: system.generate(LONG), device, 1, max(1, repeats - 1))
            row["tokens_per_s_256"] = LONG / row["e2e_256_ms"] * 1e3
        row["samples_per_s"] = batch / row["e2e_short_ms"] * 1e3
        row["decode_tokens_per_s"] = batch / row["decode_ms_per_token"] * 1e3
        sync(device)
        row["peak_alloc_gib"] = peak_gib(device)
        row["nvml_used_gib"] = nvml_used_gib(device)
        _flops(row, system, n_tokens, batch, length, floors)
    except Exception as e:  # OOM: record and go on; anything else is a bug and propagates
        if not is_oom(e):
            raise
        row.update(status="oom", error=str(e).splitlines()[0][:200])
    finally:
        gc.collect()
        if torch.device(device).type == "cuda":
            torch.cuda.empty_cache()
    return row


def _flops(row, system, n_tokens, batch, length, floors):
    pf = system.prefill_flops(batch, length)
    row["prefill_tflop"] = pf / 1e12
    row["prefill_tflops_per_s"] = pf / row["prefill_ms"] / 1e9
    vf = sum(vit_flops(BACKBONES[s], batch, n_tokens) for s in system.specs)
    row["vision_tflops_per_s"] = vf / row["vision_ms"] / 1e9
    if floors.get("bf16_tflops"):
        flop_ms, byte_ms = 1 / (floors["bf16_tflops"] * 1e9), 1 / (floors["copy_gbps"] * 1e6)
        wbytes = system.llm_weight_bytes()
        floor_prefill = max(pf * flop_ms, wbytes * byte_ms)
        row["prefill_floor_fraction"] = floor_prefill / row["prefill_ms"]
        floor_decode = max(system.decode_flops(batch, length) * flop_ms, wbytes * byte_ms)
        row["decode_floor_ms"] = floor_decode
        row["decode_floor_fraction"] = floor_decode / row["decode_ms_per_token"]


def run_sweep(systems_factory, names, n_tokens, batches, device, log=print, warmup=1, repeats=3,
              query_counts=(), long=True, shard: tuple[int, int] = (0, 1), rows_file=None) -> tuple[list, dict, dict]:
    """Build each system in turn (``systems_factory(name) -> system``), sweep it, free it.

    Returns (rows, per-system info, floors). ``query_counts``: extra Q-Mamba variants at N = 729 (or the
    largest N swept when 729 is not) for the query-count trade-off. ``shard=(rank, size)``: this process measures
    systems ``rank, rank + size, ...`` only (each on its own GPU: nothing is timed while another rank shares it).
    ``rows_file``: every row is also appended there (fsync-ed) as it is measured, so a killed sweep keeps its points.
    """
    floors = measure_floors(device)
    long_n = 729 if 729 in n_tokens else max(n_tokens)  # Cobra's protocol point (256-token answers, batch 1)
    rows, infos = [], {}
    jobs = [(name, n_tokens, batches) for name in names]
    if query_counts:
        n_q = 729 if 729 in n_tokens else max(n_tokens)
        jobs += [(f"qmamba-q{q}", [n_q], batches) for q in query_counts]
    rank, size = shard
    for name, ns, bs in jobs[rank::size]:
        t = time.perf_counter()
        system = systems_factory(name)
        build_s = time.perf_counter() - t
        infos[name] = {**system.info(), "build_s": round(build_s, 2)}
        log(f"{name}: built in {build_s:.1f} s")
        for n in ns:
            for b in bs:
                r = point(system, n, b, device, floors, warmup, repeats, long and n == long_n)
                rows.append(r)
                if rows_file is not None:
                    append_samples(rows_file, [{"key": f"{name}/{n}/{b}", **r}])
                log(f"  N={n:5d} B={b:3d} {r['status']}: ttft {r.get('ttft_ms', float('nan')):.1f} ms, "
                    f"decode {r.get('decode_ms_per_token', float('nan')):.2f} ms/token, "
                    f"{r.get('samples_per_s', float('nan')):.1f} samples/s")
        system.close()
        del system
        gc.collect()
        if torch.device(device).type == "cuda":
            torch.cuda.empty_cache()
    return rows, infos, floors
