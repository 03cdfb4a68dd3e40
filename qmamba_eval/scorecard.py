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

import fnmatch
import math
from dataclasses import dataclass

from .results import ResultsInputError
from .results import load_results as _load_results

HIGHER = ("accuracy", "f1", "precision", "recall", "score", "acc", "acc_plus", "perception", "cognition", "total",
          "throughput", "per_s", "tokens_per_s", "samples_per_s", "mfu")
LOWER = ("latency", "_ms", "ms_per", "_s", "memory", "mib", "gib", "bytes", "peak")
NEUTRAL = ("yes_ratio", "other_ratio")
STATUSES = ("pass", "regressed", "improved", "changed", "missing", "new")
DEFAULT_TOLERANCES = {"score_abs": 0.5, "timing_rel": 0.10}


class ScorecardInputError(ResultsInputError):
    """A file that is not a results document, or runs that must not be compared."""


def load_results(path) -> dict:
    try:
        return _load_results(path)
    except ResultsInputError as e:
        raise ScorecardInputError(str(e)) from None


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


def verdict(rows: list[Row], fail_on_missing: bool) -> dict:
    counts = {s: sum(r.status == s for r in rows) for s in STATUSES}
    failed = counts["regressed"] > 0 or (fail_on_missing and counts["missing"] > 0)
    return {"passed": not failed, "counts": counts}


def baseline_from(cur: dict, old: dict | None) -> dict:
    """A baseline document: the current results, keeping the old baseline's tolerances."""
    doc = {k: cur[k] for k in ("schema", "tasks", "profile", "model", "run", "environment") if k in cur}
    doc["scorecard"] = (old or {}).get("scorecard", {"tolerances": dict(DEFAULT_TOLERANCES)})
    return doc
