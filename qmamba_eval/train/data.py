"""Training examples from the synthetic benchmark, in the exact form the evaluation uses.

A question example is ``(image, prompt, target)`` where the prompt is the task's default prompt template
filled from the row (``Task.prompt``), as in an evaluation run, and the target is the one-word answer the
generator wrote beside the row.  A caption example (stage 1) is ``(image, caption_prompt, caption)``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from .. import synthetic
from ..tasks import get_task


@dataclass
class Example:
    image: str  # key into the feature table
    prompt: str
    target: str
    task: str


def build_examples(data: synthetic.Synthetic, kind: str, max_per_task=None, caption_prompt="Describe the image.",
                   seed: int = 0) -> list[Example]:
    if kind == "captions":
        return [Example(name, caption_prompt, cap, "caption") for name, cap in data.captions()]
    out = []
    for name in sorted(data.rows):
        task = get_task(name)
        items = list(zip(data.rows[name], data.targets[name]))
        if max_per_task and len(items) > max_per_task:  # a fixed subset, the same for every model
            items = random.Random(f"{seed}/{name}").sample(items, max_per_task)
        out += [Example(row["image"], task.prompt(row), target, name) for row, target in items]
    return out


@torch.no_grad()
def vision_features(model, images: dict, batch_size: int = 64) -> dict:
    """Frozen vision tower -> {image name: (N, feature_dim) float32}, computed once for all stages."""
    names = sorted(images)
    out = {}
    was = model.vision.training
    model.vision.eval()
    for i in range(0, len(names), batch_size):
        chunk = names[i:i + batch_size]
        pixels = model.vision.preprocess([images[n] for n in chunk])
        feats = model.vision([p.to(model.device) for p in pixels]).float()
        out.update({n: f for n, f in zip(chunk, feats)})
    model.vision.train(was)
    return out


def batch_order(n: int, batch_size: int, seed: int, stage: int, epoch: int) -> list[list[int]]:
    """The batches of one epoch: a permutation fixed by (seed, stage, epoch), so a resumed run sees the same."""
    g = torch.Generator().manual_seed(hash_seed(seed, stage, epoch))
    perm = torch.randperm(n, generator=g).tolist()
    return [perm[i:i + batch_size] for i in range(0, n, batch_size)]


def hash_seed(*parts) -> int:
    return random.Random("/".join(map(str, parts))).getrandbits(63)


def collate(model, examples: list[Example], features: dict):
    """-> visual features (B, N, C), text ids per row (prompt in the chat template + target + EOS), and the
    number of target tokens per row (the loss covers those only)."""
    from ..models.text import apply_template

    tok = model.tokenizer
    feats = torch.stack([features[e.image] for e in examples])
    ids, n_target = [], []
    for e in examples:
        prompt = tok.encode(apply_template(model.config.template, e.prompt))
        target = tok.encode(e.target) + [tok.eos_id]
        ids.append(prompt + target)
        n_target.append(len(target))
    return feats, ids, n_target
