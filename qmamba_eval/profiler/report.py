"""Profile outputs: CSV + JSON (pandas), a markdown report, and the scorecard's ``profile`` section (the plots:
``report/profile.py``)."""

from __future__ import annotations

import math

import pandas as pd

# figure name suffix -> (unit, better)
FIGURES = {"ttft_ms": ("ms", "lower"), "decode_ms_per_token": ("ms", "lower"), "e2e_short_ms": ("ms", "lower"),
           "samples_per_s": ("samples/s", "higher"), "prefill_ms": ("ms", "lower"),
           "peak_alloc_gib": ("GiB", "lower"), "tokens_per_s_256": ("tokens/s", "higher")}
COLUMNS = ["system", "kind", "n_tokens", "batch", "status", "visual_tokens_to_llm", "llm_tokens", "vision_ms",
           "projector_ms", "prefill_ms", "prefill_iqr_ms", "prefill_kernel_ms", "ttft_ms", "ttft_iqr_ms",
           "nonphysical", "decode_ms_per_token", "e2e_short_ms", "e2e_256_ms",
           "samples_per_s", "decode_tokens_per_s", "tokens_per_s_256", "peak_alloc_gib", "nvml_used_gib",
           "prefill_tflop", "prefill_tflops_per_s", "prefill_floor_fraction", "vision_tflops_per_s",
           "decode_floor_ms", "decode_floor_fraction", "error"]


def frame(rows: list) -> pd.DataFrame:
    df = flag_nonphysical(pd.DataFrame(rows))
    return df[[c for c in COLUMNS if c in df.columns]]


def flag_nonphysical(df: pd.DataFrame) -> pd.DataFrame:
    """Mark a point whose LLM prefill costs less than a point of the same system and batch with fewer LLM tokens,
    by more than both points' spread (IQR): a figure no machine can produce, so something in the measurement
    (launch overhead, a cold cache, a timer) is wrong there."""
    df = df.copy()
    df["nonphysical"] = False
    if "prefill_ms" not in df or "llm_tokens" not in df:
        return df
    spread = df["prefill_iqr_ms"].fillna(0.0) if "prefill_iqr_ms" in df else pd.Series(0.0, index=df.index)
    ok = df[df.status == "ok"] if "status" in df else df
    for _, g in ok.groupby(["system", "batch"]):
        for idx, r in g.iterrows():
            fewer = g[g.llm_tokens < r.llm_tokens]
            if len(fewer) and r.prefill_ms + spread[idx] < (fewer.prefill_ms - spread[fewer.index]).max():
                df.loc[idx, "nonphysical"] = True
    return df


def profile_section(df: pd.DataFrame) -> dict:
    """``{"reference": name, "figures": {name: {value, unit, better}}}`` for ``run_eval.py scorecard``.

    Names read ``<system>/N<n>/B<b>/<figure>``; the reference is the reference pipeline's time to first token
    at the reference point (N = 729 or the largest N measured, batch 1), measured in the same run.
    """
    ok = df[df.status == "ok"]
    figures = {}
    for _, r in ok.iterrows():
        for col, (unit, better) in FIGURES.items():
            v = r.get(col)
            if v is not None and not (isinstance(v, float) and math.isnan(v)):
                figures[f"{r.system}/N{r.n_tokens}/B{r.batch}/{col}"] = {"value": float(v), "unit": unit,
                                                                         "better": better}
    ref = ok[ok.kind == "reference"]
    reference = None
    if len(ref):
        n_ref = 729 if (ref.n_tokens == 729).any() else int(ref.n_tokens.max())
        b_ref = int(ref[ref.n_tokens == n_ref].batch.min())
        reference = f"reference/N{n_ref}/B{b_ref}/ttft_ms"
    return {"reference": reference, "figures": figures}


def markdown(df: pd.DataFrame, meta: dict) -> str:
    env = meta.get("environment", {})
    lines = [f"# Profile: {meta.get('name', '')}", "",
             f"Device: {env.get('device_name')}; dtype {meta.get('dtype')}; floors measured in this run: "
             f"{_fmt(meta['floors'].get('bf16_tflops'))} TFLOP/s bf16 GEMM, "
             f"{_fmt(meta['floors'].get('copy_gbps'))} GB/s copy. Random weights. Sweep wall time "
             f"{meta.get('wall_s')} s (model construction included).", "",
             "Prefill: median ± IQR of the repeats; kernel ms: the GPU kernels' own time in one prefill "
             "(torch.profiler), beside the wall time.", "",
             "| system | N | B | LLM tokens | vision ms | proj ms | prefill ms | prefill kernel ms | TTFT ms | "
             "decode ms/tok | e2e 8 tok ms | e2e 256 tok ms | samples/s | peak GiB | prefill TFLOP/s | floor frac |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for _, r in df.iterrows():
        if r.status != "ok":
            lines.append(f"| {r.system} | {r.n_tokens} | {r.batch} | {r.status.upper()} |" + " |" * 12)
            continue
        prefill = _fmt(r.get("prefill_ms")) + (f" ± {_fmt(r.get('prefill_iqr_ms'))}"
                                               if r.get("prefill_iqr_ms") is not None else "")
        prefill += " (NON-PHYSICAL)" if r.get("nonphysical") else ""
        lines.append("| " + " | ".join([str(r.system), str(r.n_tokens), str(r.batch), _fmt(r.get("llm_tokens"), 0),
                                        _fmt(r.get("vision_ms")), _fmt(r.get("projector_ms")), prefill]
                                       + [_fmt(r.get(c)) for c in ("prefill_kernel_ms", "ttft_ms",
                                                                   "decode_ms_per_token", "e2e_short_ms",
                                                                   "e2e_256_ms", "samples_per_s", "peak_alloc_gib",
                                                                   "prefill_tflops_per_s",
                                                                   "prefill_floor_fraction")]) + " |")
    bad = df[df.get("nonphysical", False) == True] if "nonphysical" in df else df.iloc[:0]  # noqa: E712
    lines += ["", f"Non-physical points (more LLM tokens, less prefill time beyond the spread): {len(bad)}"
              + (": " + ", ".join(f"{r.system} N={r.n_tokens} B={r.batch}" for _, r in bad.iterrows()) if len(bad)
                 else "")]
    return "\n".join(lines) + "\n"


def _fmt(v, digits=2) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)
