"""What a run is: its options, which of them make two runs the same run, and the checks an API caller needs."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

TOKEN_ORDERS = ("raster", "transposed", "permuted")  # as models.mllm.TOKEN_ORDERS (no torch import here)


@dataclass
class RunConfig:
    tasks: list
    model: str = "tiny-qmamba"
    checkpoint: str | None = None
    tokenizer: str | None = None
    data: str = "sample"
    limit: int | None = None
    batch_size: int = 8
    device: str = "cpu"
    dtype: str | None = None
    backend: str = "auto"  # kernels (models/ops.py): auto | reference | mamba_ssm | fused
    output_dir: str = "results/runs"
    run_name: str | None = None
    seed: int = 0
    prompt: dict = field(default_factory=dict)  # task -> prompt variant
    splits: dict = field(default_factory=dict)  # task -> hub split (e.g. vqav2 -> testdev)
    options: dict = field(default_factory=dict)  # e.g. pope_parser, vqa_rule
    cache_dir: str | None = None
    max_new_tokens: int | None = None
    answer_mode: str = "generate"  # or "likelihood": the likelier of the task's answer options
    progress: bool = True
    plot: bool = True  # summary.png beside results.json
    workers: int | None = None  # image-decoding DataLoader workers (default: 0 on the CPU, up to 8 on CUDA)
    token_order: str = "raster"  # the scan-order probe: raster | transposed | permuted patches before the projector
    vision_weights: dict = field(default_factory=dict)  # backbone -> local Hugging Face folder
    model_args: dict = field(default_factory=dict)  # build_model arguments: projector overrides, init
    allow_random: bool = False  # score a model with parts no weights were loaded for
    max_image_errors: float = 0.1  # a task whose unreadable images exceed this share fails the run (exit 2)

    def __post_init__(self):
        for k in ("model", "checkpoint", "tokenizer", "data"):  # 'folder/' and 'folder' are one model
            v = getattr(self, k)
            if isinstance(v, str) and "/" in v and not v.startswith("synthetic:"):
                setattr(self, k, os.path.normpath(v))

    def identity(self) -> dict:
        """What makes two runs the same run: a folder never mixes answers of two of these (a smoke test with
        --limit 1 goes to a folder of its own)."""
        keep = ("model", "checkpoint", "tokenizer", "data", "limit", "device", "dtype", "backend", "seed", "prompt",
                "splits", "options", "max_new_tokens", "answer_mode")
        out = {k: getattr(self, k) for k in keep}
        out["options"] = self.asked_options(self.options)
        for k, default in (("token_order", "raster"), ("vision_weights", {}), ("model_args", {})):
            if getattr(self, k) != default:  # recorded when used
                out[k] = getattr(self, k)
        return out

    def asked_options(self, options: dict) -> dict:
        """The scoring options that change something: set, declared by one of the tasks, and not every declaring
        task's default (``--pope-parser llava`` is the same run as no flag)."""
        from ..tasks import all_tasks

        known = all_tasks()
        out = {}
        for k, v in options.items():
            declaring = [known[t].options[k] for t in self.tasks if t in known and k in known[t].options]
            if v is not None and declaring and any(str(spec["default"]) != str(v) for spec in declaring):
                out[k] = v
        return out

    def identity_defaults(self) -> dict:
        """The identity of a default configuration, for keys an older run.json does not have."""
        return {**self.identity(), "token_order": "raster", "vision_weights": {}, "model_args": {}, "limit": None}

    def default_run_name(self) -> str:
        """``<model>-<data>-s<seed>[-n<limit>]-<digest of the identity>``; a model folder named ``model`` (what
        ``run_eval.py train`` exports) is named by its parent."""
        digest = hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()[:8]
        data = self.data if self.data in ("sample", "hub") else Path(self.data).name
        data = data.replace(":", "-").replace(",", "_")
        model = Path(self.model)
        name = model.parent.name if model.name == "model" and model.parent.name else model.name
        limit = f"-n{self.limit}" if self.limit else ""
        return f"{name}-{data}-s{self.seed}{limit}-{digest}"

    def check(self, task_names, model_given: bool = False) -> None:
        """Options a caller of the API can get wrong (the command line checks most of them already)."""
        for name, value, allow_none in (("limit", self.limit, True), ("batch_size", self.batch_size, False),
                                        ("max_new_tokens", self.max_new_tokens, True)):
            if value is None and allow_none:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"--{name.replace('_', '-')} {value!r}: must be a whole number >= 1")
        if not task_names:
            raise ValueError("no task given; e.g. --tasks gqa,pope (run_eval.py list shows them all)")
        if not 0 <= self.max_image_errors <= 1:
            raise ValueError(f"--max-image-errors {self.max_image_errors}: a share between 0 and 1")
        if self.token_order not in TOKEN_ORDERS:
            raise ValueError(f"--token-order {self.token_order!r}: choose from {', '.join(TOKEN_ORDERS)}")
        if self.answer_mode not in ("generate", "likelihood"):
            raise ValueError(f"unknown answer mode {self.answer_mode!r}; use 'generate' or 'likelihood'")
        names = set(task_names)
        for flag, table in (("--prompt", self.prompt), ("--split", self.splits)):
            for key in table:
                if key != "*" and key not in names:
                    from ..registry import suggest

                    raise ValueError(f"{flag} {key}={table[key]}: {key!r} is not among --tasks "
                                     f"({', '.join(sorted(names))}).{suggest(key, names)}")
        if self.run_name is not None and (not self.run_name.strip() or "/" in self.run_name or "\\" in self.run_name
                                          or self.run_name in (".", "..")):
            raise ValueError(f"--run-name {self.run_name!r}: a folder name (no '/', not '.' or '..'); the folder "
                             "goes under --output-dir")
        self._check_device(model_given)

    def _check_device(self, model_given: bool) -> None:
        import torch

        try:
            kind = torch.device(self.device).type
        except (RuntimeError, TypeError):
            kind = None
        if kind not in ("cpu", "cuda", "mps"):
            raise ValueError(f"--device {self.device!r}: not a device this harness runs on; use cpu, cuda or "
                             "cuda:N") from None
        if self.backend in ("mamba_ssm", "fused") and kind != "cuda" and not model_given:
            raise ValueError(f"--backend {self.backend} runs on CUDA only; on --device {self.device} use "
                             "--backend auto or reference")
        if not model_given and kind == "cuda":
            if not torch.cuda.is_available():
                raise ValueError(f"--device {self.device}: CUDA is not available here (torch {torch.__version__}, "
                                 f"CUDA build {torch.version.cuda or 'none'}); use --device cpu")
