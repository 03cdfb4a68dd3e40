"""Per-task behaviour: one hook module per benchmark (``hooks/<name>.py``), named by the task's TOML file.

A hook module defines ``HOOKS = Hooks(...)``: the four pure functions every task needs (prompt fields,
references, per-sample score, aggregate) and, optionally, what only some benchmarks have (an official local
layout, a raw file format, third-party answer files, extra output files). Generic code calls these and never
tests a benchmark's name, and no list of benchmarks exists: a task's TOML names its module, found here by short
name or anywhere by dotted path (``hooks = "mypkg.my_hooks"``). A new benchmark is a TOML file and a hook module
(docs/benchmarks.md).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional


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
    """The ``HOOKS`` of a hook module: one of this package's modules by short name (``qmamba_eval/hooks/<name>.py``)
    or any importable module by its dotted path (``mypkg.my_hooks``)."""
    module_name = name if "." in name else f"{__name__}.{name}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and (module_name == e.name or module_name.startswith(e.name + ".")):  # the module itself
            import pkgutil

            from ..registry import suggest

            here = [m.name for m in pkgutil.iter_modules(__path__) if m.name != "common"]
            hint = suggest(name, here) if "." not in name else ""
            if "." in name:
                raise ValueError(f"hook module {module_name!r} not found: is its package installed or on "
                                 "PYTHONPATH?") from None
            raise ValueError(f"hook module {module_name!r} not found.{hint} Add qmamba_eval/hooks/{name}.py, or "
                             "name an importable module by its dotted path (hooks = \"mypkg.my_hooks\")") from None
        raise ValueError(f"hook module {module_name!r} cannot be imported: {e}") from None
    except ImportError as e:
        raise ValueError(f"hook module {module_name!r} cannot be imported: {e}") from None
    except Exception as e:  # the module's own code failed while importing
        raise ValueError(f"hook module {module_name!r} failed while importing: {type(e).__name__}: {e}") from e
    hooks = getattr(module, "HOOKS", None)
    if not isinstance(hooks, Hooks):
        raise ValueError(f"hook module {module_name!r} defines no HOOKS = Hooks(...)")
    return hooks
