"""A run's model and its ``results.json``: built / written by rank 0, entries merged so none is ever dropped."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ..results import RESULTS_SCHEMA, ResultsInputError, environment, read_json_file, write_json_atomic

FIX = "delete it (it is rebuilt from the samples files when the run's tasks are run again)"


def build_run_model(cfg, device: str):
    """The model a ``RunConfig`` names, on ``device``; a file the loaders choke on is bad input, said in one line."""
    from ..models import build_model

    try:
        return build_model(cfg.model, device=device, dtype=cfg.dtype, checkpoint=cfg.checkpoint,
                           tokenizer=cfg.tokenizer, backend=cfg.backend, seed=cfg.seed)
    except (ValueError, FileNotFoundError, KeyError, RuntimeError, MemoryError):
        raise
    except Exception as e:  # a foreign file
        parts = [f"--model {cfg.model}"] + [f"--{k} {v}" for k, v in (("checkpoint", cfg.checkpoint),
                                                                    ("tokenizer", cfg.tokenizer)) if v]
        raise ValueError(f"cannot build the model from {', '.join(parts)}: {type(e).__name__}: {e}") from e


class ResultsFile:
    def __init__(self, path: Path):
        self.path = Path(path)

    def read(self) -> dict:
        if not self.path.is_file():
            return {"tasks": {}}
        doc = read_json_file(self.path, "the results", FIX)
        if not isinstance(doc, dict) or not isinstance(doc.get("tasks"), dict):
            raise ResultsInputError(f"{self.path}: not a results document; {FIX}")
        return doc

    def add(self, task_name: str, entry: dict, cfg, model) -> dict:
        """Read what is there now, set this task's entry and the run's identity, write it back atomically."""
        results = self.read()
        results["tasks"][task_name] = entry
        results.update({
            "schema": RESULTS_SCHEMA,
            "run": {"name": self.path.parent.name, "command": " ".join(sys.argv), "config": cfg.identity(),
                    "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
            "model": model.identity() if model is not None else results.get("model"),
            "environment": environment(cfg.device),
        })
        write_json_atomic(self.path, results)
        return results
