"""Regression scorecards: compare a run against a baseline and say, per metric, pass / regressed / improved.

    run_eval.py scorecard --baseline results/baselines/sample-tiny-qmamba.json --current results/runs/<run>
    exit 0: no regression   exit 1: a regression (or, with --fail-on-missing, a missing metric)   exit 2: bad input

Inputs are ``results.json`` files (or the folders holding them); a baseline is the same document, optionally
with a ``scorecard`` section of tolerances.  Compared:

* every task metric in both (``<task>/<metric>``): direction by name (accuracies, F1, MME scores: higher is
  better; yes-ratio has no direction and is only reported as changed), absolute tolerance in points;
* ``<task>/answers`` -- the digest of the raw answers: with ``--require-same-answers`` any change is a
  regression (determinism / behaviour gate for CI);
* profiler figures (``profile.figures``: ``{name: {value, unit, better}}``): as ratios to the run's own
  ``profile.reference`` figure, measured side by side in the same run, with a relative tolerance; machines are
  noisy, ratios much less so.

Runs on different data (fingerprint), task versions or sample counts are refused unless ``--allow-mismatch``.
"""

from __future__ import annotations

import argparse
import fnmatch
import html
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

HIGHER = ("accuracy", "f1", "precision", "recall", "score", "acc", "acc_plus", "perception", "cognition", "total",
          "throughput", "per_s", "tokens_per_s", "samples_per_s", "mfu")
LOWER = ("latency", "_ms", "ms_per", "_s", "memory", "mib", "gib", "bytes", "peak")
NEUTRAL = ("yes_ratio", "other_ratio")
DEFAULT_TOLERANCES = {"score_abs": 0.5, "timing_rel": 0.10}


class ScorecardInputError(ValueError):
    """A file that is not a results document, or runs that must not be compared."""


@dataclass
class Row:
    metric: str
    status: str  # pass | regressed | improved | changed | missing | new
    baseline: object
    current: object
    delta: float | None
    tolerance: str
    better: str  # higher | lower | neutral | same
    tol: float = 0.0  # the tolerance as a number (points, or a fraction for timings)


