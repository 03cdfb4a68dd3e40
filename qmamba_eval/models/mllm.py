"""The multimodal LLM: vision encoder -> projector -> visual tokens before the prompt -> LLM.

``generate`` is greedy and batched; ``score_options`` gives summed log-probabilities of candidate
answers (for yes/no likelihood scoring).  Batches are left-padded and the padding is masked in the
LLM, so batched results equal one-by-one results.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Optional, Sequence

import torch
import torch.nn as nn

from .llm import build_llm
from .mamba import MambaKernels
from .projectors import build_projector
from .text import TextTokenizer, apply_template
from .vision import VisionEncoder


@dataclass
class MLLMConfig:
    name: str
    vision: str  # encoder name (vision.ENCODERS)
    projector: str  # projectors.PROJECTORS: qmamba | qformer | mlp | fixed_scan
    llm: str  # mamba | llama
    llm_config: dict
    projector_kwargs: dict = field(default_factory=dict)
    template: str = "zephyr"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "MLLMConfig":
        return cls(**d)

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]


class MLLM(MambaKernels, nn.Module):
    """Built where the default device is (``with torch.device(...)``), in float32; ``build_model`` casts."""

    def __init__(self, config: MLLMConfig, tokenizer: TextTokenizer, vision_weights: Optional[dict] = None):
        super().__init__()
        self.config = config
        self.tokenizer = tokenizer
        self.vision = VisionEncoder(config.vision, vision_weights)
        self.llm = build_llm(config.llm, config.llm_config)
        self.projector = build_projector(config.projector, self.vision.feature_dim, self.llm.hidden_size,
                                         **config.projector_kwargs)
        self.checkpoint = None  # set by the loader
        self.engine = None  # set by qmamba_eval.engine.attach (a fast path); generate() stays the reference

    # -- plumbing -----------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return next(self.llm.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.llm.parameters()).dtype

    def identity(self) -> dict:
        n = sum(p.numel() for p in self.parameters())
        return {"name": self.config.name, "config_fingerprint": self.config.fingerprint(),
                "parameters": n, "checkpoint": self.checkpoint, "random_init": self.checkpoint is None,
                "vision_random_init": self.vision.random_init, "mamba_backend": self.backend,
                "llm_kernels": self.llm.kernel_info(),
                "engine": self.engine.info() if self.engine is not None else {"name": "reference"},
                "dtype": str(self.dtype).replace("torch.", ""), "device": str(self.device),
                "tokenizer": self.tokenizer.path, "template": self.config.template}

    # -- inputs -------------------------------------------------------------------------

    @torch.no_grad()
    def encode_images(self, images) -> torch.Tensor:
        """PIL images -> projected visual tokens (B, M, d_llm)."""
        pixels = self.vision.preprocess(images)
        feats = self.vision([p.to(self.device) for p in pixels])  # (B, N, vision_dim)
        return self.projector(feats.to(self.dtype))

    def _text_ids(self, prompts: Sequence[str]) -> list[list[int]]:
        return [self.tokenizer.encode(apply_template(self.config.template, p)) for p in prompts]

    def _assemble(self, visual: torch.Tensor, ids: list[list[int]]):
        """[pad][visual M][text] per row -> inputs_embeds (B, T, d), attention_mask (B, T)."""
        b, m, d = visual.shape
        longest = max(len(x) for x in ids)
        embeds = visual.new_zeros(b, m + longest, d)
        mask = torch.zeros(b, m + longest, dtype=torch.long, device=visual.device)
        for i, row in enumerate(ids):
            start = longest - len(row)
            embeds[i, start:start + m] = visual[i]
            if row:
                embeds[i, start + m:] = self.llm.embed(torch.tensor(row, device=visual.device))
            mask[i, start:] = 1
        return embeds, mask

    # -- generation ---------------------------------------------------------------------

    @torch.no_grad()
    def generate(self, images, prompts: Sequence[str], max_new_tokens: int = 16,
                 stop: Optional[Sequence[str]] = None) -> list[str]:
        """Greedy decoding, batched. Stops at EOS, at any ``stop`` string, or after max_new_tokens."""
        if len(images) != len(prompts):
            raise ValueError(f"{len(images)} images but {len(prompts)} prompts")
        stop = list(stop or [])
        embeds, mask = self._assemble(self.encode_images(images), self._text_ids(prompts))
        logits, cache = self.llm.prefill(embeds, mask)
        b = len(prompts)
        out: list[list[int]] = [[] for _ in range(b)]
        done = torch.zeros(b, dtype=torch.bool, device=embeds.device)
        for _ in range(max_new_tokens):
            nxt = logits.float().argmax(-1)  # (B,)
            for i in range(b):
                if not done[i]:
                    if nxt[i].item() == self.tokenizer.eos_id:
                        done[i] = True
                    else:
                        out[i].append(nxt[i].item())
                        if stop and any(s in self.tokenizer.decode(out[i]) for s in stop):
                            done[i] = True
            if bool(done.all()):
                break
            logits = self.llm.decode(nxt, cache)
        texts = []
        for row in out:
            text = self.tokenizer.decode(row)
            for s in stop:
                text = text.split(s)[0]
            texts.append(text.strip())
        return texts

    @torch.no_grad()
    def score_continuation(self, images, prompts: Sequence[str], continuations: Sequence[str]):
        """Per row: (summed log-prob of its continuation, whether greedy decoding would produce it)."""
        return self._score(self.encode_images(images), self._text_ids(prompts), continuations)

    @torch.no_grad()
    def score_options(self, images, prompts: Sequence[str], options: Sequence[str]) -> torch.Tensor:
        """Summed log-probability of each option continuing each prompt: (B, K) float32."""
        visual, base = self.encode_images(images), self._text_ids(prompts)  # once for all options
        scores = torch.empty(len(prompts), len(options))
        for k, option in enumerate(options):
            scores[:, k] = torch.tensor([lp for lp, _ in self._score(visual, base, [option] * len(prompts))])
        return scores

    def _score(self, visual, base: list[list[int]], continuations: Sequence[str]):
        conts = [self.tokenizer.encode(c) for c in continuations]
        for c, text in zip(conts, continuations):
            if not c:
                raise ValueError(f"continuation {text!r} encodes to no tokens")
        embeds, mask = self._assemble(visual, [b + c for b, c in zip(base, conts)])
        logp = torch.log_softmax(self.llm(inputs_embeds=embeds, attention_mask=mask).float(), -1)
        out = []
        for i, c in enumerate(conts):
            pred = logp[i, -len(c) - 1:-1]  # (len(c), V): position t predicts token t+1
            target = torch.tensor(c, device=pred.device)
            out.append((float(pred.gather(-1, target[:, None]).sum()), bool((pred.argmax(-1) == target).all())))
        return out
