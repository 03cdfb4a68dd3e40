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
from pathlib import Path

RESULTS_SCHEMA = 1
VERSIONED_PACKAGES = ("qmamba-eval", "torch", "transformers", "datasets", "tokenizers", "mamba-ssm",
                      "causal-conv1d", "triton", "nvidia-ml-py")


class ResultsInputError(ValueError):
    """A file that is not a results document (or not one we can read)."""


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


def write_json_atomic(path: Path, doc) -> Path:
    """Write ``doc`` as JSON to ``path`` through a temporary file and a rename: all or nothing."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        f.write(json.dumps(doc, indent=1, sort_keys=True, default=str) + "\n")
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    return path


def read_samples(path: Path) -> list[dict]:
    """Lines of a samples file; a torn last line (crash mid-write) is cut off and dropped."""
    path = Path(path)
    if not path.is_file():
        return []
    rows, good_bytes = [], 0
    with open(path, "rb") as f:
        for raw in f:
            try:
                rows.append(json.loads(raw))
                good_bytes += len(raw)
            except json.JSONDecodeError:
                break
    if good_bytes != path.stat().st_size:
        with open(path, "r+b") as f:
            f.truncate(good_bytes)
    return rows


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
    """A ``results.json`` (or the folder holding one) that has ``tasks`` (each with a ``metrics`` table) or
    ``profile``."""
    p = Path(path)
    if p.is_dir():
        p = p / "results.json"
    if not p.is_file():
        raise ResultsInputError(f"{path}: no results.json there")
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
    return doc
