"""Pictures of a profile: latency and prefill against image tokens, memory, throughput, the Q-Mamba query count."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


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

    bmax = int(main.batch.max()) if len(main) else 1
    has_memory = "peak_alloc_gib" in main and main.peak_alloc_gib.notna().any()
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for system, g in main[main.batch == bmax].groupby("system"):
        g = g.sort_values("n_tokens")
        if g.peak_alloc_gib.notna().any():
            ax.plot(g.n_tokens, g.peak_alloc_gib, marker="o", label=system)
    style(ax, "image tokens N", "peak allocated GiB", f"memory, batch {bmax}", legend=has_memory)
    if not has_memory:
        ax.text(0.5, 0.5, "no device memory figures\n(CPU run)", ha="center", va="center", transform=ax.transAxes)
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
