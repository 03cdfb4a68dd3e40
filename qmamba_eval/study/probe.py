"""How much of a scene a tiny vision tower keeps: a shape-presence probe on its frozen patch features.

For every shape scene of the synthetic train split, the tower's patch features (B, 36, C) go through a small
per-patch MLP whose 4 outputs (one per shape) are max-pooled over the patches; it is trained (BCE, 1,500 steps of
128, AdamW 3e-3, seed 0) to say which shapes are in the image, then scored on the test split (scale ``small``):
the accuracy over (image, shape) pairs -- the existence question POPE asks, without an LLM.

    python -m qmamba_eval.study.probe --model tiny-qmamba                     # a shipped (or any) model's tower
    python -m qmamba_eval.study.probe --stage0 3000 [--lr 3e-3] [--batch 64]  # pretrain a fresh tower, then probe
    python -m qmamba_eval.study.probe --stage0 400 --tower 96,16,2,32,24      # another tower shape, same stage 0

``--stage0 N`` runs the trainer's stage 0 alone (``run_eval.py train``'s vision stage, on the CPU) for N steps on
a fresh ``tiny-cobra`` tower (the tiny DINOv2 + SigLIP pair every tiny preset but tiny-vlmamba uses); ``--tower
SIZE,PATCH,LAYERS,SIGLIP_WIDTH,DINO_WIDTH`` gives that pair another shape (``TrainConfig.vision_overrides``: 2 heads,
MLP twice the width; the presets' pair is 48,8,2,32,24). ``--log FILE`` appends the result as one JSON line.

Reading it: the test split has 240 (image, shape) pairs, 40 % of them "present", so answering "absent" always
scores 59.6 %; one pair is 0.42 points.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings

import torch
import torch.nn as nn


def presence(model, split: str, scale=None):
    from .. import synthetic
    from ..train.data import vision_features

    data = synthetic.generate(split, seed=0, scale=scale, tasks=())  # the scenes alone
    scenes = [s for s in data.scenes if s.kind == "shapes"]
    feats = vision_features(model, {s.name: s.image for s in scenes})
    x = torch.stack([feats[s.name] for s in scenes])  # (B, N, C)
    y = torch.tensor([[float(any(o.shape == sh for o in s.objects)) for sh in synthetic.SHAPES] for s in scenes])
    return x, y


def probe(model, steps: int = 1500) -> dict:
    model.eval()
    x_tr, y_tr = presence(model, "train")
    x_te, y_te = presence(model, "test", "small")
    torch.manual_seed(0)
    c = x_tr.shape[-1]
    net = nn.Sequential(nn.LayerNorm(c), nn.Linear(c, 128), nn.GELU(), nn.Linear(128, y_tr.shape[1]))
    opt = torch.optim.AdamW(net.parameters(), 3e-3)
    for _ in range(steps):
        i = torch.randint(0, len(x_tr), (128,))
        loss = nn.functional.binary_cross_entropy_with_logits(net(x_tr[i]).amax(1), y_tr[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        def acc(x, y):
            return ((net(x).amax(1) > 0).float() == y).float().mean().item()
        return {"train": round(100 * acc(x_tr, y_tr), 1), "test": round(100 * acc(x_te, y_te), 1),
                "test_pairs": y_te.numel()}


def tower_overrides(text: str) -> dict:
    """``SIZE,PATCH,LAYERS,SIGLIP_WIDTH,DINO_WIDTH`` -> the tiny pair's spec overrides."""
    try:
        size, patch, layers, siglip_width, dino_width = (int(x) for x in text.split(","))
    except ValueError:
        raise ValueError(f"--tower {text!r}: expected SIZE,PATCH,LAYERS,SIGLIP_WIDTH,DINO_WIDTH (five numbers)") from None
    return {name: {"image_size": size, "patch_size": patch, "num_layers": layers, "hidden_size": width,
                   "intermediate_size": 2 * width}
            for name, width in (("tiny-siglip", siglip_width), ("tiny-dinov2", dino_width))}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m qmamba_eval.study.probe", description=__doc__.split("\n")[0])
    p.add_argument("--model", help="preset or model folder whose tower is probed")
    p.add_argument("--stage0", type=int, help="pretrain a fresh tiny tower for this many stage-0 steps first")
    p.add_argument("--lr", type=float, default=3e-3, help="stage 0 only (the probe itself: AdamW 3e-3)")
    p.add_argument("--batch", type=int, default=64, help="stage 0 only")
    p.add_argument("--seed", type=int, default=0, help="stage 0 only")
    p.add_argument("--tower", help="stage 0 only: SIZE,PATCH,LAYERS,SIGLIP_WIDTH,DINO_WIDTH of a fresh tiny tower")
    p.add_argument("--log", help="append the result to this JSONL file")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    warnings.simplefilter("ignore")
    t0 = time.time()
    if a.tower and not a.stage0:
        p.error("--tower shapes a fresh tower: give --stage0 too")
    if a.stage0:
        from ..train.config import StageConfig, TrainConfig
        from ..train.loop import train

        stage = StageConfig("vision", train=("vision",), data="attributes", epochs=10_000, max_steps=a.stage0,
                            batch_size=a.batch, lr=a.lr)
        cfg = TrainConfig(model="tiny-cobra", stages=[stage], seed=a.seed, save_every=10 ** 9,
                          vision_overrides=tower_overrides(a.tower) if a.tower else {})
        with tempfile.TemporaryDirectory() as tmp:
            model = train(cfg, tmp, progress=False, resume=False)
        what = (f"fresh tower{' ' + a.tower if a.tower else ''}, stage 0 for {a.stage0} steps of {a.batch}, "
                f"lr {a.lr}, seed {a.seed}")
    elif a.model:
        from ..models import build_model

        model = build_model(a.model)
        what = f"tower of {a.model}"
    else:
        p.error("give --model or --stage0")
    res = probe(model)
    print(f"{what}: shape-presence probe accuracy train {res['train']} %, test {res['test']} % "
          f"({res['test_pairs']} image-shape pairs), {time.time() - t0:.0f} s")
    if a.log:
        with open(a.log, "a") as f:
            f.write(json.dumps({"what": what, "command": "python -m qmamba_eval.study.probe " + " ".join(
                sys.argv[1:] if argv is None else argv), **res, "seconds": round(time.time() - t0)}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
