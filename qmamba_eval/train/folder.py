"""A training run's folder: its configuration (a resume must match it), the log, and the resumable checkpoint,
swapped so that a kill at any moment leaves one whole checkpoint (``checkpoint/`` or ``checkpoint.old/``)."""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Optional

import torch

from ..models.checkpoints import load_checkpoint, save_model

log = logging.getLogger("qmamba_eval.train")
STATE_FILE = "trainer_state.pt"


class TrainFolder:
    def __init__(self, out: Path, resume: bool = True):
        self.out, self.resume = Path(out), resume

    def say(self, text: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with open(self.out / "train.log", "a") as f:
            f.write(f"{stamp} {text}\n")
        log.info(text)

    def checkpoint(self) -> Optional[Path]:
        """The whole checkpoint to resume from: ``checkpoint/``, or ``checkpoint.old/`` after a kill mid-swap."""
        for name in ("checkpoint", "checkpoint.old"):
            if (self.out / name / STATE_FILE).is_file():
                return self.out / name
        return None

    def check_config(self, config: dict) -> None:
        """Refuse a folder holding another run (when it would be resumed); write train_config.json."""
        path = self.out / "train_config.json"
        mine = json.loads(json.dumps(config))
        if path.is_file() and self.resume and self.checkpoint() is not None:
            theirs = json.loads(path.read_text())
            if theirs != mine:
                diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
                raise ValueError(f"{self.out} holds a different training run (differs in {diff}); "
                                 "use another output folder or --no-resume")
        path.write_text(json.dumps(mine, indent=1, sort_keys=True) + "\n")

    def save(self, model, state: dict) -> None:
        tmp = self.out / "checkpoint.tmp"
        if tmp.exists():
            shutil.rmtree(tmp)
        save_model(model, tmp)
        torch.save(state, tmp / STATE_FILE)
        final, old = self.out / "checkpoint", self.out / "checkpoint.old"
        if old.exists():
            shutil.rmtree(old)
        if final.exists():  # a kill between these renames still leaves one whole checkpoint (``load`` falls back)
            final.rename(old)
        tmp.rename(final)
        if old.exists():
            shutil.rmtree(old)
        with open(self.out / "train_log.jsonl", "w") as f:
            for h in state["history"]:
                f.write(json.dumps(h) + "\n")
        self.say(f"checkpoint: stage {state['stage']} step {state['step']}")

    def load(self, model) -> Optional[dict]:
        ckpt = self.checkpoint()
        if not (self.resume and ckpt is not None):
            return None
        load_checkpoint(model, ckpt, device=model.device)
        try:
            state = torch.load(ckpt / STATE_FILE, map_location=model.device, weights_only=False)
        except Exception as e:  # truncated or foreign: say which file, and how to start again
            raise ValueError(f"{ckpt / STATE_FILE}: cannot be read ({type(e).__name__}: {e}); delete {ckpt} to "
                             "resume from the checkpoint before it, or start afresh with --no-resume") from None
        self.say(f"resumed from {ckpt}: stage {state['stage']} step {state['step']}")
        return state
