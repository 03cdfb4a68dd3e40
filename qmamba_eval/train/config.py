"""Training configuration: one ``StageConfig`` per stage inside a ``TrainConfig``, all JSON-able."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Optional

PARTS = ("vision", "projector", "llm")
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
        self.train = tuple(self.train)
        self.betas = tuple(self.betas)
        bad = [p for p in self.train if p not in PARTS]
        if bad or not self.train:
            raise ValueError(f"stage {self.name}: train must name some of {PARTS}, got {self.train}")
        if self.data not in ("captions", "qa", "attributes"):
            raise ValueError(f"stage {self.name}: data must be 'captions', 'qa' or 'attributes', got {self.data!r}")
        if self.data == "attributes" and self.train != ("vision",):
            raise ValueError(f"stage {self.name}: the 'attributes' stage pretrains the vision tower alone "
                             f"(train=vision), got {self.train}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"stage {self.name}: precision must be one of {PRECISIONS}")
        if self.batch_size < 1 or self.epochs <= 0:
            raise ValueError(f"stage {self.name}: batch_size and epochs must be positive")


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
        self.stages = [s if isinstance(s, StageConfig) else StageConfig(**s) for s in self.stages]
        if isinstance(self.data_scale, list):
            self.data_scale = tuple(self.data_scale)
        if not self.stages:
            raise ValueError("a training run needs at least one stage")

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
        return cls.from_dict(json.loads(Path(path).read_text()))
