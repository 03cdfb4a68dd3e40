"""Profile outputs: CSV + JSON (pandas), PNG plots, a markdown report, and the scorecard's ``profile`` section."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

# figure name suffix -> (unit, better)
FIGURES = {"ttft_ms": ("ms", "lower"), "decode_ms_per_token": ("ms", "lower"), "e2e_short_ms": ("ms", "lower"),
           "samples_per_s": ("samples/s", "higher"), "prefill_ms": ("ms", "lower"),
           "peak_alloc_gib": ("GiB", "lower"), "tokens_per_s_256": ("tokens/s", "higher")}
COLUMNS = ["system", "kind", "n_tokens", "batch", "status", "visual_tokens_to_llm", "llm_tokens", "vision_ms",
           "projector_ms", "prefill_ms", "ttft_ms", "decode_ms_per_token", "e2e_short_ms", "e2e_256_ms",
           "samples_per_s", "decode_tokens_per_s", "tokens_per_s_256", "peak_alloc_gib", "nvml_used_gib",
           "prefill_tflop", "prefill_tflops_per_s", "prefill_floor_fraction", "vision_tflops_per_s",
           "decode_floor_ms", "decode_floor_fraction", "error"]


def frame(rows: list) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    return df[[c for c in COLUMNS if c in df.columns]]


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


def plots(df: pd.DataFrame, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = df[df.status == "ok"]
    main = ok[~ok.system.str.startswith("qmamba-q")]
    paths = []
    b1 = int(main.batch.min()) if len(main) else 1

    def save(fig, name):
        p = out / name
        fig.tight_layout()
        fig.savefig(p, dpi=110)
        plt.close(fig)
        paths.append(p)

    def style(ax, xlabel, ylabel, title, legend=True):  # log-x line plot: labels, grid, legend
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        if legend:
            ax.legend(fontsize=8)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, col, title in ((axes[0], "ttft_ms", "time to first token"), (axes[1], "prefill_ms", "LLM prefill")):
        for system, g in main[main.batch == b1].groupby("system"):
            g = g.sort_values("n_tokens")
            ax.plot(g.n_tokens, g[col], marker="o", label=system, linestyle="--" if system == "reference" else "-")
        ax.set_yscale("log")
        style(ax, "image tokens N", "ms", f"{title}, batch {b1}", legend=False)
    axes[0].legend(fontsize=8)
    save(fig, "latency_vs_tokens.png")

    fig, ax = plt.subplots(figsize=(6, 4.2))
    bmax = int(main.batch.max()) if len(main) else 1
    for system, g in main[main.batch == bmax].groupby("system"):
        g = g.sort_values("n_tokens")
        if g.peak_alloc_gib.notna().any():
            ax.plot(g.n_tokens, g.peak_alloc_gib, marker="o", label=system)
    style(ax, "image tokens N", "peak allocated GiB", f"memory, batch {bmax}")
    save(fig, "memory_vs_tokens.png")

    fig, ax = plt.subplots(figsize=(7, 4.2))
    n_bar = 729 if (main.n_tokens == 729).any() else (int(main.n_tokens.max()) if len(main) else 0)
    sel = main[(main.n_tokens == n_bar) & (main.batch == bmax)].sort_values("samples_per_s")
    ax.barh(sel.system, sel.samples_per_s)
    for y, v in enumerate(sel.samples_per_s):
        ax.text(v, y, f" {v:.1f}", va="center", fontsize=8)
    ax.set_xlabel("samples/s (8-token answers)")
    ax.set_title(f"throughput, N={n_bar}, batch {bmax}")
    save(fig, "throughput.png")

    q = ok[ok.system.str.startswith("qmamba-q")].copy()
    if len(q):
        q["queries"] = q.system.str.slice(len("qmamba-q")).astype(int)
        fig, ax = plt.subplots(figsize=(6, 4.2))
        for b, g in q.groupby("batch"):
            g = g.sort_values("queries")
            ax.plot(g.queries, g.e2e_short_ms, marker="o", label=f"batch {b}")
        style(ax, "Q-Mamba queries (LLM visual tokens)", "end-to-end ms (8-token answer)",
              f"Q-Mamba query count, N={int(q.n_tokens.iloc[0])}")
        save(fig, "qmamba_queries.png")
    return paths


def markdown(df: pd.DataFrame, meta: dict) -> str:
    env = meta.get("environment", {})
    lines = [f"# Profile: {meta.get('name', '')}", "",
             f"Device: {env.get('device_name')}; dtype {meta.get('dtype')}; floors measured in this run: "
             f"{_fmt(meta['floors'].get('bf16_tflops'))} TFLOP/s bf16 GEMM, "
             f"{_fmt(meta['floors'].get('copy_gbps'))} GB/s copy. Random weights. Sweep wall time "
             f"{meta.get('wall_s')} s (model construction included).", "",
             "| system | N | B | LLM tokens | vision ms | proj ms | prefill ms | TTFT ms | decode ms/tok | "
             "e2e 8 tok ms | e2e 256 tok ms | samples/s | peak GiB | prefill TFLOP/s | floor frac |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for _, r in df.iterrows():
        if r.status != "ok":
            lines.append(f"| {r.system} | {r.n_tokens} | {r.batch} | {r.status.upper()} |" + " |" * 11)
            continue
        lines.append("| " + " | ".join([str(r.system), str(r.n_tokens), str(r.batch), _fmt(r.get("llm_tokens"), 0)]
                                       + [_fmt(r.get(c)) for c in ("vision_ms", "projector_ms", "prefill_ms",
                                                                   "ttft_ms", "decode_ms_per_token", "e2e_short_ms",
                                                                   "e2e_256_ms", "samples_per_s", "peak_alloc_gib",
                                                                   "prefill_tflops_per_s",
                                                                   "prefill_floor_fraction")]) + " |")
    return "\n".join(lines) + "\n"


def _fmt(v, digits=2) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)
