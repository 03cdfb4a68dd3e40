"""Models: ``build_model(name_or_path, ...)`` returns an ``MLLM`` ready for ``generate``/``score_options``.

Importing this package does not need mamba-ssm; the CUDA kernels are used only when asked for
(``backend="mamba_ssm"``) or when ``backend="auto"`` finds them on a CUDA device (``ops.py``).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

import torch

from .mllm import MLLM, MLLMConfig
from .presets import PRESETS, get_preset, shipped_checkpoint

__all__ = ["build_model", "MLLM", "MLLMConfig", "PRESETS", "get_preset", "random_parts"]


def random_parts(identity: dict) -> list[str]:
    """The parts of a model no weights were loaded for (``MLLM.identity()``: the checkpoint's ``loaded`` parts;
    the vision tower also counts as loaded from vision weights): answers from these parts mean nothing."""
    checkpoint = identity.get("checkpoint")
    loaded = set(checkpoint.get("loaded", [])) if isinstance(checkpoint, dict) else set()
    if not identity.get("vision_random_init"):
        loaded.add("vision")
    return [part for part in ("vision", "projector", "llm") if part not in loaded]


def _dtype(dtype) -> Optional[torch.dtype]:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    table = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
             "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
    if dtype not in table:
        raise ValueError(f"unknown dtype {dtype!r}; choose from {sorted(table)}")
    return table[dtype]


def build_model(name_or_path: str, device: str = "cpu", dtype=None, checkpoint: Optional[str] = None,
                tokenizer: Optional[str] = None, vision_weights: Optional[dict] = None,
                backend: str = "auto", seed: int = 0, init: str = "cpu", **projector_overrides) -> MLLM:
    """Build a model from a preset name or one of our checkpoint folders.

    ``checkpoint``: weights for a preset (our folder, Cobra's ``.pt`` or a mamba-ssm LM state dict); by
    default a tiny preset loads its shipped trained weights (``assets/checkpoints/<preset>``), and
    ``"random"`` keeps the seeded random initialisation.
    ``vision_weights``: ``{backbone name: local Hugging Face folder}``; without them the vision tower is
    random (a warning says so). ``seed`` fixes any random initialisation, so runs are repeatable.
    ``init``: ``"cpu"`` builds in float32 on the CPU, then casts and moves (the same seed gives the same model
    on every device); ``"device"`` builds straight on ``device`` (seconds instead of about a minute for a
    real-scale preset; seeded, but its random weights differ from the CPU-built ones) and reads safetensors
    checkpoints straight to the device.
    """
    if init not in ("cpu", "device"):
        raise ValueError(f"unknown init {init!r}; use 'cpu' or 'device'")
    torch_dtype = _dtype(dtype)
    from .checkpoints import load_checkpoint
    from .text import load_tokenizer

    path = Path(name_or_path)
    if name_or_path in PRESETS:
        config = get_preset(name_or_path, **projector_overrides)
        if checkpoint is None and not projector_overrides:  # tiny presets: the shipped trained weights
            checkpoint = shipped_checkpoint(name_or_path)
    elif path.is_dir():
        if not (path / "config.json").is_file():
            hint = (f"; it looks like a training run's folder: its model is {path / 'model'}"
                    if (path / "model" / "config.json").is_file() else
                    f"; a checkpoint folder holds config.json + model.safetensors (a preset: {', '.join(PRESETS)})")
            raise ValueError(f"--model {name_or_path}: no config.json in that folder{hint}")
        config = _folder_config(path)
        config.projector_kwargs.update(projector_overrides)
        checkpoint = checkpoint or str(path)
        if tokenizer is None and (path / "tokenizer.json").is_file():
            tokenizer = str(path / "tokenizer.json")
    else:
        from ..registry import suggest

        raise ValueError(f"{name_or_path!r} is neither a preset nor a checkpoint folder."
                         f"{suggest(name_or_path, PRESETS)}")
    from .mamba import cast_keeping_ssm_fp32
    from .preflight import check_config, check_fits, check_header, meta_model

    source = f"{path / 'config.json'}" if name_or_path not in PRESETS else f"preset {name_or_path}"
    check_config(config, source)  # before anything is allocated
    meta = meta_model(config, source)
    check_fits(meta, source, device if init == "device" else "cpu")
    if checkpoint and checkpoint != "random" and (Path(checkpoint) / "model.safetensors").is_file():
        check_header(meta, Path(checkpoint) / "model.safetensors")
    del meta
    torch.manual_seed(seed)
    tok = load_tokenizer(tokenizer, config.name)
    # init="cpu": built on the CPU in float32 and moved afterwards, so the same seed gives the same random
    # model on every device and dtype, and checkpoints of any dtype load the same way
    where = torch.device(device if init == "device" else "cpu")
    # a folder in our format carries the vision tower: its "no Hugging Face weights, random" warning would mislead
    tower_in_checkpoint = bool(checkpoint) and checkpoint != "random" and _carries_tower(Path(checkpoint))
    with where, warnings.catch_warnings():
        if tower_in_checkpoint:
            warnings.filterwarnings("ignore", message=r"vision encoder .*RANDOM initialisation")
        model = MLLM(config, tok, vision_weights=vision_weights)
    if checkpoint and checkpoint != "random":  # "random": a preset's untrained weights, seeded
        load_checkpoint(model, checkpoint, device=where)
    else:
        warnings.warn(f"model {config.name}: no checkpoint, RANDOM weights -- scores are not meaningful",
                      stacklevel=2)
    cast_keeping_ssm_fp32(model, device, torch_dtype)
    model.eval()
    model.set_kernels(backend)
    return model


def _folder_config(path: Path) -> MLLMConfig:
    from .preflight import read_folder_config

    raw = read_folder_config(path)
    known = set(MLLMConfig.__dataclass_fields__)
    unknown, missing = sorted(set(raw) - known), sorted(k for k in ("name", "vision", "projector", "llm",
                                                                     "llm_config") if k not in raw)
    if unknown or missing:
        raise ValueError(f"{path / 'config.json'}: " + "; ".join(
            ([f"unknown key(s) {unknown}"] if unknown else []) + ([f"missing key(s) {missing}"] if missing else []))
            + f" (an MLLMConfig has {sorted(known)})")
    return MLLMConfig.from_dict(raw)


def _carries_tower(path: Path) -> bool:
    """A folder in our format, or a flat safetensors file of ours (``vision.*`` tensors; keys read, not data)."""
    if path.is_dir():
        return True
    if path.suffix == ".safetensors" and path.is_file():
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            return any(k.startswith("vision.") for k in f.keys())
    return False


def check_projector_args(model: str, args: dict) -> None:
    """``args`` (--model-args) against the projector arguments of ``model`` (a preset or one of our folders): an
    unknown name is an error naming the ones there are."""
    if not args:
        return
    import inspect
    import json
    from pathlib import Path

    from ..registry import suggest

    if model in PRESETS:
        kind = PRESETS[model].projector
    elif (Path(model) / "config.json").is_file():
        kind = json.loads((Path(model) / "config.json").read_text()).get("projector")
    else:
        return  # build_model says what is wrong with the model itself
    from .projectors import PROJECTORS

    cls = PROJECTORS.get(kind)
    if cls is None:
        return
    from .preflight import check_argument

    params = {n: p for n, p in inspect.signature(cls.__init__).parameters.items()
              if n not in ("self", "vision_dim", "llm_dim", "device", "dtype")}
    for key, value in args.items():
        if key not in params:
            raise ValueError(f"--model-args {key}=...: the {kind} projector of {model} has no argument {key!r}."
                             f"{suggest(key, list(params) + ['init'])}")
        check_argument(f"--model-args {key}={value}", key, value, str(params[key].annotation))
