"""Stage "vision": pretrain a tiny vision tower on the synthetic scenes' own annotations.

Real systems start from pretrained towers (SigLIP, DINOv2); the tiny towers have no pretrained weights, and
random ones keep too little of a scene for the projector and LLM to use. This stage stands in for that
pretraining: supervised, on the train split only, with targets read from the scene description --
per image quadrant the shape, colour and size of the object there (or none), per image its kind (shapes, sign,
sum) and the sign's word. Linear heads read patch features pooled per quadrant and over the image; the heads
are thrown away after the stage. The LLM, the projector and the question/answer rows are not involved.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import synthetic

KINDS = ("shapes", "sign", "sum")
IGNORE = -100
# per quadrant: (shape, colour, size), index 0 = nothing there; then kind and word per image
QUADRANT_CLASSES = (1 + len(synthetic.SHAPES), 1 + len(synthetic.COLORS), 1 + len(synthetic.SIZES))
N_TARGETS = 4 * len(QUADRANT_CLASSES) + 2


def scene_targets(scene) -> list[int]:
    """14 class indices for one scene (``IGNORE`` where a target does not apply)."""
    quads = [[0, 0, 0] for _ in range(4)]
    for o in scene.objects:
        quads[o.slot] = [1 + synthetic.SHAPES.index(o.shape), 1 + list(synthetic.COLORS).index(o.color),
                         1 + list(synthetic.SIZES).index(o.size)]
    if scene.kind != "shapes":  # a sign or a card fills the picture: quadrants say nothing useful
        quads = [[IGNORE] * 3 for _ in range(4)]
    word = synthetic.WORDS.index(scene.text) if scene.kind == "sign" else IGNORE
    return [t for q in quads for t in q] + [KINDS.index(scene.kind), word]


class AttributeHeads(nn.Module):
    """Linear heads over quadrant-pooled and image-pooled patch features (B, N, C) of a square patch grid."""

    def __init__(self, feature_dim: int, num_patches: int, device=None):
        super().__init__()
        side = int(round(math.sqrt(num_patches)))
        if side * side != num_patches:
            raise ValueError(f"a square patch grid is needed, got {num_patches} patches")
        r, c = torch.arange(side).repeat_interleave(side), torch.arange(side).repeat(side)
        owner = (r >= side / 2).long() * 2 + (c >= side / 2).long()  # quadrant of each patch, raster order
        pool = F.one_hot(owner, 4).t().float()
        self.register_buffer("pool", pool / pool.sum(1, keepdim=True))  # (4, N)
        self.norm = nn.LayerNorm(feature_dim, device=device)
        self.quadrant = nn.Linear(feature_dim, sum(QUADRANT_CLASSES), device=device)
        self.image = nn.Linear(feature_dim, len(KINDS) + len(synthetic.WORDS), device=device)

    def loss(self, feats: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """feats (B, N, C) float32, targets (B, N_TARGETS) -> mean cross-entropy over the targets that apply."""
        h = self.norm(feats)
        quad = self.quadrant(torch.einsum("qn,bnc->bqc", self.pool.to(h.dtype), h))  # (B, 4, 13)
        img = self.image(h.mean(1))  # (B, 3 + words)
        pairs, start = [], 0
        for k, n in enumerate(QUADRANT_CLASSES):
            pairs.append((quad[..., start:start + n].reshape(-1, n),
                          targets[:, k:4 * len(QUADRANT_CLASSES):len(QUADRANT_CLASSES)].reshape(-1)))
            start += n
        pairs += [(img[:, :len(KINDS)], targets[:, -2]), (img[:, len(KINDS):], targets[:, -1])]
        # the mean over the targets that apply, then over the targets present in the batch -- computed without
        # asking the device which are present (no host sync per step)
        means, present = [], []
        for logits, labels in pairs:
            n = (labels != IGNORE).sum()
            means.append(F.cross_entropy(logits, labels, ignore_index=IGNORE, reduction="sum") / n.clamp(min=1))
            present.append(n > 0)
        present = torch.stack(present).to(quad.dtype)
        return (torch.stack(means) * present).sum() / present.sum()


def targets_table(data, device=None) -> dict:
    """{image name: LongTensor (N_TARGETS,)} for every scene of a split (on ``device``, once)."""
    return {s.name: torch.tensor(scene_targets(s), dtype=torch.long, device=device) for s in data.scenes}
