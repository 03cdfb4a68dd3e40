"""Scoring of a task's samples into its ``results.json`` entry: a pure function of the samples and the options
(re-scoring a samples file later gives the same metrics)."""

from __future__ import annotations

from ..results import answers_digest


def first_rows(rows: list, keys) -> list:
    """The rows of ``keys``, the first row of each (a folder written by two runs at once has repeats)."""
    wanted, seen, out = set(keys), set(), []
    for s in rows:
        if s["key"] in wanted and s["key"] not in seen:
            seen.add(s["key"])
            out.append(s)
    return out


def task_entry(task, samples: list, options: dict, variant: str) -> dict:
    """Metrics and what is needed to compare them later (version, prompt, options, answers digest)."""
    return {"version": task.version, "n_samples": len(samples),
            "n_errors": sum(1 for s in samples if s.get("error")), "prompt_variant": variant,
            "prompt_template": task.prompts[variant],
            "report": task.record(),
            "options": options, "metrics": task.hooks.aggregate(samples, options),
            "answers_digest": answers_digest(samples)}
