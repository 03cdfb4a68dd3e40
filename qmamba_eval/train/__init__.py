"""Two-stage training of the MLLMs on the synthetic visual-QA data (``qmamba_eval.data.synthetic``).

Stage 1 (alignment) trains the projector on captions with the vision tower and the LLM frozen; stage 2
(instruction tuning) trains the projector and the LLM on every benchmark's questions, in the prompts an
evaluation run uses.  ``python run_eval.py train --model tiny-qmamba --out DIR``.
"""

from .config import StageConfig, TrainConfig, default_stages
from .loop import Trainer, train

__all__ = ["StageConfig", "TrainConfig", "Trainer", "default_stages", "train"]
