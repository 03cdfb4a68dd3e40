"""Training of the MLLMs on the synthetic visual-QA data (``qmamba_eval.data.synthetic``).

LLaVA's two stages -- alignment (the projector on captions, vision tower and LLM frozen), then instruction tuning
(projector + LLM on every benchmark's questions, in the prompts an evaluation run uses) -- preceded, for the
tiny presets, by a vision-tower pretraining stage on the scenes' annotations (the tiny towers have no pretrained
weights).  ``python run_eval.py train --model tiny-qmamba --out DIR``.
"""

from .config import StageConfig, TrainConfig, default_stages
from .loop import Trainer, train

__all__ = ["StageConfig", "TrainConfig", "Trainer", "default_stages", "train"]
