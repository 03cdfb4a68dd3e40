"""The trainer: stages in order (vision pretraining, alignment, instruction tuning), AdamW + warm-up/cosine,
resumable checkpoints, log and loss curve.

Output folder::

    train_config.json      the configuration (a resume must match it)
    checkpoint/            the latest resumable state: our model format (config.json + model.safetensors,
                           float32) + trainer_state.pt (stage, step, optimiser, schedule, loss history)
    train_log.jsonl        one line per step: stage, step, loss, lr
    train.log              a readable log
    loss.png               the loss curve, stages marked
    model/                 the final model in our format (``export_dtype``), loadable by ``build_model``
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F

from .. import synthetic
from ..models.checkpoints import save_model
from .config import CONNECTOR, PARTS, StageConfig, TrainConfig
from .folder import TrainFolder
from .data import Example, batch_order, build_examples, collate, hash_seed, vision_features
from .vision_pretrain import AttributeHeads, targets_table

log = logging.getLogger(__name__)


def build_untrained(cfg: TrainConfig):
    """The model to train: a preset with random weights (seeded) or one of our checkpoint folders."""
    from ..models import PRESETS, build_model, get_preset
    from ..models.mllm import MLLM
    from ..models.text import load_tokenizer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random vision tower / random weights: expected before training
        if cfg.model in PRESETS:
            torch.manual_seed(cfg.seed)
            preset = get_preset(cfg.model, **cfg.projector_overrides)
            preset.llm_config = {**preset.llm_config, **cfg.llm_overrides}
            preset.vision_overrides = dict(cfg.vision_overrides)
            model = MLLM(preset, load_tokenizer(None, cfg.model))
        else:
            if cfg.llm_overrides or cfg.projector_overrides or cfg.vision_overrides:
                raise ValueError("llm / projector / vision overrides apply to a preset, not to a checkpoint folder")
            model = build_model(cfg.model, seed=cfg.seed)
    model.float().to(cfg.device)
    model.set_kernels("auto")
    return model


def lr_factor(step: int, total: int, warmup: int, min_ratio: float) -> float:
    """Linear warm-up to 1 over ``warmup`` steps, then cosine down to ``min_ratio`` at ``total``."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def set_trainable(model, parts) -> list:
    for name in PARTS:
        getattr(model, name).requires_grad_(name in parts)
    if CONNECTOR in parts:
        connector = getattr(model.projector, "connector", None)
        if connector is None:
            raise ValueError(f"train={'+'.join(parts)}: the {model.config.projector} projector of {model.config.name} "
                             "has no connector (projector argument connector=bidirectional)")
        connector.requires_grad_(True)
    return [p for p in model.parameters() if p.requires_grad]


def make_optimizer(params, stage: StageConfig) -> torch.optim.Optimizer:
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]  # biases, norms, SSM vectors
    groups = [{"params": decay, "weight_decay": stage.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=stage.lr, betas=stage.betas)


def autocast(model, precision: str):
    """bf16 autocast on the model's device when the stage asks for it (weights stay float32)."""
    return torch.autocast(device_type=model.device.type, dtype=torch.bfloat16, enabled=precision == "bfloat16")


def batch_loss(model, feats, ids, n_target, precision: str) -> torch.Tensor:
    """Mean cross-entropy over the target tokens (answer + EOS), visual tokens and prompt excluded."""
    device = model.device
    with autocast(model, precision):
        visual = model.projector(feats.to(device))
        embeds, mask = model.assemble(visual.float(), ids)  # the layout generate() uses: [pad][visual][text]
        logits = model.llm(inputs_embeds=embeds, attention_mask=mask)
    b, t = mask.shape
    labels = torch.full((b, t), -100, dtype=torch.long, device=device)
    for i, (row, n) in enumerate(zip(ids, n_target)):
        labels[i, t - n:] = torch.tensor(row[-n:], device=device)
    return F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                           ignore_index=-100)


def stage_inputs(model, cfg: TrainConfig, stage: StageConfig, si: int, data, pixels, features, state):
    """What stage ``si`` trains on: its parameters, the pixel table (the tower trains) or the frozen tower's
    features, the attribute heads and targets of a vision stage, and its examples."""
    params = set_trainable(model, stage.train)
    if "vision" in stage.train:
        pixels, features = pixels or PixelTable(model, data.images()), None
    elif features is None:  # first frozen-tower stage, or the tower trained since: (re)compute
        features = vision_features(model, data.images())
    heads = targets = None
    if stage.data == "attributes":
        with torch.random.fork_rng(devices=[]):  # the same heads whether or not the run resumed before
            torch.manual_seed(hash_seed(cfg.seed, "heads", si))
            heads = AttributeHeads(model.vision.feature_dim, model.vision.num_patches).to(model.device)
        if state and state.get("heads"):
            heads.load_state_dict(state["heads"])
        params = params + list(heads.parameters())
        targets = targets_table(data, model.device)
        examples = [Example(name, "", "", "attributes") for name in sorted(targets)]
    else:
        examples = build_examples(data, stage.data, cfg.max_per_task, cfg.caption_prompt, cfg.data_seed)
    return params, pixels, features, heads, targets, examples


