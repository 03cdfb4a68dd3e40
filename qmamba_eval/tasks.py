"""Task registry: task definitions are TOML files (``tasks/*.toml``) naming a hook set.

A task has a ``metadata.version`` (bump it when prompts or scoring change: results of different
versions are never compared silently), named prompt variants, the hub dataset it comes from and the
columns it needs.  Extra task folders can be added with ``QMAMBA_TASKS_PATH`` (os.pathsep-separated).
"""

from __future__ import annotations

import os
import string
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .hooks import Hooks, load_hooks
from .registry import lookup


def _builtin_tasks_dir() -> Path:
    """The top-level ``tasks/`` of a checkout (editable install), else the copy installed with the package
    (``qmamba_eval.task_files``, built from that same folder)."""
    checkout = Path(__file__).resolve().parents[1] / "tasks"
    if checkout.is_dir() and any(checkout.glob("*.toml")):
        return checkout
    try:
        from importlib.resources import files

        return Path(str(files("qmamba_eval.task_files")))
    except ModuleNotFoundError:
        return checkout


TASKS_DIR = _builtin_tasks_dir()


@dataclass
class Task:
    name: str
    version: str
    hooks: Hooks
    prompts: dict
    required_columns: list
    description: str = ""
    max_new_tokens: int = 16
    split_column: str | None = None
    answer_options: list = field(default_factory=list)  # closed answer set, for likelihood answering
    headline: list = field(default_factory=list)  # metrics shown first in tables and plots
    score_max: float = 100.0  # the top of the headline metrics' scale (plots)
    hub: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    source_file: str = ""
    columns: dict = field(default_factory=dict)  # column -> {"type", "optional", "values"} ([columns])

    def prompt(self, doc: dict, variant: str = "default") -> str:
        template = lookup(self.prompts, variant, f"prompt variant of task {self.name}")
        fields = self.hooks.fields(doc)
        try:
            return template.format(**fields)
        except KeyError as e:
            raise ValueError(f"task {self.name}: prompt {variant!r} uses {e}, which this row lacks") from None

    def template_field(self, prompt: str, name: str, variant: str = "default") -> str:
        """Undo the template: the value of field ``name`` in a ``prompt`` built from ``variant`` (the literal
        text around the field is cut off where it is found)."""
        template = self.prompts[variant]
        marker = "{" + name + "}"
        if marker not in template:
            return prompt
        before, after = template.split(marker, 1)
        before, after = before.split("}")[-1], after.split("{")[0]
        if before and before in prompt:
            prompt = prompt.split(before, 1)[1]
        if after.strip() and after in prompt:
            prompt = prompt.split(after, 1)[0]
        return prompt.strip()

    def split_of(self, doc: dict) -> str:
        return str(doc.get(self.split_column) or "all") if self.split_column else "all"

    def check_rows(self, rows, where: str, id_columns=("question_id", "id")) -> None:
        """Every row's values against the task's [columns] types: a bad one is an error naming the source, the
        row (1-based, with its question id) and the column. ``rows``: dicts (absent columns count as missing)."""
        present = {c: 0 for c in self.columns}
        n = 0
        for n, row in enumerate(rows, 1):
            if not isinstance(row, dict):
                raise ValueError(f"{where}: row {n}: expected an object with columns, found {_value_name(row)}")
            for col, spec in self.columns.items():
                if spec["type"] == "image":  # an unreadable image is an error sample at run time
                    continue
                v = row.get(col)
                empty = v is None or (isinstance(v, (list, tuple, str)) and len(v) == 0 and spec["type"] != "text")
                if empty:
                    if spec["optional"] is None:
                        raise ValueError(f"{_row_where(where, n, row, id_columns)}: column {col!r} is "
                                         f"{'missing' if col not in row else _value_name(v) if v is None else 'empty'}"
                                         f"; expected {_type_name(spec['type'])}")
                    continue
                present[col] += 1
                if not _type_ok(spec["type"], v):
                    raise ValueError(f"{_row_where(where, n, row, id_columns)}: column {col!r} is {_value_name(v)}; "
                                     f"expected {_type_name(spec['type'])}")
                if spec["values"] and str(v).strip().lower() not in spec["values"]:
                    raise ValueError(f"{_row_where(where, n, row, id_columns)}: column {col!r} is {v!r}; expected "
                                     f"one of {', '.join(spec['values'])}")
        for col, spec in self.columns.items():
            if spec["optional"] == "column" and 0 < present[col] < n:
                first = next(i for i, r in enumerate(rows, 1) if r.get(col) in (None, [], ()))
                raise ValueError(f"{_row_where(where, first, rows[first - 1], id_columns)}: column {col!r} is "
                                 f"empty in this row but set in {present[col]} of {n} rows; give every row its "
                                 f"{col} (or none, for a split without them)")

    def check_columns(self, columns, where: str) -> None:
        missing = [c for c in self.required_columns if c not in columns]
        if missing:
            raise ValueError(f"{where}: task {self.name} needs column(s) {missing}; found {sorted(columns)}. "
                             f"Rename the columns or pass data in the hub schema ({self.hub.get('path', '?')}).")


