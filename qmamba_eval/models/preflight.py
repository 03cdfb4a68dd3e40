"""Checks before a model is allocated: a config that names things we do not have, keys a config class would
silently ignore, tensors that do not fit the weights file's header, and a model larger than the free memory --
each an error naming the file and the key, raised before any parameter is allocated."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import torch

FLOAT_DTYPES = {"F32", "F16", "BF16", "F64"}


def read_folder_config(folder: Path) -> dict:
    path = Path(folder) / "config.json"
    try:
        doc = json.loads(path.read_bytes().decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({getattr(e, 'msg', e)})") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: expected a JSON object (an MLLMConfig), found {type(doc).__name__}")
    return doc


def check_config(config, where: str) -> None:
    """Names, LLM config keys and values, projector arguments of an ``MLLMConfig``; ``where`` names its source."""
    import inspect

    from ..registry import suggest
    from .projectors import PROJECTORS
    from .vision import ENCODERS

    if config.vision not in ENCODERS:
        raise ValueError(f"{where}: vision {config.vision!r} is unknown.{suggest(str(config.vision), ENCODERS)}")
    if config.projector not in PROJECTORS:
        raise ValueError(f"{where}: projector {config.projector!r} is unknown."
                         f"{suggest(str(config.projector), PROJECTORS)}")
    if not isinstance(config.llm_config, dict):
        raise ValueError(f"{where}: llm_config must be an object of the LLM's config keys")
    if config.llm == "mamba":
        from .mamba import MambaConfig

        known = {f: getattr(MambaConfig(), f) for f in MambaConfig.__dataclass_fields__}
    elif config.llm == "llama":
        from transformers import LlamaConfig

        known = LlamaConfig().to_dict()  # plus what its constructor takes and folds in (rope_theta, ...)
        known.update({k: None for k in inspect.signature(LlamaConfig.__init__).parameters if k not in ("self", "kwargs")})
        known.update({k: None for k in ("rope_theta", "rope_scaling", "rope_parameters", "torch_dtype", "dtype",
                                        "transformers_version", "architectures", "model_type")})
    else:
        raise ValueError(f"{where}: llm {config.llm!r} is unknown; use 'mamba' or 'llama'")
    for key, value in config.llm_config.items():
        if key not in known:
            raise ValueError(f"{where}: llm_config key {key!r} is not a {config.llm} config key (it would be "
                             f"ignored).{suggest(key, known)}")
        default = known[key]
        if default is None or key.endswith("_token_id"):  # several types are valid (None, int, a list of ids)
            continue
        if isinstance(default, bool) != isinstance(value, bool) or (
                isinstance(default, int) and not isinstance(default, bool) and not isinstance(value, int)):
            raise ValueError(f"{where}: llm_config {key} = {value!r}: expected {type(default).__name__}")
    for key in ("d_model", "n_layer", "vocab_size", "hidden_size", "num_hidden_layers", "intermediate_size",
                "num_attention_heads"):
        value = config.llm_config.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{where}: llm_config {key} = {value!r}: a whole number >= 1")
    params = {n: p for n, p in inspect.signature(PROJECTORS[config.projector].__init__).parameters.items()
              if n not in ("self", "vision_dim", "llm_dim", "device", "dtype")}
    for key, value in config.projector_kwargs.items():
        if key not in params:
            raise ValueError(f"{where}: projector argument {key!r} is not one of the {config.projector} "
                             f"projector's.{suggest(key, params)}")
        check_argument(where, key, value, str(params[key].annotation))


def check_argument(where: str, key: str, value, annotation: str) -> None:
    """A projector argument against its constructor's annotation: sizes are whole numbers >= 1, ratios numbers
    > 0, switches true / false (a string 'maybe' would count as true)."""
    if value is None and annotation.startswith("Optional"):
        return
    kind = annotation.removeprefix("Optional[").rstrip("]")
    if kind == "bool" and not isinstance(value, bool):
        raise ValueError(f"{where}: projector {key} = {value!r}: true or false")
    if kind == "int" and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{where}: projector {key} = {value!r}: a whole number >= 1")
    if kind == "float" and (isinstance(value, bool) or not isinstance(value, (int, float))
                            or not math.isfinite(value) or value <= 0):
        raise ValueError(f"{where}: projector {key} = {value!r}: a number > 0")
    if kind == "str" and not isinstance(value, str):
        raise ValueError(f"{where}: projector {key} = {value!r}: text")


def meta_model(config, where: str = "the model config"):
    """The model's module tree on the meta device: shapes and parameter counts, no memory."""
    from .mllm import MLLM

    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return MLLM(config, tokenizer=None)
    except (RuntimeError, ValueError, TypeError, OverflowError) as e:  # sizes no tensor can have
        raise ValueError(f"{where}: this config does not make a model: {type(e).__name__}: {e}") from None


def available_bytes(device) -> int | None:
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0] if torch.cuda.is_available() else None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_fits(meta, where: str, build_device) -> None:
    """The model is built in float32 (then cast): refuse one larger than the free memory of ``build_device``."""
    n = sum(p.numel() for p in meta.parameters())
    need = 4 * n
    free = available_bytes(build_device)
    if free is not None and need > 0.9 * free:
        raise ValueError(f"{where}: this config makes a model of {n / 1e9:.2f} B parameters ({need / 2**30:.1f} GiB "
                          f"in float32 while it is built), more than the {free / 2**30:.1f} GiB free on "
                          f"{build_device}: check its sizes (d_model, n_layer, hidden_size, ...)")


def check_header(meta, weights: Path) -> None:
    """Our ``model.safetensors`` against the model's tensors, from the file's header alone: names, shapes and
    dtypes (a weights file of integers would be cast silently)."""
    from safetensors import safe_open

    from .checkpoints import RENAMES, CheckpointError

    try:
        with safe_open(str(weights), "pt", device="cpu") as f:
            header = {k: (tuple(f.get_slice(k).get_shape()), f.get_slice(k).get_dtype()) for k in f.keys()}
    except Exception as e:  # truncated or not a safetensors file
        raise CheckpointError(f"{weights}: not a readable safetensors file ({type(e).__name__}: {e})") from None
    expected = {k: tuple(v.shape) for k, v in meta.state_dict().items()}
    for key, (shape, dtype) in header.items():
        if dtype not in FLOAT_DTYPES:
            raise CheckpointError(f"{weights}: tensor {key} is {dtype}; model weights are floating point")
        name = key if key in expected else next((key.replace(a, b) for a, b in (*RENAMES, *((b, a) for a, b in RENAMES))
                                                 if a in key and key.replace(a, b) in expected), key)
        if name in expected and expected[name] != shape:
            raise CheckpointError(f"{weights}: tensor {key} has shape {shape} but the config makes {expected[name]}: "
                                  "the config.json beside it does not describe these weights")
    size = sum(math.prod(s) for s, _ in header.values())
    if size == 0:
        raise CheckpointError(f"{weights}: holds no tensors")
