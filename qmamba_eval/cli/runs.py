"""``run_eval.py runs``: the runs under a folder with their headline metrics, one row per run and task."""

from __future__ import annotations

import sys
from pathlib import Path

from .options import check_output

DESCRIPTION = ("Tabulate the evaluation runs under a folder (default results/runs): one row per run and task with "
               "its headline metrics, as markdown (default), CSV or JSON lines.")


def add_arguments(p) -> None:
    p.add_argument("folder", nargs="?", default="results/runs", help="a run folder or a folder of runs")
    p.add_argument("--task", help="only this task")
    p.add_argument("--all-metrics", action="store_true", help="every metric, not only the headline ones")
    p.add_argument("--csv", metavar="FILE", help="write the table as CSV ('-' for stdout)")
    p.add_argument("--json", action="store_true", help="print JSON lines (one object per row) instead of markdown")


def run(a) -> int:
    from ..report.runs import runs_frame

    check_output(a.csv, "--csv", folder=False)
    folder = Path(a.folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: no such folder (run folders are under --output-dir, default results/runs)")
    df, skipped = runs_frame(folder, a.all_metrics)
    for s in skipped:
        print(f"note: {s} is not an evaluation results document (skipped)", file=sys.stderr)
    if a.task and len(df):
        if a.task not in set(df.task):
            raise ValueError(f"--task {a.task}: no run under {folder} has this task "
                             f"(tasks there: {', '.join(sorted(set(df.task)))})")
        df = df[df.task == a.task]
    if not len(df):
        raise ValueError(f"{folder}: no evaluation runs there (no results.json with tasks)")
    df = df.dropna(axis=1, how="all")
    if a.csv:
        df.to_csv(sys.stdout if a.csv == "-" else a.csv, index=False)
        if a.csv != "-":
            print(f"{len(df)} rows: {a.csv}", file=sys.stderr)
        return 0
    if a.json:
        print(df.to_json(orient="records", lines=True), end="")
        return 0
    print(_markdown(df))
    return 0


def _markdown(df) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        cells = []
        for c in cols:
            v = r[c]
            cells.append("—" if v is None or v != v else f"{v:.2f}" if isinstance(v, float) else str(v))
        lines.append("| " + " | ".join(x.replace("|", "\\|") for x in cells) + " |")
    return "\n".join(lines)
