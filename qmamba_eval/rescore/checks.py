"""Checks on predictions read for re-scoring (any format, once turned into sample rows): what would otherwise
become a traceback or a silently wrong score becomes an error naming the file, the row and the field."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

from ..tasks import Task, all_tasks

_OURS = re.compile(r"^samples_(?P<task>[A-Za-z0-9_.-]+)\.jsonl$")


def check_predictions(task: Task, fmt: str, samples: list, path: Path, notes: list) -> list:
    """The sample rows to score: each with a text ``answer`` (or an ``error``) and references; exact repeats
    of a row (same key) dropped with a note; two different rows for one key refused."""
    path = Path(path)
    m = _OURS.match(path.name)
    if fmt == "qmamba" and m and m["task"] != task.name and m["task"] in all_tasks():
        raise ValueError(f"{path}: a samples file of task {m['task']!r}, re-scored as {task.name!r}; "
                         f"use --task {m['task']} (or rename the file if it really holds {task.name} answers)")
    if fmt == "qmamba" and task.split_column is None:
        odd = sorted({str(s.get("split")) for s in samples
                      if isinstance(s, dict) and s.get("split") not in (None, "all")})
        if odd:
            raise ValueError(f"{path}: rows of split(s) {', '.join(odd[:5])}, but task {task.name!r} has no splits: "
                             "another task's samples? check --task")
    out, seen, dropped = [], {}, 0
    for n, s in enumerate(samples, 1):
        where = f"{path}: row {n}" + (f" (question {s.get('question_id')})" if s.get("question_id") is not None else "")
        if not isinstance(s, dict):
            raise ValueError(f"{where}: expected a JSON object, found {type(s).__name__}")
        answer = s.get("answer")
        if not isinstance(answer, str) and not (answer is None and s.get("error")):
            shown = "missing" if "answer" not in s else f"{type(answer).__name__} {json.dumps(answer)[:40]}"
            raise ValueError(f"{where}: field 'answer' is {shown}; expected the model's answer as text")
        if s.get("error") is not None and not isinstance(s.get("error"), str):
            raise ValueError(f"{where}: field 'error' is {type(s['error']).__name__}; expected text")
        if "references" not in s:
            raise ValueError(f"{where}: field 'references' is missing")
        key = _key(fmt, s)
        if key is not None and key in seen:
            if _same(seen[key], s):
                dropped += 1
                continue
            raise ValueError(f"{where}: question {key[1]!r} appears twice with different answers (rows "
                             f"{seen[key]['_row']} and {n}); keep one row per question")
        if key is not None:
            seen[key] = {**s, "_row": n}
        out.append(s)
    if dropped:
        msg = f"{path}: {dropped} repeated row(s) (same question, same answer) counted once"
        notes.append(msg)
        warnings.warn(msg, stacklevel=2)
    return out


def _key(fmt: str, s: dict):
    if fmt == "qmamba" and s.get("key") is not None:
        return ("key", str(s["key"]))
    if s.get("question_id") is not None:  # LLaVA MME answers share a question id per image: prompt too
        return ("id", str(s["question_id"]), str(s.get("split")), json.dumps(s.get("references"), sort_keys=True),
                str(s.get("prompt", "")))
    return None


def _same(a: dict, b: dict) -> bool:
    a = {k: v for k, v in a.items() if k != "_row"}
    return a.get("answer") == b.get("answer") and a.get("error") == b.get("error")
