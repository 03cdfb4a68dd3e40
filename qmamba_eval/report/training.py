"""The training loss curve, stages marked."""

from __future__ import annotations

from pathlib import Path


def plot_losses(history: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    x = 0
    for stage in sorted({h["stage"] for h in history}):
        ys = [h["loss"] for h in history if h["stage"] == stage]
        name = next(h["stage_name"] for h in history if h["stage"] == stage)
        ax.plot(range(x, x + len(ys)), ys, lw=0.8, label=f"stage {stage}: {name}")
        x += len(ys)
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (each stage's targets)")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title("training loss (synthetic data)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