def load_results(path) -> dict:
    p = Path(path)
    if p.is_dir():
        p = p / "results.json"
    if not p.is_file():
        raise ScorecardInputError(f"{path}: no results.json there")
    try:
        doc = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ScorecardInputError(f"{p}: not valid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("tasks", {}), dict) or \
            not (doc.get("tasks") or doc.get("profile")):
        raise ScorecardInputError(f"{p}: not a results document (no 'tasks' or 'profile')")
    for name, t in doc.get("tasks", {}).items():
        if not isinstance(t, dict) or not isinstance(t.get("metrics"), dict):
            raise ScorecardInputError(f"{p}: task {name!r} has no 'metrics' table")
    return doc


def direction(metric: str) -> str:
    leaf = metric.rsplit("/", 1)[-1].lower()
    if leaf in NEUTRAL or leaf == "n":
        return "neutral" if leaf in NEUTRAL else "same"
    if any(leaf == h or leaf.endswith(h) for h in HIGHER):
        return "higher"
    if any(h in leaf for h in LOWER):
        return "lower"
    return "higher"


def _tolerance_for(metric: str, tolerances: dict, kind: str) -> float:
    for pattern, value in tolerances.get("overrides", {}).items():
        if fnmatch.fnmatch(metric, pattern):
            return float(value)
    return float(tolerances["timing_rel" if kind == "timing" else "score_abs"])


def check_comparable(base: dict, cur: dict, allow_mismatch: bool) -> list[str]:
    """Per shared task: same data fingerprint, task version, sample count. Returns the problems found."""
    problems = []
    for name in sorted(set(base.get("tasks", {})) & set(cur.get("tasks", {}))):
        b, c = base["tasks"][name], cur["tasks"][name]
        for label, get in (("data fingerprint", lambda t: t.get("data", {}).get("fingerprint")),
                           ("task version", lambda t: t.get("version")),
                           ("sample count", lambda t: t.get("n_samples")),
                           ("prompt variant", lambda t: t.get("prompt_variant")),
                           ("scoring options", lambda t: t.get("options"))):
            if get(b) != get(c):
                problems.append(f"{name}: {label} differs (baseline {get(b)!r}, current {get(c)!r})")
    if problems and not allow_mismatch:
        raise ScorecardInputError("runs are not comparable: " + "; ".join(problems)
                                  + ". Pass --allow-mismatch to compare anyway.")
    return problems


def _profile_ratios(doc: dict) -> dict:
    prof = doc.get("profile") or {}
    figs = prof.get("figures") or {}
    ref = prof.get("reference")
    ref_value = figs.get(ref, {}).get("value") if ref else None
    out = {}
    for name, f in figs.items():
        if name == ref:
            continue
        v = f.get("value")
        if not isinstance(v, (int, float)):
            continue
        if ref_value:
            out[f"profile/{name}"] = (v / ref_value, f.get("better") or direction(name), f"ratio to {ref}")
        else:
            out[f"profile/{name}"] = (v, f.get("better") or direction(name), "absolute (no in-run reference)")
    return out


def _judge(delta: float, tol: float, better: str) -> str:
    """pass within tolerance; beyond it improved / regressed by direction, or just changed."""
    if abs(delta) <= tol:
        return "pass"
    if better in ("neutral", "same"):
        return "changed"
    return "improved" if (delta > 0) == (better == "higher") else "regressed"


def compare(base: dict, cur: dict, tolerances: dict | None = None, require_same_answers: bool = False) -> list[Row]:
    tol = {**DEFAULT_TOLERANCES, **(base.get("scorecard", {}).get("tolerances", {})), **(tolerances or {})}
    rows: list[Row] = []

    def flat(doc):
        out = {}
        for tname, t in doc.get("tasks", {}).items():
            for k, v in t["metrics"].items():
                out[f"{tname}/{k}"] = v
            if t.get("answers_digest"):
                out[f"{tname}/answers"] = t["answers_digest"]
        return out

    b, c = flat(base), flat(cur)
    for m in sorted(set(b) | set(c)):
        if m not in c:
            rows.append(Row(m, "missing", b[m], None, None, "", direction(m)))
            continue
        if m not in b:
            rows.append(Row(m, "new", None, c[m], None, "", direction(m)))
            continue
        if m.endswith("/answers"):
            same = b[m] == c[m]
            status = "pass" if same else ("regressed" if require_same_answers else "changed")
            rows.append(Row(m, status, b[m], c[m], None, "identical", "same"))
            continue
        bv, cv = float(b[m]), float(c[m])
        d = cv - bv
        better = direction(m)
        t = _tolerance_for(m, tol, "score")
        status = "pass" if math.isnan(bv) and math.isnan(cv) else _judge(d, 0.0 if better == "same" else t, better)
        rows.append(Row(m, status, bv, cv, d, f"±{t:g} abs", better, t))

    bp, cp = _profile_ratios(base), _profile_ratios(cur)
    for m in sorted(set(bp) | set(cp)):
        if m not in cp:
            rows.append(Row(m, "missing", bp[m][0], None, None, "", bp[m][1]))
            continue
        if m not in bp:
            rows.append(Row(m, "new", None, cp[m][0], None, "", cp[m][1]))
            continue
        (bv, better, how), (cv, _, _) = bp[m], cp[m]
        t = _tolerance_for(m, tol, "timing")
        rel = (cv - bv) / bv if bv else float("inf")
        status = _judge(rel, t, better)
        rows.append(Row(m, status, bv, cv, rel, f"±{100 * t:g}% rel, {how}", better, t))
    return rows


# -- rendering ----------------------------------------------------------------------------------------

ICON = {"pass": "✅ pass", "regressed": "❌ regressed", "improved": "🟢 improved", "changed": "⚠️ changed",
        "missing": "❓ missing", "new": "➕ new"}


def _fmt(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e-3 or abs(v) >= 1e5 else f"{v:.2f}"
    return str(v)


def _context(base: dict, cur: dict) -> list[tuple]:
    out = []
    for name in sorted(set(base.get("tasks", {})) | set(cur.get("tasks", {}))):
        b, c = base.get("tasks", {}).get(name, {}), cur.get("tasks", {}).get(name, {})
        out.append((name, b.get("n_samples"), c.get("n_samples"), (b.get("data") or {}).get("fingerprint"),
                    (c.get("data") or {}).get("fingerprint"), c.get("version")))
    return out


def verdict(rows: list[Row], fail_on_missing: bool) -> dict:
    counts = {s: sum(r.status == s for r in rows) for s in ICON}
    failed = counts["regressed"] > 0 or (fail_on_missing and counts["missing"] > 0)
    return {"passed": not failed, "counts": counts}


def to_markdown(rows: list[Row], base: dict, cur: dict, v: dict, problems: list[str], show_pass: bool = True) -> str:
    head = "## Scorecard: " + ("✅ no regressions" if v["passed"] else "❌ REGRESSION")
    lines = [head, "", " · ".join(f"{k}: {n}" for k, n in v["counts"].items() if n), ""]
    lines += ["| task | n (base → cur) | data fingerprint | version |", "|---|---|---|---|"]
    for name, nb, nc, fb, fc, ver in _context(base, cur):
        fp = fb if fb == fc else f"{fb} → **{fc}**"
        lines.append(f"| {name} | {nb} → {nc} | {fp} | {ver} |")
    if problems:
        lines += ["", "**Compared despite:** " + "; ".join(problems)]
    lines += ["", "| metric | status | baseline | current | Δ | tolerance |", "|---|---|---|---|---|---|"]
    order = {"regressed": 0, "missing": 1, "changed": 2, "improved": 3, "new": 4, "pass": 5}
    for r in sorted(rows, key=lambda r: (order[r.status], r.metric)):
        if r.status == "pass" and not show_pass:
            continue
        delta = "—" if r.delta is None else (f"{100 * r.delta:+.1f}%" if "rel" in r.tolerance else f"{r.delta:+.2f}")
        lines.append(f"| `{r.metric}` | {ICON[r.status]} | {_fmt(r.baseline)} | {_fmt(r.current)} | {delta} | "
                     f"{r.tolerance} |")
    return "\n".join(lines) + "\n"


def to_html(markdown_rows: list[Row], v: dict, title: str) -> str:
    colors = {"pass": "#e8f5e9", "regressed": "#ffcdd2", "improved": "#c8e6c9", "changed": "#fff3cd",
              "missing": "#eceff1", "new": "#e3f2fd"}
    body = "".join(
        f"<tr style='background:{colors[r.status]}'><td><code>{html.escape(r.metric)}</code></td>"
        f"<td>{html.escape(ICON[r.status])}</td><td>{html.escape(_fmt(r.baseline))}</td>"
        f"<td>{html.escape(_fmt(r.current))}</td><td>{html.escape(_fmt(r.delta))}</td>"
        f"<td>{html.escape(r.tolerance)}</td></tr>" for r in markdown_rows)
    status = "no regressions" if v["passed"] else "REGRESSION"
    return (f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif}td,th{padding:4px 10px;border-bottom:1px solid #ddd}</style>"
            f"<h2>{html.escape(title)}: {status}</h2><table><tr><th>metric</th><th>status</th><th>baseline</th>"
            f"<th>current</th><th>Δ</th><th>tolerance</th></tr>{body}</table>")


def to_png(rows: list[Row], v: dict, path: Path) -> None:
    """Each numeric metric's change in units of its tolerance: the band is the pass zone."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    num = [r for r in rows if r.delta is not None]
    colors = {"pass": "#4caf50", "regressed": "#e53935", "improved": "#1e88e5", "changed": "#fb8c00"}
    fig, ax = plt.subplots(figsize=(8, 0.28 * max(len(num), 4) + 1.2))
    for i, r in enumerate(num):
        x = max(-5.0, min(5.0, r.delta / (r.tol or 1e-9)))
        ax.plot([0, x], [i, i], color=colors.get(r.status, "grey"), lw=2)
        ax.plot(x, i, "o", color=colors.get(r.status, "grey"))
    ax.axvspan(-1, 1, color="#e8f5e9", zorder=0)
    ax.set_yticks(range(len(num)), [r.metric for r in num], fontsize=7)
    ax.set_xlim(-5.5, 5.5)
    ax.set_xlabel("change / tolerance (clipped at ±5; green band = pass)")
    ax.set_title("scorecard: " + ("no regressions" if v["passed"] else "REGRESSION"))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def baseline_from(cur: dict, old: dict | None) -> dict:
    """A baseline document: the current results, keeping the old baseline's tolerances."""
    doc = {k: cur[k] for k in ("schema", "tasks", "profile", "model", "run", "environment") if k in cur}
    doc["scorecard"] = (old or {}).get("scorecard", {"tolerances": dict(DEFAULT_TOLERANCES)})
    return doc


def cmd_scorecard(argv) -> int:
    p = argparse.ArgumentParser(prog="run_eval.py scorecard", description=__doc__.split("\n\n")[0])
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
    a = p.parse_args(argv)
    try:
        cur = load_results(a.current)
        if a.update_baseline:
            old = load_results(a.baseline) if Path(a.baseline).is_file() else None
            Path(a.baseline).parent.mkdir(parents=True, exist_ok=True)
            Path(a.baseline).write_text(json.dumps(baseline_from(cur, old), indent=1, sort_keys=True) + "\n")
            print(f"baseline written: {a.baseline}")
            return 0
        base = load_results(a.baseline)
        overrides = {}
        for item in a.tolerance:
            if "=" not in item:
                raise ScorecardInputError(f"--tolerance {item!r}: expected METRIC_GLOB=VALUE")
            k, val = item.split("=", 1)
            overrides[k] = float(val)
        problems = check_comparable(base, cur, a.allow_mismatch)
        tol = {**DEFAULT_TOLERANCES, **base.get("scorecard", {}).get("tolerances", {})}
        tol["overrides"] = {**tol.get("overrides", {}), **overrides}
        rows = compare(base, cur, tol, a.require_same_answers)
    except (ScorecardInputError, ValueError) as e:
        print(f"scorecard: bad input: {e}")
        return 2
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
