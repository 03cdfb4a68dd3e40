"""Training configuration: one ``StageConfig`` per stage inside a ``TrainConfig``, all JSON-able."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Optional

PARTS = ("vision", "projector", "llm")
CONNECTOR = "connector"  # the projector's scan connector alone (pretrained with the tower on the attributes)
PRECISIONS = ("float32", "bfloat16")


@dataclass
class StageConfig:
    """One stage: what trains on what, with AdamW and a linear warm-up then cosine decay."""

    name: str
    train: tuple = ("projector",)  # parts updated; the others are frozen (PARTS)
    data: str = "qa"  # "captions" (alignment) | "qa" (instruction tuning) | "attributes" (vision pretraining)
    epochs: float = 1.0
    max_steps: Optional[int] = None  # cap on the steps (after epochs)
    batch_size: int = 32
    lr: float = 1e-3
    min_lr_ratio: float = 0.1  # the cosine ends at lr * min_lr_ratio
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    betas: tuple = (0.9, 0.999)
    grad_clip: float = 1.0
    precision: str = "float32"  # float32 | bfloat16 (autocast; CUDA)

    def __post_init__(self):
        where = f"stage {self.name}"
        if isinstance(self.train, str):
            self.train = tuple(self.train.split("+"))
        self.train, self.betas = tuple(self.train), tuple(self.betas) if isinstance(self.betas, (list, tuple)) \
            else self.betas
        bad = [p for p in self.train if p not in PARTS + (CONNECTOR,)]
        if bad or not self.train:
            raise ValueError(f"{where}: train must name some of {PARTS + (CONNECTOR,)} (joined by +), got {self.train}")
        if self.data not in ("captions", "qa", "attributes"):
            raise ValueError(f"{where}: data must be 'captions', 'qa' or 'attributes', got {self.data!r}")
        if self.data == "attributes" and not set(self.train) <= {"vision", CONNECTOR}:
            raise ValueError(f"{where}: the 'attributes' stage pretrains the vision tower and / or the projector's "
                             f"connector (train=vision, vision+connector or connector), got {self.train}")
        if CONNECTOR in self.train and self.data != "attributes":
            raise ValueError(f"{where}: train=connector is for an 'attributes' stage; a later stage trains the "
                             "connector as part of the projector")
        if self.precision not in PRECISIONS:
            raise ValueError(f"{where}: precision must be one of {PRECISIONS}, got {self.precision!r}")
        _whole(where, "batch_size", self.batch_size, 1)
        if self.max_steps is not None:
            _whole(where, "max_steps", self.max_steps, 1, "(or none for no cap)")
        _number(where, "epochs", self.epochs, low=0, strict=True)
        _number(where, "lr", self.lr, low=0, strict=True)
        for name in ("min_lr_ratio", "warmup_ratio"):
            _number(where, name, getattr(self, name), low=0, high=1)
        _number(where, "weight_decay", self.weight_decay, low=0)
        _number(where, "grad_clip", self.grad_clip, low=0)
        if not (isinstance(self.betas, tuple) and len(self.betas) == 2):
            raise ValueError(f"{where}: betas must be two numbers in [0, 1), e.g. betas=0.9+0.999; got {self.betas!r}")
        for b in self.betas:
            _number(where, "betas", b, low=0, high=1, high_open=True)


def _whole(where, name, value, low, more=""):
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{where}: {name} must be a whole number >= {low}{' ' + more if more else ''}; got {value!r}")


def _number(where, name, value, low=None, high=None, strict=False, high_open=False):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (low is None or (value > low if strict else value >= low))
    ok = ok and (high is None or (value < high if high_open else value <= high))
    if not ok:
        rng = (f"{'>' if strict else '>='} {low}" if high is None else
               f"in [{low}, {high}{')' if high_open else ']'}")
        raise ValueError(f"{where}: {name} must be a finite number {rng}; got {value!r}")


def default_stages() -> list[StageConfig]:
    """The recipe the shipped tiny checkpoints were trained with (``results/train/COMMANDS.md``):

    0. ``vision``: the tiny tower pretrained on the scenes' annotations (real systems load a pretrained tower);
    1. ``align``: LLaVA's stage 1, the projector alone on captions, tower and LLM frozen;
    2. ``instruct``: LLaVA's stage 2, projector + LLM on every benchmark's questions, tower frozen.
    """
    return [StageConfig("vision", train=("vision",), data="attributes", epochs=100, max_steps=3000,
                        batch_size=64, lr=3e-3),
            StageConfig("align", train=("projector",), data="captions", epochs=1, max_steps=50, batch_size=64,
                        lr=2e-3),
            StageConfig("instruct", train=("projector", "llm"), data="qa", epochs=20, max_steps=6000,
                        batch_size=64, lr=2e-3)]


@dataclass
class TrainConfig:
    model: str = "tiny-qmamba"  # preset name or one of our checkpoint folders (then training continues it)
    llm_overrides: dict = field(default_factory=dict)  # preset only: LLM config keys replaced (e.g. n_layer=4)
    projector_overrides: dict = field(default_factory=dict)  # preset only: projector arguments (num_queries=16)
    vision_overrides: dict = field(default_factory=dict)  # preset only: {backbone: {spec field: value}} (a probe)
    stages: list = field(default_factory=default_stages)
    seed: int = 0  # initialisation and batch order
    data_seed: int = 0  # the synthetic benchmark's seed
    data_scale: str | tuple = "train"  # synthetic.SCALES name or (shape, sign, sum) scene counts
    max_per_task: Optional[int] = 8000  # questions per benchmark in the "qa" stages (balance)
    caption_prompt: str = "Describe the image."
    device: str = "cpu"
    save_every: int = 200  # steps between resumable checkpoints (and at the end of every stage)
    export_dtype: str = "float16"  # the final model/ folder

    def __post_init__(self):
        self.stages = [s if isinstance(s, StageConfig) else _stage(s) for s in self.stages]
        if isinstance(self.data_scale, list):
            self.data_scale = tuple(self.data_scale)
        if not self.stages:
            raise ValueError("a training run needs at least one stage")
        from ..synthetic import SCALES, check_counts

        scale = self.data_scale
        if isinstance(scale, tuple):
            check_counts(scale, "data_scale (--data-scale)")
        elif scale not in SCALES:
            raise ValueError(f"data_scale {scale!r}: a scale name ({', '.join(SCALES)}) or SHAPES,SIGNS,SUMS")
        for name in ("seed", "data_seed", "save_every"):
            _whole("training", name, getattr(self, name), 1 if name == "save_every" else 0)
        if self.max_per_task is not None:
            _whole("training", "max_per_task", self.max_per_task, 1)
        if self.export_dtype not in ("float16", "bfloat16", "float32"):
            raise ValueError(f"export_dtype {self.export_dtype!r}: float16, bfloat16 or float32")

    def to_dict(self) -> dict:
        d = asdict(self)
        if not d["vision_overrides"]:  # absent unless used: earlier runs' train_config.json still match
            del d["vision_overrides"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown training options {unknown}; known: {sorted(known)}")
        return cls(**d)

    @classmethod
    def from_file(cls, path) -> "TrainConfig":
        try:
            doc = json.loads(Path(path).read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"--config {path}: not valid JSON ({e.msg} at line {e.lineno})") from None
        if not isinstance(doc, dict):
            raise ValueError(f"--config {path}: expected a JSON object of TrainConfig fields")
        return cls.from_dict(doc)


def _stage(d) -> StageConfig:
    """A stage from a dict, unknown keys named (not a TypeError)."""
    if not isinstance(d, dict):
        raise ValueError(f"a stage must be an object of StageConfig fields, got {d!r}")
    known = {f.name for f in fields(StageConfig)}
    unknown = sorted(set(d) - known)
    if unknown:
        from ..registry import suggest

        raise ValueError(f"stage {d.get('name', '?')}: unknown option(s) {unknown}.{suggest(unknown[0], known)}")
    return StageConfig(**d)
