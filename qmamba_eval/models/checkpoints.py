"""Checkpoint formats: read, validate (naming every bad tensor), write.

* **ours**: a folder with ``config.json`` (``MLLMConfig``) and ``model.safetensors`` (keys ``vision.*``,
  ``projector.*``, ``llm.*``); ``lm_head.weight`` is left out when tied to the embedding.
* **cobra**: Cobra's released ``.pt`` -- ``torch.load(f)["model"]`` = ``{"projector": {"projector.0.weight",
  ...}, "llm_backbone": {"llm.backbone.*", "llm.lm_head.weight"}}``. The vision tower is not in it.
* **mamba_ssm**: a ``MambaLMHeadModel`` state dict (``backbone.*``, ``lm_head.weight``; ``.bin``/``.pt``
  or ``.safetensors``) -- loaded into the LLM only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import torch
import torch.nn as nn

CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"


class CheckpointError(ValueError):
    """A checkpoint that does not fit the model; the message names the offending tensors."""


def _fmt(names, limit=8) -> str:
    names = sorted(names)
    more = f" ... (+{len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


# transformers renamed DINOv2's attention weights (4.x / early 5.x: ``attention.attention.query`` ...; later 5.x:
# ``attention.q_proj`` ...); a checkpoint written under either loads under the other
RENAMES = ((".attention.attention.query.", ".attention.q_proj."), (".attention.attention.key.", ".attention.k_proj."),
           (".attention.attention.value.", ".attention.v_proj."), (".attention.output.dense.", ".attention.o_proj."))


def _renamed(key: str, expected) -> str:
    """``key`` as the module names it, when it is one of ``RENAMES`` spelled the other way."""
    if key in expected:
        return key
    for a, b in RENAMES:
        for old, new in ((a, b), (b, a)):
            if old in key and key.replace(old, new) in expected:
                return key.replace(old, new)
    return key


def load_into(module: nn.Module, state: Mapping[str, torch.Tensor], where: str, prefix: str = "") -> None:
    """Strict load with a readable error: missing, unexpected and mis-shaped tensors by name."""
    expected = module.state_dict()
    renamed = {}
    for k, v in state.items():
        name = _renamed(k, expected)
        if name in renamed:
            raise CheckpointError(f"checkpoint {where} holds {prefix + name} twice (under both of transformers' "
                                  "spellings of DINOv2's attention)")
        renamed[name] = v
    state = renamed
    tied = _tied_names(module)
    missing = [k for k in expected if k not in state and k not in tied]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k} (checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)})"
              for k in state if k in expected and tuple(state[k].shape) != tuple(expected[k].shape)]
    poisoned = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if poisoned:
        raise CheckpointError(f"checkpoint {where}: {len(poisoned)} tensor(s) hold NaN or inf "
                              f"({_fmt(prefix + k for k in poisoned)}): these weights cannot give answers")
    ints = [k for k, v in state.items() if not v.is_floating_point() and expected.get(k) is not None
            and expected[k].is_floating_point()]
    if ints:
        raise CheckpointError(f"checkpoint {where}: tensor(s) {_fmt(prefix + k for k in ints)} are "
                              f"{state[ints[0]].dtype}; model weights are floating point")
    if missing or unexpected or shapes:
        parts = [f"checkpoint {where} does not fit the model"]
        if missing:
            parts.append(f"missing {len(missing)}: {_fmt(prefix + k for k in missing)}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)}: {_fmt(prefix + k for k in unexpected)}")
        if shapes:
            parts.append(f"wrong shape {len(shapes)}: {_fmt(prefix + s for s in shapes)}")
        parts.append("check the preset / config matches the checkpoint (e.g. num_queries, vision encoder)")
        raise CheckpointError("; ".join(parts))
    module.load_state_dict(state, strict=False)


def _tied_names(module: nn.Module) -> set:
    """Names of parameters that share storage with an earlier name (e.g. a tied lm_head)."""
    seen, tied = {}, set()
    for name, p in module.named_parameters(remove_duplicate=False):
        if id(p) in seen:
            tied.add(name)
        seen.setdefault(id(p), name)
    return tied


def read_state(path: Path, device="cpu") -> dict:
    """Tensors of a checkpoint file, placed on ``device`` (safetensors are read straight to it)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device=str(device))
        except Exception as e:  # truncated, or not a safetensors file
            raise CheckpointError(f"cannot read checkpoint {path}: {type(e).__name__}: {e}") from None
    try:
        return torch.load(str(path), map_location=device, weights_only=True)
    except Exception as e:  # pickle errors, truncated files
        raise CheckpointError(f"cannot read checkpoint {path}: {e}") from e


def detect_format(path: Path) -> str:
    path = Path(path)
    if path.is_dir():
        if (path / CONFIG_FILE).is_file() and (path / WEIGHTS_FILE).is_file():
            return "ours"
        raise CheckpointError(f"folder {path} has no {CONFIG_FILE} + {WEIGHTS_FILE}")
    state = read_state(path)
    if isinstance(state, dict) and isinstance(state.get("model"), dict) and \
            {"projector", "llm_backbone"} <= set(state["model"]):
        return "cobra"
    if isinstance(state, dict) and any(k.startswith("backbone.") for k in state):
        return "mamba_ssm"
    if isinstance(state, dict) and any(k.startswith(("projector.", "llm.")) for k in state):
        return "ours_flat"
    keys = list(state)[:5] if isinstance(state, dict) else type(state).__name__
    raise CheckpointError(f"unrecognised checkpoint {path}: top-level keys {keys}; expected our folder format, "
                          "Cobra's {'model': {'projector', 'llm_backbone'}} or a mamba-ssm LM state dict")


def load_checkpoint(model: nn.Module, path, device="cpu") -> str:
    """Load weights at ``path`` into an ``MLLM`` (tensors read onto ``device``); returns the detected format."""
    path = Path(path)
    fmt = detect_format(path)
    if fmt == "ours":
        load_into(model, read_state(path / WEIGHTS_FILE, device), str(path))
    elif fmt == "ours_flat":
        load_into(model, read_state(path, device), str(path))
    elif fmt == "cobra":
        m = read_state(path, device)["model"]
        load_into(model.projector, m["projector"], f"{path} [projector]", prefix="projector.")
        llm = {k[len("llm."):] if k.startswith("llm.") else k: v for k, v in m["llm_backbone"].items()}
        load_into(model.llm, llm, f"{path} [llm_backbone]", prefix="llm.")
    elif fmt == "mamba_ssm":
        if not hasattr(model.llm, "backbone"):
            raise CheckpointError(f"{path} is a Mamba LM state dict but the model's LLM is {model.config.llm}")
        load_into(model.llm, read_state(path, device), str(path), prefix="llm.")
    loaded = {"ours": ["vision", "projector", "llm"], "ours_flat": ["vision", "projector", "llm"],
              "cobra": ["projector", "llm"], "mamba_ssm": ["llm"]}[fmt]
    model.checkpoint = {"path": str(path), "format": fmt, "loaded": loaded}  # the rest stays as initialised
    if "vision" in loaded:  # the vision tower's weights came from the checkpoint: not random any more
        model.vision.random_init = False
    return fmt


def save_model(model: nn.Module, folder) -> Path:
    """Write our format: config.json + model.safetensors (tied copies left out)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tied = _tied_names(model)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items() if k not in tied}
    save_file(state, str(folder / WEIGHTS_FILE))
    (folder / CONFIG_FILE).write_text(json.dumps(model.config.to_dict(), indent=2, sort_keys=True))
    return folder
