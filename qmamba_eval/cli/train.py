"""``run_eval.py train``: staged training (vision, align, instruct) on the synthetic visual-QA data (resumable)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from .options import check_output, parse_key_values, positive_int

DESCRIPTION = ("Train a model on the synthetic visual-QA data: stage 0 pretrains the tiny vision tower on the "
               "scenes' annotations, stage 1 aligns the projector on captions (vision and LLM frozen), stage 2 "
               "tunes projector + LLM on every benchmark's questions. "
               "Re-running the same command resumes from the last checkpoint.")


def check_model(config) -> None:
    """A preset with --llm / --projector / vision overrides: its config checked (keys, sizes, memory) first."""
    from ..models import PRESETS, get_preset
    from ..models.preflight import check_config, check_fits, meta_model

    if config.model not in PRESETS:
        return
    preset = get_preset(config.model, **config.projector_overrides)
    preset.llm_config = {**preset.llm_config, **config.llm_overrides}
    preset.vision_overrides = dict(config.vision_overrides)
    where = f"--model {config.model} with --llm {config.llm_overrides} --projector {config.projector_overrides}"
    check_config(preset, where)
    check_fits(meta_model(preset, where), where, config.device)


def add_arguments(p) -> None:
    p.add_argument("--model", default="tiny-qmamba", help="preset (random start) or our checkpoint folder")
    p.add_argument("--out", required=True, help="output folder (checkpoint/, model/, train.log, loss.png)")
    p.add_argument("--config", help="a JSON TrainConfig file; the options below override it")
    p.add_argument("--seed", type=int, help="initialisation and batch order (default 0)")
    p.add_argument("--data-seed", type=int, help="the synthetic data's seed (default 0)")
    p.add_argument("--data-scale", help="synthetic train split size: a scale name or SHAPES,SIGNS,SUMS scene counts")
    p.add_argument("--max-per-task", type=positive_int, help="questions per benchmark in the qa stages (default 8000)")
    p.add_argument("--stage0", help="overrides of the 'vision' stage (tower pretraining), e.g. 'max_steps=200'")
    p.add_argument("--stage1", help="overrides of the 'align' stage, e.g. 'max_steps=50,lr=2e-3,batch_size=32'")
    p.add_argument("--stage2", help="overrides of the 'instruct' stage, e.g. 'max_steps=6000,precision=bfloat16'")
    p.add_argument("--llm", help="preset LLM config overrides, e.g. 'd_model=96,n_layer=3'")
    p.add_argument("--projector", help="preset projector overrides, e.g. 'num_queries=16'")
    p.add_argument("--device", help="cpu | cuda (bf16: --stage2 precision=bfloat16)")
    p.add_argument("--export-dtype", choices=["float16", "bfloat16", "float32"])
    p.add_argument("--no-resume", action="store_true", help="start afresh even if --out holds a checkpoint")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--threads", type=positive_int, help="torch CPU threads")


def build_config(a):
    """The TrainConfig the options ask for, checked (model config included) before anything is trained."""
    import torch

    from ..train import TrainConfig

    cfg = TrainConfig.from_file(a.config).to_dict() if a.config else TrainConfig().to_dict()
    cfg["model"] = a.model
    for key in ("seed", "data_seed", "max_per_task", "device", "export_dtype"):
        if getattr(a, key) is not None:
            cfg[key] = getattr(a, key)
    if a.data_scale:
        parts = a.data_scale.split(",")
        try:
            cfg["data_scale"] = tuple(int(x) for x in parts) if len(parts) > 1 else a.data_scale
        except ValueError:
            raise ValueError(f"--data-scale {a.data_scale!r}: a scale name or SHAPES,SIGNS,SUMS (three whole "
                             "numbers)") from None
    if a.device and a.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {a.device}: CUDA is not available here; use --device cpu")
    if a.llm:
        cfg["llm_overrides"] = parse_key_values(a.llm, "--llm")
    if a.projector:
        cfg["projector_overrides"] = parse_key_values(a.projector, "--projector")
    for name, text in (("vision", a.stage0), ("align", a.stage1), ("instruct", a.stage2)):
        if text:
            stage = next((st for st in cfg["stages"] if st["name"] == name), None)
            if stage is None:
                raise ValueError(f"the configuration has no stage {name!r} (its stages: "
                                 f"{[st['name'] for st in cfg['stages']]})")
            stage.update(parse_key_values(text, f"--stage{['vision', 'align', 'instruct'].index(name)}"))
    config = TrainConfig.from_dict(cfg)
    check_model(config)  # the model's config (with --llm / --projector) before anything is trained
    return config


def run(a) -> int:
    import torch

    from ..train import train

    logging.getLogger("qmamba_eval.train").setLevel(logging.INFO)
    if a.threads:
        torch.set_num_threads(a.threads)
    check_output(a.out, "--out", folder=True)
    config = build_config(a)
    try:
        model = train(config, a.out, progress=not a.no_progress, resume=not a.no_resume)
    except KeyboardInterrupt:
        from ..train.folder import TrainFolder

        ckpt = TrainFolder(Path(a.out)).checkpoint()
        print("\ninterrupted: " + (f"run the same command again to resume from {ckpt}" if ckpt else
                                   "before the first step ended: nothing to resume, the next run starts afresh"),
              file=sys.stderr)
        return 130
    del model
    summary = json.loads((Path(a.out) / "model" / "training.json").read_text())
    print(f"model: {a.out}/model  (loss {summary['first_loss']} -> {summary['final_loss']})")
    print(f"log: {a.out}/train.log  curve: {a.out}/loss.png")
    return 0
