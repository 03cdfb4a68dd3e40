"""``run_eval.py scorecard``: compare a run (or a profile) with a baseline; exit 0 pass, 1 regression, 2 bad input."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from .options import check_output

DESCRIPTION = ("Compare a results.json (run or profile) with a baseline, metric by metric. "
               "Exit 0: no regression; 1: a regression; 2: bad input.")


def add_arguments(p) -> None:
    p.add_argument("--baseline", required=True, help="baseline results.json (or folder)")
    p.add_argument("--current", required=True, help="current results.json (or folder)")
    p.add_argument("--tolerance", action="append", default=[],
                   help="METRIC_GLOB=VALUE (absolute points for scores, fraction for timings), repeatable")
    p.add_argument("--require-same-answers", action="store_true", help="any change in raw answers regresses")
    p.add_argument("--fail-on-missing", action="store_true")
    p.add_argument("--allow-mismatch", action="store_true", help="compare despite different data/versions")
    p.add_argument("--only-changes", action="store_true", help="leave passing rows out of the table")
    p.add_argument("--update-baseline", action="store_true", help="write --current into --baseline and stop")
    p.add_argument("--json-out")
    p.add_argument("--markdown-out")
    p.add_argument("--html-out")
    p.add_argument("--png-out")


def _tolerance_overrides(items) -> dict:
    from ..scorecard import ScorecardInputError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        try:
            out[key.strip()] = float(value)
        except ValueError:
            raise ScorecardInputError(f"--tolerance {item!r}: expected METRIC_GLOB=NUMBER") from None
        if not sep or not key.strip():
            raise ScorecardInputError(f"--tolerance {item!r}: expected METRIC_GLOB=NUMBER")
    return out


def run(a) -> int:
    from ..report.scorecard import to_html, to_markdown, to_png
    from ..results import write_json_atomic
    from ..scorecard import (DEFAULT_TOLERANCES, ScorecardInputError, baseline_from, check_comparable,
                             check_tolerances, compare, load_results, verdict)

    overrides = _tolerance_overrides(a.tolerance)  # checked before any file is read
    for flag in ("json_out", "markdown_out", "html_out", "png_out"):
        check_output(getattr(a, flag), "--" + flag.replace("_", "-"), folder=False)
    if a.update_baseline:
        check_output(a.baseline, "--baseline", folder=False)
    cur = load_results(a.current)
    if a.update_baseline:
        old = load_results(a.baseline) if Path(a.baseline).is_file() else None
        Path(a.baseline).parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(Path(a.baseline), baseline_from(cur, old))
        print(f"baseline written: {a.baseline}")
        return 0
    base = load_results(a.baseline)
    try:
        problems = check_comparable(base, cur, a.allow_mismatch)
        tol = {**DEFAULT_TOLERANCES, **base.get("scorecard", {}).get("tolerances", {})}
        check_tolerances(overrides, [r.metric for r in compare(base, cur, tol)])
        tol["overrides"] = {**tol.get("overrides", {}), **overrides}
        rows = compare(base, cur, tol, a.require_same_answers)
    except (TypeError, KeyError, AttributeError) as e:  # a malformed document: bad input, never the code 1
        raise ScorecardInputError(f"malformed results document ({type(e).__name__}: {e})") from None
    v = verdict(rows, a.fail_on_missing)
    md = to_markdown(rows, base, cur, v, problems, show_pass=not a.only_changes)
    print(md)
    if a.markdown_out:
        Path(a.markdown_out).write_text(md)
    if a.json_out:
        Path(a.json_out).write_text(json.dumps({**v, "problems": problems, "rows": [asdict(r) for r in rows]},
                                               indent=1, default=str))
    if a.html_out:
        Path(a.html_out).write_text(to_html(rows, v, "qmamba-eval scorecard"))
    if a.png_out:
        to_png(rows, v, Path(a.png_out))
    return 0 if v["passed"] else 1
