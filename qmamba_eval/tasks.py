"""Task registry: benchmarks are data -- TOML files (``tasks/*.toml``) naming a hook module.

A task file holds everything generic code needs to know of a benchmark: ``metadata.version`` (bump it when prompts
or scoring change: results of different versions are never compared silently), named prompt variants, the hub
dataset, the columns and their types, the scoring options with their choices (``[options.<name>]``: each becomes a
command-line flag), each metric's direction and tolerance for scorecards (``[metrics]``), and the synthetic data's
question style. Its ``hooks`` names a module by short name (``qmamba_eval/hooks/<name>.py``) or dotted path.

Extra task folders come from ``QMAMBA_TASKS_PATH`` (os.pathsep-separated). A task there with the name of a
built-in one is refused unless ``QMAMBA_TASKS_OVERRIDE=1``; then it is announced and its file and digest are
recorded with every result. Task files are parsed once per change of their folder listing.
"""

from __future__ import annotations

import hashlib
import os
import re
import string
import tomllib
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from .hooks import Hooks, load_hooks
from .readers.columns import parse_columns
from .registry import lookup

NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
DIRECTIONS = ("higher", "lower", "none", "same")  # "none": reported when it changes; "same": must not change


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
    options: dict = field(default_factory=dict)  # scoring option -> {"default", "choices", "help"}
    metrics: dict = field(default_factory=dict)  # metric glob -> {"better", "tolerance"?} (first match wins)
    columns: dict = field(default_factory=dict)  # column -> {"type", "optional", "values"} ([columns])
    synthetic_style: str | None = None  # the synthetic data's question style (qmamba_eval/synthetic/styles.py)
    spotlight: bool = False  # shown alone beside the mean over benchmarks in study figures
    source_file: str = ""
    digest: str = ""  # of the task file's bytes
    overrides: str | None = None  # the built-in task file this one replaces (QMAMBA_TASKS_OVERRIDE=1)

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

    def record(self) -> dict:
        """What results.json keeps of the task definition: enough to compare and re-read results later."""
        out = {"headline": self.headline, "score_max": self.score_max, "metrics": self.metrics,
               "task_file": {"path": self.source_file, "digest": self.digest}}
        if self.overrides:
            out["task_file"]["overrides"] = self.overrides
        return out


def task_options(task: Task, given: dict) -> dict:
    """The task's scoring options (defaults from its TOML) with the given values for those it has; a value outside
    an option's choices is an error naming the option."""
    opts = {k: spec["default"] for k, spec in task.options.items()}
    for k, v in given.items():
        if k in task.options and v is not None:
            choices = task.options[k].get("choices")
            if choices and v not in choices:
                raise ValueError(f"--{k.replace('_', '-')} {v!r}: task {task.name} takes one of {', '.join(choices)}")
            opts[k] = v
    return opts


def _options(raw: dict, path: Path) -> dict:
    out = {}
    for name, spec in (raw or {}).items():
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise ValueError(f"task file {path}: [options.{name}]: an option name is lower-case letters, digits "
                             "and '_' (it becomes a command-line flag)")
        spec = dict(spec) if isinstance(spec, dict) else {"default": spec}
        if "default" not in spec:
            raise ValueError(f"task file {path}: [options.{name}] has no default")
        choices = [str(c) for c in spec.get("choices", [])]
        if choices and str(spec["default"]) not in choices:
            raise ValueError(f"task file {path}: [options.{name}] default {spec['default']!r} is not among its "
                             f"choices {choices}")
        out[name] = {"default": spec["default"], "choices": choices, "help": str(spec.get("help", ""))}
    return out


def _metrics(raw: dict, path: Path) -> dict:
    out = {}
    for pattern, spec in (raw or {}).items():
        spec = {"better": spec} if isinstance(spec, str) else dict(spec)
        if spec.get("better") not in DIRECTIONS:
            raise ValueError(f"task file {path}: [metrics] {pattern!r}: better must be one of {', '.join(DIRECTIONS)}")
        tol = spec.get("tolerance")
        if tol is not None and (isinstance(tol, bool) or not isinstance(tol, (int, float)) or not tol >= 0):
            raise ValueError(f"task file {path}: [metrics] {pattern!r}: tolerance must be a number >= 0")
        out[pattern] = {k: v for k, v in spec.items() if k in ("better", "tolerance")}
    return out or {"*": {"better": "higher"}}  # undeclared: the metrics are scores


