"""Plain-text tables of a run's results."""

from __future__ import annotations


def headline_metrics(task_result: dict, n_fallback: int = 4) -> list[str]:
    """The task's headline metrics present in its results (from its TOML, recorded per run), else the first few."""
    metrics = task_result.get("metrics", {})
    wanted = (task_result.get("report") or {}).get("headline") or []
    keys = [k for k in wanted if k in metrics]
    return keys or [k for k, v in metrics.items() if isinstance(v, (int, float))][:n_fallback]


def format_table(results: dict) -> str:
    lines = [f"{'task':<9} {'metric':<16} {'value':>9} {'n':>6}  data"]
    lines.append("-" * 60)
    for name, t in results["tasks"].items():
        src = t["data"]["source"] + (" (SAMPLE - not a benchmark score)" if t["data"]["is_sample"] else "")
        for k in headline_metrics(t):
            lines.append(f"{name:<9} {k:<16} {t['metrics'][k]:>9.2f} {t['n_samples']:>6}  {src}")
        if t.get("n_errors"):
            lines.append(f"{'':<9} {'errors':<16} {t['n_errors']:>9d}")
    return "\n".join(lines)
