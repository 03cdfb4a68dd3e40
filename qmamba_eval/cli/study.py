"""``run_eval.py study``: the accuracy-vs-visual-tokens study (``study/tokens.py``): plan the trainings, then
report what they gave beside a profile's latencies."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .options import check_output

DESCRIPTION = ("The accuracy-vs-visual-tokens study. 'plan' writes the train-many jobs (every entry x seed, one "
               "recipe); after 'run_eval.py train-many --jobs JOBS --out RUNS --orders raster,transposed,permuted', "
               "'report' writes study.json (one row per run), study.md and study.png (beside a profile.json's "
               "latencies when given).")


def add_arguments(p) -> None:
    p.add_argument("step", choices=["plan", "report"])
    p.add_argument("--seeds", default="0,1,2", help="plan: training seeds")
    p.add_argument("--jobs", help="plan: where the jobs file goes")
    p.add_argument("--train-args", default="", help="plan: extra run_eval.py train arguments for every job, "
                                                     "e.g. '--device cuda'")
    p.add_argument("--runs", help="report: the train-many output folder")
    p.add_argument("--profile", help="report: a profile.json whose latencies go beside the accuracies")
    p.add_argument("--out", help="report: the folder for study.json / .md / .png")


def run(a) -> int:
    from ..study import tokens

    if a.step == "plan":
        if not a.jobs:
            raise ValueError("study plan needs --jobs FILE (where the train-many jobs go)")
        try:
            seeds = [int(s) for s in a.seeds.split(",") if s.strip()]
        except ValueError:
            raise ValueError(f"--seeds {a.seeds!r}: comma-separated whole numbers") from None
        check_output(a.jobs, "--jobs", folder=False)
        jobs = tokens.plan(seeds, a.train_args.split())
        Path(a.jobs).parent.mkdir(parents=True, exist_ok=True)
        Path(a.jobs).write_text(json.dumps(jobs, indent=1) + "\n")
        print(f"{len(jobs)} jobs ({len(tokens.ENTRIES)} entries x {len(seeds)} seeds): {a.jobs}")
        return 0
    if not a.runs or not a.out:
        raise ValueError("study report needs --runs (the train-many output folder) and --out")
    check_output(a.out, "--out", folder=True)
    if not Path(a.runs).is_dir():
        raise ValueError(f"--runs {a.runs}: no such folder")
    rows = tokens.collect(Path(a.runs))
    if not rows:
        raise ValueError(f"--runs {a.runs}: no finished study job there (<job>/table/table.json)")
    summary = tokens.summarise(rows)
    latency = tokens.latency_rows(Path(a.profile)) if a.profile else []
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    command = "python run_eval.py study " + " ".join(sys.argv[2:] if sys.argv[1:2] == ["study"] else sys.argv[1:])
    (out / "study.json").write_text(json.dumps({"command": command, "rows": rows, "summary": summary,
                                                "latency": latency}, indent=1) + "\n")
    (out / "study.md").write_text(tokens.markdown(summary, command))
    from ..report.study import plot_tokens

    plot_tokens(summary, latency, out / "study.png")
    print((out / "study.md").read_text())
    return 0
