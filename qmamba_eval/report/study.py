"""The study table (``qmamba_eval/study/table.py``) for people: markdown, and a figure of accuracy per task and
system with the scan-order probe beside it."""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path

ORDERS = ("raster", "transposed", "permuted")


def table_markdown(rows, meta) -> str:
    tasks = sorted(rows[0]["tasks"])
    by = defaultdict(lambda: defaultdict(list))  # (system, order) -> task -> [accuracy per seed]
    for r in rows:
        for t in tasks:
            by[(r["system"], r["order"])][t].append(r["tasks"][t]["accuracy"])

    def cell(v):
        if len(v) == 1:
            return f"{v[0]:.1f}"
        return f"{statistics.mean(v):.1f} ± {statistics.stdev(v):.1f}"

    lines = [f"Accuracy on {meta['data']}; questions: {meta['counts']}.",
             "Accuracy in percent (benchmark's own per-question scorer); mean ± sample std over seeds when several.",
             f"Made by: `{meta['command']}`", "",
             "| system | seeds | visual-token order | " + " | ".join(tasks) + " | mean |",
             "| --- | --- | --- | " + " | ".join("---" for _ in tasks) + " | --- |"]
    for (system, order), per in by.items():
        n = len(next(iter(per.values())))
        means = [statistics.mean(per[t]) for t in tasks]
        lines.append(f"| {system} | {n} | {order} | " + " | ".join(cell(per[t]) for t in tasks)
                     + f" | {statistics.mean(means):.1f} |")
    copied = sorted({f"{r['model']}" for r in rows if r.get("copied_from")})
    if copied:
        lines += ["", "Not re-run (order-invariant projector, global attention; raster result copied): "
                  + ", ".join(copied) + "."]
    return "\n".join(lines) + "\n"


def plot_table(rows, meta, path: Path) -> Path:
    """Left: accuracy per task and system (raster order), bars = mean over seeds, whiskers = min..max, the
    majority answer as a grey tick. Right: the mean over tasks per visual-token order (the scan-order probe)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted(rows[0]["tasks"])
    majority = next((r for r in rows if r["model"] == "majority"), None)
    systems = list(dict.fromkeys(r["system"] for r in rows if r["model"] != "majority"))
    orders = [o for o in ORDERS if any(r["order"] == o for r in rows)]

    def per_seed(system, order, task=None):
        got = [r for r in rows if r["system"] == system and r["order"] == order]
        if task is None:
            return [statistics.mean(r["tasks"][t]["accuracy"] for t in tasks) for r in got]
        return [r["tasks"][task]["accuracy"] for r in got]

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.8), gridspec_kw={"width_ratios": [3, 1.3]})
    width = 0.8 / max(1, len(systems))
    for k, system in enumerate(systems):
        xs = [i + (k - (len(systems) - 1) / 2) * width for i in range(len(tasks))]
        vals = [per_seed(system, "raster", t) for t in tasks]
        means = [statistics.mean(v) for v in vals]
        err = [[m - min(v) for m, v in zip(means, vals)], [max(v) - m for m, v in zip(means, vals)]]
        ax.bar(xs, means, width, yerr=err, capsize=2, label=f"{system} ({len(vals[0])} seeds)")
    if majority:
        for i, t in enumerate(tasks):
            ax.hlines(majority["tasks"][t]["accuracy"], i - 0.45, i + 0.45, colors="grey", linestyles="--", lw=1,
                      label="majority answer" if i == 0 else None)
    ax.set_xticks(range(len(tasks)), tasks)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=3)
    ax.set_title("raster order: mean over seeds, whiskers min..max")
    for k, system in enumerate(systems):
        means = [statistics.mean(per_seed(system, o)) if per_seed(system, o) else float("nan") for o in orders]
        bx.plot(range(len(orders)), means, marker="o", label=system)
    bx.set_xticks(range(len(orders)), orders)
    bx.set_ylabel("mean accuracy over tasks (%)")
    bx.set_title("scan-order probe")
    bx.legend(fontsize=7)
    fig.suptitle(meta["data"], fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_tokens(summary: list, latency: list, path: Path) -> Path:
    """Left: accuracy (mean over benchmarks) against the LLM's visual tokens per system, whiskers = seed min..max;
    middle: the spotlight task (POPE) alone; right (when a profile is given): time to first token against the same token counts at real
    scale, so reading across gives accuracy per millisecond."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 3 if latency else 2
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 4.4))
    spot = next((s["spotlight_task"] for s in summary if s.get("spotlight_task")), "spotlight task")
    for ax, key, title in ((axes[0], "mean", "accuracy, mean over benchmarks"), (axes[1], "spotlight", f"{spot} accuracy")):
        for family in dict.fromkeys(s["family"] for s in summary):
            pts = sorted((s["tokens"], s[key]) for s in summary
                         if s["family"] == family and s["order"] == "raster" and key in s)
            if not pts:
                continue
            xs = [x for x, _ in pts]
            ys = [v["mean"] for _, v in pts]
            err = [[v["mean"] - v["min"] for _, v in pts], [v["max"] - v["mean"] for _, v in pts]]
            ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=family)
        ax.set_xscale("log", base=2)
        ax.set_xticks([4, 9, 16, 36], ["4", "9", "16", "36"])
        ax.set_xlabel("LLM visual tokens")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(f"{title} (synthetic test split)", fontsize=9)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=7)
    if latency:
        ax = axes[2]
        for family in dict.fromkeys(r["family"] for r in latency):
            pts = sorted((r["tokens"], r["ttft_ms"]) for r in latency if r["family"] == family and r["ttft_ms"])
            ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", label=family)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("LLM visual tokens")
        ax.set_ylabel("time to first token, ms")
        ax.set_title(f"real scale, batch {latency[0]['batch']}, {latency[0]['device']}", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
