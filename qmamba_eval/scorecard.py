"""Regression scorecards: compare a run against a baseline and say, per metric, pass / regressed / improved.

    run_eval.py scorecard --baseline results/baselines/sample-tiny-qmamba.json --current results/runs/<run>
    exit 0: no regression   exit 1: a regression (or, with --fail-on-missing, a missing metric)   exit 2: bad input

Inputs are ``results.json`` (evaluation) or ``profile.json`` documents (or the folders holding them); a baseline is
the same document, optionally with a ``scorecard`` section of tolerances. Compared:

* every task metric in both (``<task>/<metric>``), with the direction and tolerance its task file declares
  (``[metrics]``, recorded in results.json; ``higher`` / ``lower`` / ``none`` (reported as changed) / ``same``),
  absolute tolerance in points;
* ``<task>/answers`` -- the digest of the raw answers: with ``--require-same-answers`` any change is a regression;
* profile figures (``profile.figures``: ``{name: {value, unit, better}}``): as ratios to the run's own
  ``profile.reference`` figure, measured side by side in the same run, with a relative tolerance.

The gate's contract: it compares at least one metric or fails with exit 2; a non-finite current value is a
regression, never an improvement, and a non-finite baseline value is refused; a tolerance is a finite number >= 0
whose pattern matches a compared metric. Documents of different kinds, data (fingerprint), task versions, sample
counts, prompts, scoring options, or (profiles) devices, dtypes and system sets are refused unless
``--allow-mismatch``.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass

from .results import ResultsInputError
from .results import load_results as _load_results

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
    better: str  # higher | lower | none | same
    tol: float = 0.0  # the tolerance as a number (points, or a fraction for timings)


def metric_spec(metric: str, *docs) -> dict:
    """``{"better", "tolerance"?}`` of ``<task>/<metric>`` from the task file's ``[metrics]`` table: as recorded in
    the documents (the baseline's first: it is the gate's contract), else the installed task's, else the default
    (a score: higher is better)."""
    task, _, leaf = metric.partition("/")
    table = next((d["tasks"][task].get("report", {}).get("metrics") for d in docs
                  if (d["tasks"].get(task) or {}).get("report", {}).get("metrics")), None)
    if table is None:
        try:
            from .tasks import all_tasks

            table = all_tasks()[task].metrics
        except (KeyError, ValueError, FileNotFoundError):
            table = {}
    for pattern, spec in table.items():
        if fnmatch.fnmatchcase(leaf, pattern):
            return spec
    return {"better": "higher"}


def direction(metric: str, *docs) -> str:
    return metric_spec(metric, *docs)["better"]


def check_tolerances(overrides: dict, metrics) -> None:
    """Every tolerance finite and >= 0, every pattern matching a compared metric."""
    for pattern, value in overrides.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
            raise ScorecardInputError(f"--tolerance {pattern}={value}: a tolerance is a finite number >= 0")
        if not any(fnmatch.fnmatchcase(m, pattern) for m in metrics):
            from .registry import suggest

            raise ScorecardInputError(f"--tolerance {pattern}={value}: the pattern matches no compared metric."
                                      f"{suggest(pattern, metrics)}")


def _kind(doc: dict) -> str:
    return "profile" if doc.get("profile") and not doc.get("tasks") else "evaluation"


def check_specs(doc: dict, role: str) -> None:
    """The metric directions and tolerances a document records (its tasks' ``[metrics]``) are well formed."""
    from .tasks import DIRECTIONS

    for name, t in (doc.get("tasks") or {}).items():
        table = (t.get("report") or {}).get("metrics") if isinstance(t, dict) else None
        for pattern, spec in (table or {}).items():
            where = f"the {role} document: tasks.{name}.report.metrics[{pattern!r}]"
            if not isinstance(spec, dict) or spec.get("better") not in DIRECTIONS:
                raise ScorecardInputError(f"{where}: better must be one of {', '.join(DIRECTIONS)}, got {spec!r}")
            tol = spec.get("tolerance")
            if tol is not None and (isinstance(tol, bool) or not isinstance(tol, (int, float))
                                    or not math.isfinite(tol) or tol < 0):
                raise ScorecardInputError(f"{where}: tolerance must be a finite number >= 0, got {tol!r}")


def check_comparable(base: dict, cur: dict, allow_mismatch: bool) -> list[str]:
    """Same kind of document; per shared task the same data, version, sample count, prompt, options and metric
    directions; for profiles the same device, dtype and systems. Returns the problems found (refused unless
    allowed)."""
    check_specs(base, "baseline")
    check_specs(cur, "current")
    if _kind(base) != _kind(cur):
        raise ScorecardInputError(f"the baseline is {'a' if _kind(base) == 'profile' else 'an'} {_kind(base)} and "
                                  f"the current document {'a' if _kind(cur) == 'profile' else 'an'} {_kind(cur)}: "
                                  "compare results.json with results.json, profile.json with profile.json")
    problems = []
    for name in sorted(set(base.get("tasks", {})) & set(cur.get("tasks", {}))):
        b, c = base["tasks"][name], cur["tasks"][name]
        for label, get in (("data fingerprint", lambda t: (t.get("data") or {}).get("fingerprint")),
                           ("task version", lambda t: t.get("version")),
                           ("sample count", lambda t: t.get("n_samples")),
                           ("prompt variant", lambda t: t.get("prompt_variant")),
                           ("scoring options", lambda t: t.get("options")),
                           ("metric direction table", lambda t: (t.get("report") or {}).get("metrics"))):
            if get(b) != get(c) and not (label == "metric direction table" and None in (get(b), get(c))):
                problems.append(f"{name}: {label} differs (baseline {get(b)!r}, current {get(c)!r})")
    if _kind(base) == "profile":
        for label, get in (("device", lambda d: (d.get("environment") or {}).get("device_name")),
                           ("dtype", lambda d: d.get("dtype")), ("tiny presets", lambda d: d.get("tiny")),
                           ("systems", lambda d: sorted(d.get("systems") or {}))):
            if get(base) != get(cur):
                problems.append(f"profile: {label} differs (baseline {get(base)!r}, current {get(cur)!r})")
    if problems and not allow_mismatch:
        raise ScorecardInputError("runs are not comparable: " + "; ".join(problems)
                                  + ". Pass --allow-mismatch to compare anyway.")
    return problems


def _profile_ratios(doc: dict, role: str) -> dict:
    prof = doc.get("profile") or {}
    figs = prof.get("figures") or {}
    ref = prof.get("reference")
    ref_value = (figs.get(ref) or {}).get("value") if ref else None
    if ref and (isinstance(ref_value, bool) or not isinstance(ref_value, (int, float)) or not ref_value > 0
                or not math.isfinite(ref_value)):
        raise ScorecardInputError(f"the {role} profile's reference figure {ref} is {ref_value!r}: a reference is a "
                                  "measured time or rate, finite and > 0 (re-run the profile)")
    out = {}
    for name, f in figs.items():
        v = f.get("value")
        if name == ref or isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if v < 0:
            raise ScorecardInputError(f"the {role} profile's figure {name} is {v}: times, rates and sizes are >= 0")
        if f.get("better") not in ("higher", "lower", "none", None):
            raise ScorecardInputError(f"the {role} profile's figure {name}: better is {f.get('better')!r}; expected "
                                      "higher, lower or none")
        better = f.get("better") if f.get("better") in ("higher", "lower") else "none"
        if ref_value and math.isfinite(ref_value):
            out[f"profile/{name}"] = (v / ref_value, better, f"ratio to {ref}")
        else:
            out[f"profile/{name}"] = (v, better, "absolute (no in-run reference)")
    return out


def _judge(delta: float, tol: float, better: str) -> str:
    """pass within tolerance; beyond it improved / regressed by direction, or just changed."""
    if abs(delta) <= tol:
        return "pass"
    if better in ("none", "same"):
        return "changed"
    return "improved" if (delta > 0) == (better == "higher") else "regressed"


def _finite(metric: str, value, role: str) -> float:
    try:
        v = float(value)
    except OverflowError:
        raise ScorecardInputError(f"{role} metric {metric} = {str(value)[:30]}... is too large for a number") from None
    if role == "baseline" and not math.isfinite(v):
        raise ScorecardInputError(f"baseline metric {metric} is {v}: a baseline holds finite numbers; rebuild it "
                                  "(--update-baseline from a good run)")
    return v


def _flat(doc: dict) -> dict:
    out = {}
    for tname, t in doc.get("tasks", {}).items():
        for k, v in t["metrics"].items():
            out[f"{tname}/{k}"] = v
        if t.get("answers_digest"):
            out[f"{tname}/answers"] = t["answers_digest"]
    return out


def _tolerance(metric: str, spec: dict, tol: dict, kind: str) -> float:
    for pattern, value in tol.get("overrides", {}).items():
        if fnmatch.fnmatchcase(metric, pattern):
            return float(value)
    if kind == "score" and spec.get("tolerance") is not None:
        return float(spec["tolerance"])
    return float(tol["timing_rel" if kind == "timing" else "score_abs"])


def compare(base: dict, cur: dict, tolerances: dict | None = None, require_same_answers: bool = False) -> list[Row]:
    tol = {**DEFAULT_TOLERANCES, **(base.get("scorecard", {}).get("tolerances", {})), **(tolerances or {})}
    rows: list[Row] = []
    b, c = _flat(base), _flat(cur)
    for m in sorted(set(b) | set(c)):
        if m.endswith("/answers"):
            better = "same"
        else:
            better = metric_spec(m, base, cur)["better"]
        if m not in c:
            rows.append(Row(m, "missing", b[m], None, None, "", better))
            continue
        if m not in b:
            rows.append(Row(m, "new", None, c[m], None, "", better))
            continue
        if m.endswith("/answers"):
            status = "pass" if b[m] == c[m] else ("regressed" if require_same_answers else "changed")
            rows.append(Row(m, status, b[m], c[m], None, "identical", "same"))
            continue
        bv, cv = _finite(m, b[m], "baseline"), _finite(m, c[m], "current")
        t = _tolerance(m, metric_spec(m, base, cur), tol, "score")
        if not math.isfinite(cv):
            rows.append(Row(m, "regressed", bv, cv, None, "non-finite", better, t))
            continue
        rows.append(Row(m, _judge(cv - bv, 0.0 if better == "same" else t, better), bv, cv, cv - bv,
                        f"±{t:g} abs", better, t))

    bp, cp = _profile_ratios(base, "baseline"), _profile_ratios(cur, "current")
    for m in sorted(set(bp) | set(cp)):
        if m not in cp:
            rows.append(Row(m, "missing", bp[m][0], None, None, "", bp[m][1]))
            continue
        if m not in bp:
            rows.append(Row(m, "new", None, cp[m][0], None, "", cp[m][1]))
            continue
        (bv, better, how), (cv, _, cur_how) = bp[m], cp[m]
        if how != cur_how:  # a ratio against an absolute figure compares nothing
            raise ScorecardInputError(f"{m}: the baseline's figure is {how} but the current one's is {cur_how}: "
                                      "both profiles need their in-run reference figure")
        bv, cv = _finite(m, bv, "baseline"), _finite(m, cv, "current")
        t = _tolerance(m, {}, tol, "timing")
        if not math.isfinite(cv):
            rows.append(Row(m, "regressed", bv, cv, None, "non-finite", better, t))
            continue
        rel = (cv - bv) / bv if bv else (0.0 if cv == bv else math.inf)
        rows.append(Row(m, _judge(rel, t, better), bv, cv, rel, f"±{100 * t:g}% rel, {how}", better, t))
    if not any(r.status not in ("missing", "new") and not r.metric.endswith("/answers") for r in rows):
        raise ScorecardInputError("nothing compared: the documents share no metric (baseline: "
                                  f"{_what(base)}; current: {_what(cur)})")
    return rows


def doc_warnings(doc: dict) -> list[str]:
    """What the run itself said a reader must know (RANDOM weights, unreadable images, ...)."""
    out = [str(w) for w in doc.get("warnings") or [] if w]
    for name, t in sorted((doc.get("tasks") or {}).items()):
        out += [f"{name}: {w}" for w in (t.get("warnings") or []) if w] if isinstance(t, dict) else []
    return out


def _what(doc: dict) -> str:
    if doc.get("tasks"):
        return "tasks " + ", ".join(sorted(doc["tasks"]))
    return f"{len((doc.get('profile') or {}).get('figures') or {})} profile figures"


def verdict(rows: list[Row], fail_on_missing: bool) -> dict:
    counts = {s: sum(r.status == s for r in rows) for s in STATUSES}
    failed = counts["regressed"] > 0 or (fail_on_missing and counts["missing"] > 0)
    return {"passed": not failed, "counts": counts}


def baseline_from(cur: dict, old: dict | None) -> dict:
    """A baseline document: the current results, keeping the old baseline's tolerances. Refused: a document with
    nothing to compare or a non-finite value, or one of another kind than the baseline it replaces."""
    check_specs(cur, "current")
    values = {**_flat(cur), **{m: v for m, (v, _, _) in _profile_ratios(cur, "current").items()}}
    numbers = {m: v for m, v in values.items() if not m.endswith("/answers")}
    if not numbers:
        raise ScorecardInputError("--update-baseline: the current document has no metric to compare later "
                                  f"({_what(cur)})")
    bad = [m for m, v in numbers.items() if not math.isfinite(_finite(m, v, "current"))]
    if bad:
        raise ScorecardInputError(f"--update-baseline: the current document has non-finite values ({', '.join(bad[:5])}"
                                  "): a baseline holds finite numbers; fix the run first")
    if old is not None and _kind(old) != _kind(cur):
        raise ScorecardInputError(f"--update-baseline: the baseline file holds {'a' if _kind(old) == 'profile' else 'an'} "
                                  f"{_kind(old)} and the current document is {'a' if _kind(cur) == 'profile' else 'an'} "
                                  f"{_kind(cur)}; write it to another --baseline file")
    keep = ("schema", "tasks", "profile", "model", "run", "environment", "device", "dtype", "tiny", "systems")
    doc = {k: cur[k] for k in keep if k in cur}
    doc["scorecard"] = (old or {}).get("scorecard", {"tolerances": dict(DEFAULT_TOLERANCES)})
    return doc
