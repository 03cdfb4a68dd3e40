"""Per-task behaviour: one hook module per benchmark (``hooks/<name>.py``), named by the task's TOML file.

A hook module defines ``HOOKS = Hooks(...)``: the four pure functions every task needs (prompt fields,
references, per-sample score, aggregate) and, optionally, what only some benchmarks have (an official local
layout, a raw file format, third-party answer files, extra output files). Generic code calls these and never
tests a benchmark's name. A TOML file may also name a module outside the package by its dotted path
(``hooks = "mypkg.my_hooks"``), so a new benchmark is a TOML file, a hook module and a scoring module.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

BUILTIN = ("vqav2", "gqa", "textvqa", "pope", "mme")


@dataclass(frozen=True)
class Hooks:
    fields: Callable[[dict], dict]  # doc -> values for the prompt template
    references: Callable[[dict], object]  # doc -> what scoring needs (JSON-able)
    score_one: Callable[[str, object, dict], tuple]  # (answer, references, options) -> (parsed, score)
    aggregate: Callable[[list, dict], dict]  # (samples, options) -> {metric: value}
    # optional --------------------------------------------------------------------------------------------
    # folder in the benchmark's official release layout -> (rows in the hub schema, files to fingerprint)
    load_layout: Optional[Callable[[Path], tuple[list, list]]] = None
    # rows of a JSONL file given with --data, when they are in the benchmark's own raw format -> hub rows
    rows_from_file: Optional[Callable[[list, Path], Optional[list]]] = None
    # (task, answer rows {question_id, text, prompt?}, references path, questions path) -> sample rows
    read_answers: Optional[Callable] = None
    # (scored samples, run folder) -> {key: file name} of extra outputs (e.g. an EvalAI submission file)
    write_outputs: Optional[Callable[[list, Path], dict]] = None
    # (answer row -> key, doc -> key): a second way to join answer files to references when question ids
    # do not match (LLaVA's TextVQA answers are keyed by image id + question text)
    join_keys: Optional[tuple] = None
    # a line of an lmms-eval samples file (target + metric dicts, no doc) -> {"split", "references"}; its
    # docstring says what such scoring lacks
    from_lmms_target: Optional[Callable[[dict], dict]] = None


def load_hooks(name: str) -> Hooks:
    """The ``HOOKS`` of built-in module ``name`` or of a module given by its dotted path."""
    module_name = name if "." in name else f"{__name__}.{name}"
    if "." not in name and name not in BUILTIN:
        from ..registry import UnknownNameError, suggest

        raise UnknownNameError(f"unknown task hook set {name!r}.{suggest(name, BUILTIN)} "
                               "(or give a module's dotted path)")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"hook module {module_name!r} cannot be imported: {e}") from None
    hooks = getattr(module, "HOOKS", None)
    if not isinstance(hooks, Hooks):
        raise ValueError(f"hook module {module_name!r} defines no HOOKS = Hooks(...)")
    return hooks


def __getattr__(attr):  # HOOKS: every built-in hook set, loaded on first use
    if attr == "HOOKS":
        return {name: load_hooks(name) for name in BUILTIN}
    raise AttributeError(attr)