def _row_where(where: str, n: int, row: dict, id_columns) -> str:
    qid = next((row[c] for c in id_columns if isinstance(row, dict) and row.get(c) is not None), None)
    return f"{where}: row {n}" + (f" (question {qid})" if qid is not None else "")


# -- row types: a task's [columns] table ---------------------------------------------------------------------
# Each column is a type, or {type = ..., optional = "row" | "column", values = [...]}:
#   "text"   a string;  "id"  a string or an integer;  "number"  an int or float;  "image"  anything (an image
#   that cannot be read becomes an error sample at run time);  "list[T]"  a list of T;  "answer"  a string or
#   {"answer": string} (VQA answer lists).  A "?" after the type = optional = "row": a row may lack it or hold
#   null (or an empty list).  optional = "column": absent or null in every row (a test split) or in none.
#   values: the allowed values, compared stripped and lower-cased.
COLUMN_TYPES = ("text", "id", "number", "image", "answer")


def _type_ok(kind: str, v) -> bool:
    if kind.startswith("list[") and kind.endswith("]"):
        return isinstance(v, (list, tuple)) and all(_type_ok(kind[5:-1], x) for x in v)
    if kind == "text":
        return isinstance(v, str)
    if kind == "id":
        return isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool))
    if kind == "number":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if kind == "answer":
        return isinstance(v, str) or (isinstance(v, dict) and isinstance(v.get("answer"), str))
    return True  # image


def _type_name(kind: str) -> str:
    if kind.startswith("list["):
        return f"a list of {_type_name(kind[5:-1])}"
    return {"text": "text", "id": "a string or integer id", "number": "a number",
            "answer": "an answer (text or {\"answer\": text})"}.get(kind, kind)


def _value_name(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, (list, tuple)):
        bad = next((x for x in v if not isinstance(x, str)), None)
        return f"a list ({len(v)} items)" if bad is None else f"a list holding {_value_name(bad)}"
    text = repr(v) if not isinstance(v, (dict, bytes)) else type(v).__name__
    return f"{type(v).__name__} {text[:40]}"


def parse_columns(raw: dict, where: str) -> dict:
    """A task file's [columns] table -> {column: {"type", "optional", "values"}}; a bad spec names the file."""
    out = {}
    for col, spec in (raw or {}).items():
        spec = {"type": spec} if isinstance(spec, str) else dict(spec)
        kind = str(spec.get("type", ""))
        optional = spec.get("optional")
        if kind.endswith("?"):
            kind, optional = kind[:-1], optional or "row"
        base = kind[5:-1] if kind.startswith("list[") and kind.endswith("]") else kind
        if base not in COLUMN_TYPES or optional not in (None, "row", "column"):
            raise ValueError(f"task file {where}: [columns] {col} = {spec!r}: type must be one of "
                             f"{', '.join(COLUMN_TYPES)} or list[...] (with '?' or optional = \"row\" | \"column\")")
        values = [str(v).strip().lower() for v in spec.get("values", [])]
        out[col] = {"type": kind, "optional": optional, "values": values}
    return out


def task_options(task: Task, given: dict) -> dict:
    """The task's scoring options (its TOML ``[options]``) with the given values for those it has."""
    opts = dict(task.options)
    opts.update({k: v for k, v in given.items() if k in task.options and v is not None})
    return opts


def _parse(path: Path) -> Task:
    raw = tomllib.loads(path.read_text())
    try:
        version = str(raw["metadata"]["version"])
        task = Task(name=raw["name"], version=version, hooks=load_hooks(raw["hooks"]),
                    prompts=dict(raw["prompts"]), required_columns=list(raw["required_columns"]),
                    description=raw.get("description", ""), max_new_tokens=int(raw.get("max_new_tokens", 16)),
                    split_column=raw.get("split_column"), answer_options=list(raw.get("answer_options", [])),
                    headline=list(raw.get("headline", [])), score_max=float(raw.get("score_max", 100.0)),
                    hub=dict(raw.get("hub", {})),
                    options=dict(raw.get("options", {})), source_file=str(path),
                    columns=parse_columns(raw.get("columns", {}), str(path)))
    except KeyError as e:
        raise ValueError(f"task file {path} lacks {e}") from None
    if "default" not in task.prompts:
        raise ValueError(f"task file {path} has no 'default' prompt")
    for name, tpl in task.prompts.items():
        list(string.Formatter().parse(tpl))  # raises on a malformed template
    return task


def _task_dirs() -> list[Path]:
    extra = [Path(p) for p in os.environ.get("QMAMBA_TASKS_PATH", "").split(os.pathsep) if p]
    return [TASKS_DIR, *extra]


def all_tasks() -> dict[str, Task]:
    if not TASKS_DIR.is_dir() and not os.environ.get("QMAMBA_TASKS_PATH"):
        raise FileNotFoundError(f"task definitions not found at {TASKS_DIR}: install the project from its checkout "
                                "(pip install -e .) or point QMAMBA_TASKS_PATH at the tasks/ folder")
    tasks = {}
    for d in _task_dirs():
        if not d.is_dir():
            raise FileNotFoundError(f"QMAMBA_TASKS_PATH entry {d} is not a folder")
        for f in sorted(d.glob("*.toml")):
            t = _parse(f)
            tasks[t.name] = t
    return tasks


def get_task(name: str) -> Task:
    return lookup(all_tasks(), name, "task")
