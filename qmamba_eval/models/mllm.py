"""The multimodal LLM: vision encoder -> projector -> visual tokens before the prompt -> LLM.

``generate`` is greedy and batched (``decode.GreedyDecoder``: the LLM's own static cache, CUDA graphs on CUDA);
``score_options`` gives summed log-probabilities of candidate answers (for yes/no likelihood scoring). Batches
are left-padded and the padding is masked in the LLM, so batched results equal one-by-one results. Which
kernels run is decided once (``set_kernels``) and recorded in ``identity()``.

The LLM interface (``mamba.MambaLM``, ``llama.LlamaLM``): ``embed(ids)``, ``forward(inputs_embeds,
attention_mask) -> logits``, ``allocate_inference_cache`` / ``cache_key`` / ``prefill`` / ``step`` (see
``decode.py``), ``hidden_size`` and ``kernel_info()``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Optional, Sequence

import torch
import torch.nn as nn

from .decode import GreedyDecoder
from .ops import REFERENCE, Kernels, set_kernels
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
    vision_overrides: dict = field(default_factory=dict)  # backbone -> BackboneSpec fields replaced (a probe)

    def to_dict(self) -> dict:
        d = asdict(self)
        if not d["vision_overrides"]:  # absent unless used: configs and fingerprints of earlier models unchanged
            del d["vision_overrides"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "MLLMConfig":
        return cls(**d)

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]


def build_llm(kind: str, config: dict, device=None, dtype=None) -> nn.Module:
    if kind == "mamba":
        from .mamba import MambaConfig, MambaLM

        return MambaLM(MambaConfig.from_dict(config), device=device, dtype=dtype)
    if kind == "llama":
        from .llama import LlamaLM

        return LlamaLM(config, device=device, dtype=dtype)
    raise ValueError(f"unknown LLM kind {kind!r}; use 'mamba' or 'llama'")


class MLLM(nn.Module):
    """Built where the default device is (``with torch.device(...)``), in float32; ``build_model`` casts."""

    def __init__(self, config: MLLMConfig, tokenizer: TextTokenizer, vision_weights: Optional[dict] = None):
        super().__init__()
        self.config = config
        self.tokenizer = tokenizer
        self.vision = VisionEncoder(config.vision, vision_weights, overrides=config.vision_overrides)
        self.llm = build_llm(config.llm, config.llm_config)
        self.projector = build_projector(config.projector, self.vision.feature_dim, self.llm.hidden_size,
                                         **config.projector_kwargs)
        self.checkpoint = None  # set by the loader
        self.token_order = "raster"  # the scan-order probe: patches reach the projector in another order
        self._order_index: Optional[torch.Tensor] = None
        self._kernels = REFERENCE
        self._decoder = None

    # -- plumbing -----------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return next(self.llm.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.llm.parameters()).dtype

    @property
    def visual_tokens(self) -> int:
        """How many tokens an image becomes in the LLM: the queries of a query projector, else the patches."""
        pool = getattr(self.projector, "pool", 1)
        return getattr(self.projector, "num_queries", None) or self.vision.num_patches // (pool * pool)

    @property
    def max_positions(self) -> Optional[int]:
        """The LLM's position limit (None for a Mamba LLM, which has none)."""
        return getattr(self.llm, "max_positions", None)

    @property
    def kernels(self) -> Kernels:
        return self._kernels

    def set_kernels(self, backend: str = "auto") -> Kernels:
        """Choose every fast operation's implementation once ('reference', 'mamba_ssm' or 'auto': see ops.py)."""
        self._kernels = set_kernels(self, Kernels.resolve(backend, self.device))
        self._decoder = None
        return self._kernels

    @property
    def decoder(self) -> GreedyDecoder:
        if self._decoder is None or self._decoder.device != self.device:
            self._decoder = GreedyDecoder(self.llm, self.tokenizer.eos_id, self.device, self._kernels.graphs)
        return self._decoder

    def identity(self) -> dict:
        n = sum(p.numel() for p in self.parameters())
        return {"name": self.config.name, "config_fingerprint": self.config.fingerprint(),
                "parameters": n, "checkpoint": self.checkpoint, "random_init": self.checkpoint is None,
                "vision_random_init": self.vision.random_init, "kernels": self._kernels.describe(),
                "llm_kernels": self.llm.kernel_info(), "token_order": self.token_order,
                "dtype": str(self.dtype).replace("torch.", ""), "device": str(self.device),
                "tokenizer": self.tokenizer.path, "template": self.config.template}

    # -- inputs -------------------------------------------------------------------------

    @torch.no_grad()
    def encode_images(self, images) -> torch.Tensor:
        """Images (PIL, uint8 (H, W, 3) tensors or ``vision.PreparedImage``) -> visual tokens (B, M, d_llm)."""
        feats = self.vision(self.vision.pixels(images, self.device))  # (B, N, vision_dim)
        if self._order_index is not None:
            feats = feats[:, self._order_index.to(feats.device)]
        return self.projector(feats.to(self.dtype))

    def set_token_order(self, order: str = "raster") -> None:
        """Feed the projector the patches in raster order (row-major, as encoded), ``transposed`` (column-major
        over the patch grid) or ``permuted`` (one fixed random permutation, seed 1234): the scan-order probe."""
        self._order_index = token_order_index(order, self.vision.num_patches)
        self.token_order = order

    def text_ids(self, prompts: Sequence[str]) -> list[list[int]]:
        return [self.tokenizer.encode(apply_template(self.config.template, p)) for p in prompts]

    def assemble(self, visual: torch.Tensor, ids: list[list[int]]):
        """[pad][visual M][text] per row, in one gather -> inputs_embeds (B, M + T, d), attention_mask (B, M + T)."""
        b, m, d = visual.shape
        t = max(len(x) for x in ids)
        right = torch.zeros(b, t, dtype=torch.long)  # text right-aligned; the left fill is never read
        for i, row in enumerate(ids):
            if row:
                right[i, t - len(row):] = torch.tensor(row)
        lens = torch.tensor([len(x) for x in ids], device=visual.device)
        text = self.llm.embed(right.to(visual.device)).to(visual.dtype)  # (B, T, d)
        source = torch.cat([visual.new_zeros(b, 1, d), visual, text], dim=1)  # (B, 1 + M + T, d)
        j = torch.arange(m + t, device=visual.device).unsqueeze(0)  # (1, M + T)
        pad = (t - lens).unsqueeze(1)  # (B, 1)
        index = torch.where(j < pad, 0, torch.where(j < pad + m, 1 + j - pad, 1 + j))  # (B, M + T)
        embeds = source.gather(1, index.unsqueeze(-1).expand(b, m + t, d))
        return embeds, (j >= pad).long()

    # -- generation ---------------------------------------------------------------------

    @torch.no_grad()
    def generate(self, images, prompts: Sequence[str], max_new_tokens: int = 16,
                 stop: Optional[Sequence[str]] = None) -> list[str]:
        """Greedy decoding, batched. Stops at EOS or after max_new_tokens; the text is cut at any ``stop`` string
        (greedy tokens before a stop string do not depend on what follows it)."""
        if len(images) != len(prompts):
            raise ValueError(f"{len(images)} images but {len(prompts)} prompts")
        embeds, mask = self.assemble(self.encode_images(images), self.text_ids(prompts))
        texts = []
        for row in self.decoder.generate(embeds, mask, max_new_tokens):
            text = self.tokenizer.decode(row)
            for s in stop or []:
                text = text.split(s)[0]
            texts.append(text.strip())
        return texts

    @torch.no_grad()
    def score_continuation(self, images, prompts: Sequence[str], continuations: Sequence[str]):
        """Per row: (summed log-prob of its continuation, whether greedy decoding would produce it)."""
        return self._score(self.encode_images(images), self.text_ids(prompts), continuations)

    @torch.no_grad()
    def score_options(self, images, prompts: Sequence[str], options: Sequence[str]) -> torch.Tensor:
        """Summed log-probability of each option continuing each prompt: (B, K) float32."""
        visual, base = self.encode_images(images), self.text_ids(prompts)  # once for all options
        scores = torch.empty(len(prompts), len(options))
        for k, option in enumerate(options):
            scores[:, k] = torch.tensor([lp for lp, _ in self._score(visual, base, [option] * len(prompts))])
        return scores

    def _score(self, visual, base: list[list[int]], continuations: Sequence[str]):
        conts = [self.tokenizer.encode(c) for c in continuations]
        for c, text in zip(conts, continuations):
            if not c:
                raise ValueError(f"continuation {text!r} encodes to no tokens")
        embeds, mask = self.assemble(visual, [b + c for b, c in zip(base, conts)])
        logp = torch.log_softmax(self.llm(inputs_embeds=embeds, attention_mask=mask).float(), -1)
        out = []
        for i, c in enumerate(conts):
            pred = logp[i, -len(c) - 1:-1]  # (len(c), V): position t predicts token t+1
            target = torch.tensor(c, device=pred.device)
            out.append((float(pred.gather(-1, target[:, None]).sum()), bool((pred.argmax(-1) == target).all())))
        return out


TOKEN_ORDERS = ("raster", "transposed", "permuted")


def token_order_index(order: str, n: int) -> Optional[torch.Tensor]:
    """The patch permutation of ``order`` over ``n`` patches (None for raster: no change)."""
    if order == "raster":
        return None
    if order == "transposed":
        side = int(round(n ** 0.5))
        if side * side != n:
            raise ValueError(f"a transposed token order needs a square patch grid, got {n} patches")
        return torch.arange(n).view(side, side).t().reshape(-1)
    if order == "permuted":
        return torch.randperm(n, generator=torch.Generator().manual_seed(1234))
    raise ValueError(f"unknown token order {order!r}; choose from {', '.join(TOKEN_ORDERS)}")