def parse_task(path: Path) -> Task:
    data = path.read_bytes()
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"task file {path} is not valid TOML: {e}") from None
    try:
        hooks = load_hooks(raw["hooks"])
    except KeyError as e:
        raise ValueError(f"task file {path} lacks {e.args[0]!r}") from None
    except ValueError as e:
        raise ValueError(f"task file {path}: {e}") from None
    try:
        task = Task(name=raw["name"], version=str(raw["metadata"]["version"]), hooks=hooks,
                    prompts=dict(raw["prompts"]), required_columns=list(raw["required_columns"]),
                    description=raw.get("description", ""), max_new_tokens=int(raw.get("max_new_tokens", 16)),
                    split_column=raw.get("split_column"), answer_options=list(raw.get("answer_options", [])),
                    headline=list(raw.get("headline", [])), score_max=float(raw.get("score_max", 100.0)),
                    hub=dict(raw.get("hub", {})), options=_options(raw.get("options"), path),
                    metrics=_metrics(raw.get("metrics"), path), columns=parse_columns(raw.get("columns", {}), str(path)),
                    synthetic_style=(raw.get("synthetic") or {}).get("style"), spotlight=bool(raw.get("spotlight")),
                    source_file=str(path),
                    digest=hashlib.sha256(data).hexdigest()[:16])
    except KeyError as e:
        raise ValueError(f"task file {path} lacks {e.args[0]!r}") from None
    _check_fields(task, path)
    return task


def _check_fields(task: Task, path: Path) -> None:
    if not isinstance(task.name, str) or not NAME.fullmatch(task.name):
        raise ValueError(f"task file {path}: name {task.name!r} must be letters, digits, '_', '.' or '-' (it is "
                         "used in --tasks lists, flags and file names)")
    if task.max_new_tokens < 1:
        raise ValueError(f"task file {path}: max_new_tokens = {task.max_new_tokens}: must be at least 1")
    known = set(task.required_columns) | set(task.columns)
    if task.split_column and task.split_column not in known:
        raise ValueError(f"task file {path}: split_column {task.split_column!r} is not one of its columns "
                         f"({', '.join(sorted(known))})")
    if "default" not in task.prompts:
        raise ValueError(f"task file {path} has no 'default' prompt")
    for name, tpl in task.prompts.items():
        try:
            list(string.Formatter().parse(tpl))
        except ValueError as e:
            raise ValueError(f"task file {path}: prompt {name!r} is not a valid template ({e})") from None


def _task_dirs() -> list[Path]:
    extra = [Path(p) for p in os.environ.get("QMAMBA_TASKS_PATH", "").split(os.pathsep) if p]
    return [TASKS_DIR, *extra]


def _listing(dirs) -> tuple:
    """What the parsed tasks depend on: every task file's path, size and modification time."""
    out = []
    for d in dirs:
        if not d.is_dir():
            raise FileNotFoundError(f"QMAMBA_TASKS_PATH entry {d} is not a folder")
        for f in sorted(d.glob("*.toml")):
            st = f.stat()
            out.append((str(f), st.st_size, st.st_mtime_ns))
    return tuple(out) + (os.environ.get("QMAMBA_TASKS_OVERRIDE", ""),)


_parsed: dict = {}


def all_tasks() -> dict[str, Task]:
    if not TASKS_DIR.is_dir() and not os.environ.get("QMAMBA_TASKS_PATH"):
        raise FileNotFoundError(f"task definitions not found at {TASKS_DIR}: install the project from its checkout "
                                "(pip install -e .) or point QMAMBA_TASKS_PATH at the tasks/ folder")
    dirs = _task_dirs()
    key = _listing(dirs)
    if key not in _parsed:
        _parsed.clear()
        _parsed[key] = _load(dirs)
    return dict(_parsed[key])


def _load(dirs) -> dict[str, Task]:
    tasks: dict[str, Task] = {}
    for d in dirs:
        for f in sorted(d.glob("*.toml")):
            t = parse_task(f)
            old = tasks.get(t.name)
            if old is not None:
                if os.environ.get("QMAMBA_TASKS_OVERRIDE") != "1":
                    raise ValueError(f"task file {f} defines task {t.name!r}, which {old.source_file} defines "
                                     "already; rename it, or set QMAMBA_TASKS_OVERRIDE=1 to replace that task "
                                     "(the replacement is recorded with every result)")
                t.overrides = f"{old.source_file} (digest {old.digest})"
                warnings.warn(f"task {t.name!r} comes from {f} (digest {t.digest}), replacing {old.source_file}",
                              stacklevel=3)
            tasks[t.name] = t
    return tasks


def get_task(name: str) -> Task:
    return lookup(all_tasks(), name, "task")
