"""Options shared by several commands, defined once."""

from __future__ import annotations

import argparse

DTYPES = ("float32", "fp32", "bfloat16", "bf16", "float16", "fp16")
BACKENDS = ("auto", "reference", "mamba_ssm", "fused")


def int_at_least(minimum: int):
    """An argparse type: a whole number >= ``minimum``, else a message naming the value."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text} must be >= {minimum}")
        return value

    return parse


positive_int = int_at_least(1)
nonnegative_int = int_at_least(0)


def check_output(path, flag: str, folder: bool) -> None:
    """An output path checked before any work: a folder (``folder``) or a file whose folder exists or can be made;
    never one where a file stands in the way. The error names the option."""
    from pathlib import Path

    if path is None or path == "-":
        return
    out = Path(path)
    if folder and out.exists() and not out.is_dir():
        raise ValueError(f"{flag} {out}: a file, not a folder")
    if not folder and out.is_dir():
        raise ValueError(f"{flag} {out}: a folder; give a file name")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"{flag} {out}: {parent} is a file, not a folder")
            break


def parse_key_values(text: str, flag: str) -> dict:
    """``"lr=1e-3,epochs=2,train=projector+llm"`` -> dict (numbers and true/false parsed; ``+`` separates the parts
    of ``train`` / ``betas``): --stageN, --llm, --projector, --model-args."""
    out = {}
    for item in filter(None, (x.strip() for x in (text or "").split(","))):
        if "=" not in item:
            raise ValueError(f"{flag} {item!r}: expected KEY=VALUE")
        key, value = (x.strip() for x in item.split("=", 1))
        if key in out:
            raise ValueError(f"{flag} {text!r}: {key} is given twice")
        if key in ("train", "betas"):
            parts = value.split("+")
            try:
                out[key] = tuple(float(p) for p in parts) if key == "betas" else tuple(parts)
            except ValueError:
                raise ValueError(f"{flag} {item!r}: betas are two numbers, e.g. betas=0.9+0.999") from None
            continue
        if value.lower() in ("true", "false"):
            out[key] = value.lower() == "true"
            continue
        for cast in (int, float):
            try:
                value = cast(value)
                break
            except ValueError:
                pass
        out[key] = None if value in ("none", "None") else value
    return out


def parse_vision_weights(items) -> dict:
    """``["BACKBONE=FOLDER", ...]`` -> {backbone: folder}; unknown backbones and missing folders named."""
    from pathlib import Path

    from ..models.vision import BACKBONES
    from ..registry import suggest

    out = {}
    for item in items or []:
        name, sep, folder = item.partition("=")
        name, folder = name.strip(), folder.strip()
        if not sep or not name or not folder:
            raise ValueError(f"--vision-weights {item!r}: expected BACKBONE=FOLDER, e.g. "
                             "siglip-so400m-14-384=/models/siglip-so400m-patch14-384")
        if name not in BACKBONES:
            raise ValueError(f"--vision-weights {item!r}: unknown backbone {name!r}.{suggest(name, BACKBONES)}")
        if not (Path(folder) / "config.json").is_file():
            raise ValueError(f"--vision-weights {item!r}: {folder} is not a Hugging Face model folder (no config.json)")
        out[name] = folder
    return out


def parse_assignments(items, flag: str) -> dict:
    """``["TASK=VALUE", "VALUE"]`` -> ``{"TASK": "VALUE", "*": "VALUE"}`` (a bare value applies to every task)."""
    out = {}
    for item in items or []:
        key, value = item.split("=", 1) if "=" in item else ("*", item)
        key, value = key.strip(), value.strip()
        if out.get(key, value) != value:
            raise ValueError(f"{flag} {item!r}: {'every task' if key == '*' else key} already has {flag} "
                             f"{out[key]!r}; give one value")
        out[key] = value
    return out


def add_model_options(p: argparse.ArgumentParser) -> None:
    """Which model, on what: checked by argparse before any model is built."""
    p.add_argument("--model", default="tiny-qmamba", help="preset name or checkpoint folder (default: tiny-qmamba)")
    p.add_argument("--checkpoint", help="weights for a preset: our folder, Cobra .pt, or a mamba-ssm LM state dict")
    p.add_argument("--tokenizer", help="tokenizer.json (GPT-NeoX for Mamba LLMs)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    p.add_argument("--dtype", choices=DTYPES, help="weights and activations (default: float32)")
    p.add_argument("--backend", default="auto", choices=BACKENDS,
                   help="kernels (auto: mamba-ssm, device resize and CUDA graphs on CUDA; reference: plain PyTorch; "
                        "fused: our Triton prefill scan, not yet measured on a GPU)")
    p.add_argument("--vision-weights", action="append", metavar="BACKBONE=FOLDER",
                   help="a local Hugging Face folder for a vision backbone (repeatable), e.g. "
                        "siglip-so400m-14-384=/models/siglip (Cobra's .pt holds no vision tower)")
    p.add_argument("--model-args", metavar="KEY=VALUE,...",
                   help="model construction arguments, e.g. num_queries=256,local_attention=true (projector) or "
                        "init=device (build straight on the device)")
    p.add_argument("--allow-random", action="store_true",
                   help="score a model with parts no weights were loaded for (meaningless numbers, marked RANDOM)")
    p.add_argument("--seed", type=int, default=0, help="random initialisation of weights not in a checkpoint")


def add_scoring_options(p: argparse.ArgumentParser) -> None:
    """One flag per scoring option the task files declare (``[options.<name>]``: --<name>, its choices, its help);
    a task without the option ignores it."""
    from ..tasks import all_tasks

    declared: dict = {}
    for task in all_tasks().values():
        for name, spec in task.options.items():
            flag = "--" + name.replace("_", "-")
            if flag in p._option_string_actions:  # argparse's own table of the flags defined so far
                raise ValueError(f"task file {task.source_file}: [options.{name}] would be the flag {flag}, which "
                                 "the command has already; rename the option")
            entry = declared.setdefault(name, {"choices": [], "help": spec["help"], "defaults": {}})
            entry["choices"] += [c for c in spec["choices"] if c not in entry["choices"]]
            entry["defaults"][task.name] = spec["default"]
    group = p.add_argument_group("scoring options (declared by the task files)")
    for name, e in sorted(declared.items()):
        defaults = ", ".join(f"{t} {d}" for t, d in sorted(e["defaults"].items()))
        group.add_argument("--" + name.replace("_", "-"), dest=f"scoring__{name}", choices=e["choices"] or None,
                           help=f"{e['help']} (default: {defaults})")


def scoring_options(args) -> dict:
    return {k[len("scoring__"):]: v for k, v in vars(args).items() if k.startswith("scoring__")}
