"""Scoring of a task's samples into its ``results.json`` entry: a pure function of the samples and the options
(re-scoring a samples file later gives the same metrics)."""

from __future__ import annotations

import math

from ..results import answers_digest


def first_rows(rows: list, keys) -> list:
    """The rows of ``keys``, the first row of each (a folder written by two runs at once has repeats)."""
    wanted, seen, out = set(keys), set(), []
    for s in rows:
        if s["key"] in wanted and s["key"] not in seen:
            seen.add(s["key"])
            out.append(s)
    return out


def task_entry(task, samples: list, options: dict, variant: str, max_image_errors: float = 1.0) -> dict:
    """Metrics and what is needed to compare them later (version, prompt, options, answers digest), with the
    warnings a reader must see and the failures that make the run exit 2."""
    n_errors = sum(1 for s in samples if s.get("error"))
    entry = {"version": task.version, "n_samples": len(samples), "n_errors": n_errors, "prompt_variant": variant,
             "prompt_template": task.prompts[variant], "report": task.record(), "options": options,
             "metrics": task.hooks.aggregate(samples, options), "answers_digest": answers_digest(samples)}
    warnings, failures = answer_warnings(samples), []
    long = [s for s in samples if s.get("warning")]
    if long:
        warnings.append(f"{len(long)} prompt(s) longer than the model's positions (first: {long[0]['warning']}): "
                        "their answers come from a cut-off context")
    if samples and n_errors > max_image_errors * len(samples):
        first = next(s for s in samples if s.get("error"))
        failures.append(f"{n_errors} of {len(samples)} questions have no readable image (first: {first['error']}); "
                        f"their answers are scored as wrong, so the metrics mean nothing (--max-image-errors "
                        f"{max_image_errors:g})")
    elif n_errors:
        warnings.append(f"{n_errors} of {len(samples)} questions have no readable image: their answers are scored "
                        "as wrong")
    missing = [k for k in task.headline if k not in entry["metrics"]]
    if missing:
        warnings.append(f"headline metric(s) {missing} of task file {task.source_file} are not among the metrics "
                        "its hooks produced")
    bad = [k for k, v in entry["metrics"].items() if isinstance(v, float) and not math.isfinite(v)]
    if bad:
        warnings.append(f"metric(s) {bad} are not finite")
    entry["warnings"], entry["failures"] = warnings + failures, failures
    return entry


def answer_warnings(samples: list) -> list[str]:
    """A model that says nothing, or the same thing to every question, gets a loud warning (a parser may read
    an empty answer as "yes" and score it 50 %)."""
    answers = [s.get("answer") for s in samples if not s.get("error")]
    if len(answers) < 2:
        return []
    if all(not (a or "").strip() for a in answers):
        return [f"every answer is empty ({len(answers)} questions): the model generates nothing"]
    distinct = {(a or "").strip() for a in answers}
    if len(distinct) == 1:
        return [f"every answer is {next(iter(distinct))!r} ({len(answers)} questions): the model ignores the input"]
    return []
