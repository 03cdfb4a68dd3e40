"""The results documents: one place that reads and writes them, for the runner, the re-scorer, the scorecard
and the profiler.

* ``samples_<task>.jsonl`` -- one JSON line per question, appended and fsync-ed batch by batch;
* ``results.json``         -- ``{"schema", "tasks": {name: {...metrics...}}, "profile"?, "model", "run",
  "environment"}``, written atomically (a reader never sees half a file);
* ``answers_digest``       -- a fingerprint of the raw answers: equal digests mean the model said the same.

This module depends on nothing else in the package (no torch at import time).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
import time
from contextlib import contextmanager
from pathlib import Path

RESULTS_SCHEMA = 1
VERSIONED_PACKAGES = ("qmamba-eval", "torch", "transformers", "datasets", "tokenizers", "mamba-ssm",
                      "causal-conv1d", "triton", "nvidia-ml-py")


class ResultsInputError(ValueError):
    """A file that is not a results document (or not one we can read)."""


class RunFolderBusy(RuntimeError):
    """Another process is writing into the same run folder."""


# -- environment ----------------------------------------------------------------------------------


def library_versions() -> dict:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for pkg in VERSIONED_PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def device_name(device: str = "cpu") -> str:
    if str(device).startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cuda (unavailable)"
    return platform.processor() or platform.machine()


def gpu_facts() -> dict:
    """Driver and device facts through NVML (pynvml / nvidia-ml-py) when it is installed; {} otherwise."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            h = pynvml.nvmlDeviceGetHandleByIndex(0)
            name = pynvml.nvmlDeviceGetName(h)
            return {"driver": str(pynvml.nvmlSystemGetDriverVersion()),
                    "name": name.decode() if isinstance(name, bytes) else str(name),
                    "memory_total_bytes": int(pynvml.nvmlDeviceGetMemoryInfo(h).total),
                    "count": int(pynvml.nvmlDeviceGetCount())}
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # not installed, no driver, no GPU
        return {}


def environment(device: str = "cpu") -> dict:
    """What ran: library versions, platform, device (and GPU driver facts on CUDA)."""
    env = {"versions": library_versions(), "platform": platform.platform(), "device_name": device_name(device)}
    if str(device).startswith("cuda"):
        env["gpu"] = gpu_facts()
    return env


# -- files ----------------------------------------------------------------------------------------


def write_text_atomic(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file, fsync and a rename: all or nothing."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    return path


def write_json_atomic(path: Path, doc) -> Path:
    """``doc`` as indented JSON, atomically."""
    return write_text_atomic(path, json.dumps(doc, indent=1, sort_keys=True, default=str) + "\n")


def read_samples(path: Path) -> list[dict]:
    """Rows of a samples file. Only a torn *last* line (a crash mid-write: no newline at its end) is cut off;
    any other line that is not a JSON object with a ``key`` is an error naming its line number (nothing after
    it is ever dropped)."""
    path = Path(path)
    if not path.is_file():
        return []
    data = path.read_bytes()
    lines = data.split(b"\n")
    rows, good_bytes, last = [], 0, len(lines) - 1
    for i, raw in enumerate(lines):
        if i == last:  # empty when the file ends with a newline; else torn by a crash mid-write: cut off
            break
        try:
            row = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            if not raw.strip():
                raise ResultsInputError(f"{path}:{i + 1}: empty line in a samples file; delete it") from None
            raise ResultsInputError(f"{path}:{i + 1}: not valid JSON ({getattr(e, 'msg', e)}); fix or delete "
                                    "that line (the lines after it are kept)") from None
        if not isinstance(row, dict) or not isinstance(row.get("key"), str):
            raise ResultsInputError(f"{path}:{i + 1}: not a sample row (a JSON object with a 'key'); fix or "
                                    "delete that line")
        rows.append(row)
        good_bytes += len(raw) + 1
    if good_bytes < len(data):
        with open(path, "r+b") as f:
            f.truncate(good_bytes)
    return rows


@contextmanager
def run_lock(folder: Path):
    """Hold ``<folder>/.lock`` (an exclusive ``flock``) while a run writes into ``folder``; a second run into the
    same folder is refused at once with :class:`RunFolderBusy` (never two writers: no duplicate rows, no lost
    ``results.json`` entries). The lock dies with its process, so a killed run leaves nothing to clean up."""
    import fcntl

    path = Path(folder) / ".lock"
    f = open(path, "a+")
    try:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise RunFolderBusy(f"{folder} is in use by another run ({holder}); wait for it to finish, or "
                                "choose another --run-name / --output-dir") from None
        except OSError as e:  # a file system without locks (some network mounts): say so, and go on
            import warnings

            warnings.warn(f"{path}: cannot lock the run folder ({e.strerror or e}); do not start two runs "
                          "into it at once", stacklevel=3)
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n")
        f.flush()
        yield path
    finally:
        f.close()  # releases the lock


def read_json_file(path: Path, what: str, fix: str):
    """A JSON document we wrote ourselves (run.json, results.json), or an error naming the file and the fix."""
    path = Path(path)
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ResultsInputError(f"{path}: {what} is not valid JSON ({getattr(e, 'msg', None) or e.reason}); "
                                f"{fix}") from None


def write_lines_atomic(path: Path, rows: list[dict]) -> None:
    """A whole samples file at once, atomically, in the format ``append_samples`` writes."""
    write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows))


