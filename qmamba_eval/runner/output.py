"""A run's model and its ``results.json``: built / written by rank 0, entries merged so none is ever dropped."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from pathlib import Path

from ..results import RESULTS_SCHEMA, ResultsInputError, environment, read_json_file, write_json_atomic

FIX = "delete it (it is rebuilt from the samples files when the run's tasks are run again)"


RANDOM_FIX = ("give its weights (--checkpoint, --vision-weights BACKBONE=FOLDER), or pass --allow-random to score "
              "it anyway (meaningless numbers, marked RANDOM)")


def check_weights_given(cfg) -> None:
    """Before anything is built: a real-scale preset without a checkpoint has random weights; refuse it unless
    --allow-random (the post-build check covers checkpoints that lack parts)."""
    from ..models import PRESETS
    from ..models.presets import shipped_checkpoint

    if cfg.allow_random or cfg.model not in PRESETS or cfg.checkpoint not in (None, "random"):
        return
    if cfg.checkpoint == "random" or (shipped_checkpoint(cfg.model) is None):
        raise ValueError(f"--model {cfg.model}: no weights (a preset without --checkpoint is randomly initialised); "
                         + RANDOM_FIX)
    changed = {k: v for k, v in cfg.model_args.items() if k != "init"}
    if changed:
        args = ",".join(f"{k}={v}" for k, v in changed.items())
        raise ValueError(f"--model {cfg.model} --model-args {args}: its shipped weights are for its own projector, "
                         "so this model would be randomly initialised; train one with these arguments "
                         "(run_eval.py train --projector ...), or pass --allow-random to score it anyway")


def build_run_model(cfg, device: str):
    """The model a ``RunConfig`` names, on ``device``; a file the loaders choke on is bad input, said in one line;
    a model with parts no weights were loaded for is refused unless ``cfg.allow_random``."""
    import warnings

    from ..models import build_model, check_projector_args, random_parts

    args = dict(cfg.model_args)
    init = args.pop("init", "cpu")
    check_projector_args(cfg.model, args)
    t0 = time.perf_counter()
    if cfg.progress:  # a real-scale model takes a minute or two: say so instead of staying silent
        print(f"building {cfg.model} on {device} ({cfg.dtype or 'float32'})...", file=sys.stderr, flush=True)
    try:
        with warnings.catch_warnings():
            if not cfg.allow_random:  # refused below with one line instead
                warnings.filterwarnings("ignore", message=r".*RANDOM")
            model = build_model(cfg.model, device=device, dtype=cfg.dtype, checkpoint=cfg.checkpoint,
                                tokenizer=cfg.tokenizer, backend=cfg.backend, seed=cfg.seed,
                                vision_weights=cfg.vision_weights or None, init=init, **args)
    except (ValueError, FileNotFoundError, KeyError, RuntimeError, MemoryError):
        raise
    except Exception as e:  # a foreign file
        parts = [f"--model {cfg.model}"] + [f"--{k} {v}" for k, v in (("checkpoint", cfg.checkpoint),
                                                                    ("tokenizer", cfg.tokenizer)) if v]
        raise ValueError(f"cannot build the model from {', '.join(parts)}: {type(e).__name__}: {e}") from e
    if cfg.progress:
        n = sum(p.numel() for p in model.parameters())
        print(f"built {cfg.model} in {time.perf_counter() - t0:.1f} s ({n / 1e6:.1f} M parameters, kernels "
              f"{model.kernels.backend})", file=sys.stderr, flush=True)
    missing = random_parts(model.identity())
    if missing and not cfg.allow_random:
        raise ValueError(f"--model {cfg.model}: no weights were loaded for its {', '.join(missing)}; " + RANDOM_FIX)
    return model


def run_warnings(model_identity: dict | None) -> list[str]:
    """What a reader of the results must know before trusting them (random parts)."""
    from ..models import random_parts

    parts = random_parts(model_identity or {}) if model_identity else []
    return [f"RANDOM weights for {', '.join(parts)}: scores are meaningless"] if parts else []


def make_run_folder(run_dir: Path) -> None:
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"--output-dir: cannot create the run folder {run_dir}: {e.strerror or e}") from None
    if not os.access(run_dir, os.W_OK):
        raise ValueError(f"--output-dir: the run folder {run_dir} is not writable")


@contextlib.contextmanager
def run_log(path: Path):
    """The package's log (INFO and up) and Python warnings appended to ``run.log`` while a run writes its folder."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    loggers = [logging.getLogger("qmamba_eval"), logging.getLogger("py.warnings")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        if lg.getEffectiveLevel() > logging.INFO:
            lg.setLevel(logging.INFO)
    logging.captureWarnings(True)
    logging.getLogger("qmamba_eval").info("run started: %s", " ".join(sys.argv))
    try:
        yield path
    finally:
        logging.captureWarnings(False)
        for lg, level in zip(loggers, levels):
            lg.removeHandler(handler)
            lg.setLevel(level)
        handler.close()


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
        results["warnings"] = run_warnings(results["model"])
        write_json_atomic(self.path, results)
        return results

    def write_summary(self, results: dict) -> None:
        """``summary.md`` beside results.json: the table a person reads first."""
        from ..report.tables import format_table
        from ..results import write_text_atomic

        write_text_atomic(self.path.parent / "summary.md", f"# {self.path.parent.name}\n\n```\n"
                          + format_table(results) + "\n```\n")