class Trainer:
    def __init__(self, cfg: TrainConfig, out_dir, progress: bool = True, resume: bool = True):
        self.cfg, self.out = cfg, Path(out_dir)
        self.progress, self.resume = progress, resume
        self.folder = TrainFolder(self.out, resume)
        self.history: list[dict] = []

    def _save(self, model, stage: int, step: int, opt, sched, heads=None) -> None:
        self.folder.save(model, {"stage": stage, "step": step, "history": self.history,
                                 "heads": heads.state_dict() if heads is not None else None,
                                 "optimizer": opt.state_dict() if opt is not None else None,
                                 "scheduler": sched.state_dict() if sched is not None else None})

    # -- the run ---------------------------------------------------------------------------------------------

    def run(self, stop_after: Optional[int] = None):
        """Train every stage (resuming where a checkpoint says); ``stop_after`` N steps ends early (tests)."""
        return self._run(stop_after)

    def _run(self, stop_after):
        cfg = self.cfg
        self._last, self._stopped, self._done, self._consistent = (-1, 0), False, 0, True
        self.out.mkdir(parents=True, exist_ok=True)
        self.folder.check_config(self.cfg.to_dict())
        torch.manual_seed(cfg.seed)
        model = build_untrained(cfg)
        state = self.folder.load(model)
        if state:
            self.history = state["history"]
        start_stage, start_step = (state["stage"], state["step"]) if state else (0, 0)
        data = synthetic.generate("train", seed=cfg.data_seed, scale=cfg.data_scale)
        features = pixels = None  # frozen-tower features (per stage: the tower may have trained before) / pixels
        n_params = {p: sum(x.numel() for x in getattr(model, p).parameters()) for p in PARTS}
        self.folder.say(f"model {model.config.name}: parameters {n_params}; data: synthetic train split "
                  f"(seed {cfg.data_seed}, {len(data.scenes)} scenes)")
        for si, stage in enumerate(cfg.stages):
            if si < start_stage:
                continue
            model.train()
            params, pixels, features, heads, targets, examples = stage_inputs(
                model, cfg, stage, si, data, pixels, features, state if si == start_stage else None)
            per_epoch = math.ceil(len(examples) / stage.batch_size)
            total = math.ceil(stage.epochs * per_epoch)
            if stage.max_steps:
                total = min(total, stage.max_steps)
            warmup = int(round(stage.warmup_ratio * total))
            opt = make_optimizer(params, stage)
            sched = torch.optim.lr_scheduler.LambdaLR(
                opt, lambda s, t=total, w=warmup, m=stage.min_lr_ratio: lr_factor(s, t, w, m))
            step = 0
            if state and si == start_stage and start_step > 0:
                opt.load_state_dict(state["optimizer"])
                sched.load_state_dict(state["scheduler"])
                step = start_step
            trainable = sum(p.numel() for p in params)
            self.folder.say(f"stage {si} {stage.name}: trains {list(stage.train)} ({trainable} parameters), "
                      f"{len(examples)} {stage.data} examples, {total} steps of {stage.batch_size}, lr {stage.lr}")
            from tqdm import tqdm

            bar = tqdm(total=total, initial=step, desc=f"stage {si} {stage.name}", disable=not self.progress,
                       dynamic_ncols=True)
            try:
                self._steps(model, stage, si, step, total, per_epoch, examples, features, pixels, heads, targets,
                            params, opt, sched, bar, stop_after)
            except KeyboardInterrupt:  # keep what was learnt: a checkpoint where it stopped, then stop
                if self._consistent and self._last[0] == si and \
                        (start_step if si == start_stage else 0) < self._last[1] < total:
                    self._save(model, si, self._last[1], opt, sched, heads)
                raise
            if self._stopped:
                return model
            bar.close()
        self._finish(model)
        return model

    def _steps(self, model, stage, si, step, total, per_epoch, examples, features, pixels, heads, targets, params,
               opt, sched, bar, stop_after):
        """The optimisation steps of one stage, from ``step`` to ``total`` (checkpoints on the way)."""
        cfg = self.cfg
        while step < total:
            epoch, k = divmod(step, per_epoch)
            idx = batch_order(len(examples), stage.batch_size, cfg.seed, si, epoch)[k]
            batch = [examples[i] for i in idx]
            table = features
            with autocast(model, stage.precision):
                if table is None:  # the tower trains: its features for this batch, with gradients
                    table = pixels.features(model, batch)
                if heads is not None:  # attributes: the tower's (or the connector's) patch features -> heads
                    feats = torch.stack([table[e.image] for e in batch])
                    if CONNECTOR in stage.train:
                        feats = model.projector.connector(feats)
                    loss = heads.loss(feats.float(), torch.stack([targets[e.image] for e in batch]))
            if heads is None:
                loss = batch_loss(model, *collate(model, batch, table), stage.precision)
            value = loss.item()
            if not math.isfinite(value):  # diverged: stop before a poisoned step is saved or exported
                raise ValueError(f"stage {si} {stage.name}: the loss is {value} at step {step + 1}: the training "
                                 f"diverged (lr {stage.lr}?); the last checkpoint in {self.out} is kept and nothing "
                                 "was exported")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if stage.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, stage.grad_clip)
            lr = opt.param_groups[0]["lr"]
            self._consistent = False  # between these lines a Ctrl-C would save weights of no recorded step
            opt.step()
            sched.step()
            step += 1
            self._done += 1
            self._last, self._consistent = (si, step), True
            self.history.append({"stage": si, "stage_name": stage.name, "step": step, "loss": value, "lr": lr})
            bar.update(1)
            bar.set_postfix(loss=f"{value:.3f}")
            if step % 50 == 0 or step == total:
                recent = [h["loss"] for h in self.history[-50:] if h["stage"] == si]
                self.folder.say(f"stage {si} step {step}/{total} loss {sum(recent) / len(recent):.4f} lr {lr:.2e}")
            if step == total:
                self._save(model, si + 1, 0, None, None)
            elif step % cfg.save_every == 0 or (stop_after is not None and self._done >= stop_after):
                self._save(model, si, step, opt, sched, heads)
            if stop_after is not None and self._done >= stop_after:
                bar.close()
                self.folder.say(f"stopped after {self._done} steps (stop_after)")
                self._stopped = True
                return

    def _finish(self, model) -> None:
        from ..report.training import plot_losses

        plot_losses(self.history, self.out / "loss.png")
        dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}[self.cfg.export_dtype]
        bad = [n for n, p in model.named_parameters() if not torch.isfinite(p).all()]
        if bad:  # never export poisoned weights
            raise ValueError(f"the trained weights hold NaN or inf ({', '.join(bad[:3])}...): nothing exported; "
                             f"the last checkpoint in {self.out} is kept")
        model.eval()
        model.to(dtype)
        folder = save_model(model, self.out / "model")
        model.float()  # the returned model equals the exported weights
        final = {}
        for h in self.history:
            final.setdefault(h["stage_name"], []).append(h["loss"])
        summary = {"config": self.cfg.to_dict(), "steps": len(self.history),
                   "final_loss": {k: sum(v[-20:]) / len(v[-20:]) for k, v in final.items()},
                   "first_loss": {k: v[0] for k, v in final.items()},
                   "parameters": sum(p.numel() for p in model.parameters()),
                   "note": "trained on the synthetic train split only (qmamba_eval.synthetic)"}
        (folder / "training.json").write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
        self.folder.say(f"done: {folder} (exported as {self.cfg.export_dtype}); final losses {summary['final_loss']}")


class PixelTable:
    """Every training image preprocessed once (per backbone, on the model's device), for stages that train the
    vision tower: a batch then only indexes the table and runs the tower with gradients."""

    def __init__(self, model, images: dict, chunk: int = 256):
        self.names = sorted(images)
        self.index = {n: i for i, n in enumerate(self.names)}
        parts = []
        for i in range(0, len(self.names), chunk):
            px = model.vision.preprocess([images[n] for n in self.names[i:i + chunk]])
            parts.append([p.to(model.device) for p in px])
        self.pixels = [torch.cat([part[k] for part in parts]) for k in range(len(parts[0]))]

    def features(self, model, batch) -> dict:
        names = sorted({e.image for e in batch})
        idx = torch.tensor([self.index[n] for n in names], device=self.pixels[0].device)
        feats = model.vision([p[idx] for p in self.pixels]).float()
        return dict(zip(names, feats))


def train(cfg: TrainConfig, out_dir, progress: bool = True, resume: bool = True, stop_after=None):
    return Trainer(cfg, out_dir, progress, resume).run(stop_after=stop_after)