def append_samples(path: Path, rows: list[dict]) -> None:
    with open(path, "a") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False, default=str) + "\n")
        f.flush()
        os.fsync(f.fileno())


def answers_digest(samples: list[dict]) -> str:
    """Fingerprint of the raw answers, in key order: equal digests = the model said exactly the same."""
    h = hashlib.sha256()
    for s in sorted(samples, key=lambda s: s["key"]):
        h.update(json.dumps([s["key"], s.get("answer"), s.get("error")]).encode())
    return h.hexdigest()[:16]


def load_results(path) -> dict:
    """A ``results.json`` or ``profile.json`` (or the folder holding one) that has ``tasks`` (each with a ``metrics`` table) or
    ``profile``."""
    p = Path(path)
    if p.is_dir():
        p = next((p / n for n in ("results.json", "profile.json") if (p / n).is_file()), p / "results.json")
    if not p.is_file():
        raise ResultsInputError(f"{path}: no such file" if not Path(path).exists() else
                                f"{path}: no results.json or profile.json there")
    try:
        doc = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ResultsInputError(f"{p}: not valid JSON ({e.msg} at line {e.lineno})") from None
    except UnicodeDecodeError as e:
        raise ResultsInputError(f"{p}: not valid JSON (not UTF-8 text: {e.reason})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("tasks", {}), dict) or \
            not (doc.get("tasks") or doc.get("profile")):
        raise ResultsInputError(f"{p}: not a results document (no 'tasks' or 'profile')")
    for name, t in doc.get("tasks", {}).items():
        if not isinstance(t, dict) or not isinstance(t.get("metrics"), dict):
            raise ResultsInputError(f"{p}: task {name!r} has no 'metrics' table")
        for metric, v in t["metrics"].items():
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ResultsInputError(f"{p}: tasks.{name}.metrics[{metric!r}] is "
                                        f"{'null' if v is None else type(v).__name__ + ' ' + repr(v)[:30]}; "
                                        "expected a number")
        for section in ("data", "options", "timing"):
            if section in t and t[section] is not None and not isinstance(t[section], dict):
                raise ResultsInputError(f"{p}: tasks.{name}.{section} is {type(t[section]).__name__}; "
                                        "expected an object")
        if t.get("answers_digest") is not None and not isinstance(t["answers_digest"], str):
            raise ResultsInputError(f"{p}: tasks.{name}.answers_digest is not text")
    for section in ("profile", "model", "run", "environment", "scorecard"):
        if doc.get(section) is not None and not isinstance(doc[section], dict):
            raise ResultsInputError(f"{p}: '{section}' is {type(doc[section]).__name__}; expected an object")
    for section, inner in (("profile", "figures"), ("scorecard", "tolerances")):
        value = (doc.get(section) or {}).get(inner)
        if value is not None and not isinstance(value, dict):
            raise ResultsInputError(f"{p}: '{section}.{inner}' is {type(value).__name__}; expected an object")
    figures = ((doc.get("profile") or {}).get("figures") or {})
    for name, f in figures.items():
        if not isinstance(f, dict):
            raise ResultsInputError(f"{p}: profile.figures[{name!r}] is {type(f).__name__}; expected an object")
    return doc
