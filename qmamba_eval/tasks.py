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

    def check_columns(self, columns, where: str) -> None:
        missing = [c for c in self.required_columns if c not in columns]
        if missing:
            raise ValueError(f"{where}: task {self.name} needs column(s) {missing}; found {sorted(columns)}. "
                             f"Rename the columns or pass data in the hub schema ({self.hub.get('path', '?')}).")


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
                    options=dict(raw.get("options", {})), source_file=str(path))
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
