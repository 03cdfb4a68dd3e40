"""Many runs side by side: one row per (run, task) with its headline metrics, as pandas tables."""

from __future__ import annotations

import json
from pathlib import Path


def find_runs(folder: Path) -> list[Path]:
    """Every results.json under ``folder`` (a run folder itself, or a folder of runs at any depth)."""
    folder = Path(folder)
    if (folder / "results.json").is_file():
        return [folder / "results.json"]
    return sorted(folder.rglob("results.json"))


def runs_frame(folder: Path, all_metrics: bool = False):
    """A DataFrame: run, task, model, data, n, each headline metric (or every metric), warnings, updated."""
    import pandas as pd

    from .tables import headline_metrics

    rows, skipped = [], []
    for path in find_runs(folder):
        try:
            doc = json.loads(path.read_text())
            tasks = doc["tasks"]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
            skipped.append(str(path))  # a profile.json-like or broken document: not an evaluation run
            continue
        model = (doc.get("model") or {}).get("name")
        for name, t in sorted(tasks.items()):
            if not isinstance(t, dict) or not isinstance(t.get("metrics"), dict):
                continue
            keys = list(t["metrics"]) if all_metrics else headline_metrics(t)
            row = {"run": str(path.parent.relative_to(folder)) if path.parent != Path(folder) else path.parent.name,
                   "task": name, "model": model, "data": (t.get("data") or {}).get("source"),
                   "n": t.get("n_samples"), "version": t.get("version")}
            row.update({k: t["metrics"][k] for k in keys if isinstance(t["metrics"].get(k), (int, float))})
            row["warnings"] = "; ".join([*(doc.get("warnings") or []), *(t.get("warnings") or [])]) or None
            row["updated"] = (doc.get("run") or {}).get("updated")
            rows.append(row)
    return pd.DataFrame(rows), skipped
