"""Pictures of results, for people who would rather look than read."""

from __future__ import annotations

from pathlib import Path


def plot_run(results: dict, path: Path) -> Path:
    """One panel per task with its headline metrics; sample runs are stamped as such."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .tables import headline_metrics

    tasks = list(results["tasks"].items())
    fig, axes = plt.subplots(1, len(tasks), figsize=(2.6 * len(tasks) + 0.6, 3.2), squeeze=False)
    for ax, (name, t) in zip(axes[0], tasks):
        keys = [k for k in headline_metrics(t) if not k.endswith("_ratio")]
        vals = [t["metrics"][k] for k in keys]
        top = float((t.get("report") or {}).get("score_max") or 100.0)
        bars = ax.bar(range(len(keys)), vals, color="#3b6ea8")
        ax.set_xticks(range(len(keys)), keys, fontsize=7, rotation=30, ha="right")
        ax.set_ylim(0, top if max(vals or [0]) <= top else max(vals) * 1.1)
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
        ax.set_title(f"{name} (n={t['n_samples']})", fontsize=9)
        if t["data"]["is_sample"]:
            ax.text(0.5, 0.5, "SAMPLE\nnot a benchmark", transform=ax.transAxes, ha="center", va="center",
                    fontsize=11, color="grey", alpha=0.35, rotation=20)
    model = (results.get("model") or {}).get("name", "?")
    fig.suptitle(f"{model} - {results.get('run', {}).get('name', '')}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
