"""Plain-text tables of a run's results."""

from __future__ import annotations


def headline_metrics(task_result: dict, n_fallback: int = 4) -> list[str]:
    """The task's headline metrics present in its results (from its TOML, recorded per run), else the first few."""
    metrics = task_result.get("metrics", {})
    wanted = (task_result.get("report") or {}).get("headline") or []
    keys = [k for k in wanted if k in metrics]
    return keys or [k for k, v in metrics.items() if isinstance(v, (int, float))][:n_fallback]


def format_table(results: dict) -> str:
    lines = [f"WARNING: {w}" for w in results.get("warnings") or []]
    lines += [f"{'task':<9} {'metric':<16} {'value':>9} {'n':>6}  data", "-" * 60]
    for name, t in results["tasks"].items():
        data = t.get("data") or {}
        src = str(data.get("source", "?")) + (" (SAMPLE - not a benchmark score)" if data.get("is_sample") else "")
        for k in headline_metrics(t):
            lines.append(f"{name:<9} {k:<16} {t['metrics'][k]:>9.2f} {t.get('n_samples', '?'):>6}  {src}")
        notes = []
        if t.get("n_errors"):
            notes.append(f"{t['n_errors']} error sample(s) (unreadable images), scored as wrong")
        if t.get("n_resumed"):
            notes.append("all answers resumed from the run folder" if t["n_resumed"] == t["n_samples"]
                         else f"{t['n_resumed']} of {t['n_samples']} answers resumed from the run folder")
        for w in t.get("warnings") or []:
            notes.append(f"WARNING: {w}")
        lines += [f"{'':<9} {note}" for note in notes]
    return "\n".join(lines)
