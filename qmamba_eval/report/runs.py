"""Many runs side by side: one row per (run, task) with its headline metrics, as pandas tables."""

from __future__ import annotations

import json
import math
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
            if not isinstance(tasks, dict):
                raise TypeError("tasks is not an object")
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
            skipped.append(str(path))  # a profile.json-like or broken document: not an evaluation run
            continue
        model = doc.get("model") if isinstance(doc.get("model"), dict) else {}
        model = model.get("name")
        for name, t in sorted(tasks.items()):
            if not isinstance(t, dict) or not isinstance(t.get("metrics"), dict):
                continue
            keys = list(t["metrics"]) if all_metrics else headline_metrics(t)
            row = {"run": str(path.parent.relative_to(folder)) if path.parent != Path(folder) else path.parent.name,
                   "task": name, "model": model, "data": (t.get("data") or {}).get("source"),
                   "n": t.get("n_samples"), "version": t.get("version")}
            values = {k: t["metrics"][k] for k in keys if isinstance(t["metrics"].get(k), (int, float))}
            row.update(values)
            warnings = [str(w) for w in [*_list(doc.get("warnings")), *_list(t.get("warnings"))]]
            warnings += [f"{k} is not finite" for k, v in values.items() if not math.isfinite(v)]
            row["warnings"] = "; ".join(warnings) or None
            row["updated"] = doc["run"].get("updated") if isinstance(doc.get("run"), dict) else None
            rows.append(row)
    return pd.DataFrame(rows), skipped


def _list(v) -> list:
    return v if isinstance(v, list) else [v] if v else []
