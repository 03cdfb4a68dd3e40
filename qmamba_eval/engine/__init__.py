"""The fast inference engine beside ``models/`` (which stays the readable reference).

``Engine(model)`` answers like ``MLLM.generate`` (greedy, same stopping rules) with:
* vision: uint8 images resized / normalised on the device, encoders skipping their unused last layer;
* prompt assembly on the device in one gather ([pad][visual][text] per row, left padding);
* LLM prefill: ``FastMambaLM`` (mamba-ssm layout, fused add + RMSNorm, causal-conv1d, padding folded into the
  dt GEMM) or ``FastLlama`` (SDPA, static KV cache);
* decoding: ``GreedyDecoder`` -- static state per batch bucket, CUDA graphs on CUDA, argmax and per-row EOS
  on the device.
On the CPU every step runs in plain PyTorch (no graphs), which is how CI checks the engine against
``MLLM.generate`` on the same weights. ``attach(model)`` sets ``model.engine`` so ``model.identity()`` records
which engine ran.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch

from ..models.mamba import MambaLM
from ..models.text import apply_template
from .decode import GreedyDecoder
from .kernels import Kernels
from .vision import FastVision, to_uint8

__all__ = ["Engine", "attach", "to_uint8"]


class Engine:
    def __init__(self, model, graphs: Optional[bool] = None):
        self.model = model
        self.device = model.device
        on_cuda = self.device.type == "cuda"
        self.graphs = on_cuda if graphs is None else graphs
        if self.graphs and not on_cuda:
            raise ValueError("CUDA graphs need the model on a CUDA device")
        if isinstance(model.llm, MambaLM):
            from .mamba_lm import FastMambaLM

            self.kernels = Kernels.for_device(self.device)
            self.lm = FastMambaLM(model.llm, self.kernels)
        else:
            from .llama_lm import FastLlama

            self.kernels = None
            self.lm = FastLlama(model.llm)
        self.vision = FastVision(model.vision)
        self.decoder = GreedyDecoder(self.lm, model.tokenizer.eos_id, self.device, self.graphs)

    def info(self) -> dict:
        return {"name": "engine", "cuda_graphs": self.graphs,
                "llm": type(self.lm).__name__,
                "kernels": self.kernels.describe() if self.kernels is not None else {"attention": "torch-sdpa"},
                "vision": self.vision.info()}

    # -- pieces ---------------------------------------------------------------------------------

    @torch.no_grad()
    def encode_images(self, images) -> torch.Tensor:
        """PIL images or (H, W, 3) uint8 tensors -> projected visual tokens (B, M, d_llm)."""
        feats = self.vision([to_uint8(im) for im in images])
        return self.model.projector(feats.to(self.model.dtype))

    @torch.no_grad()
    def assemble(self, visual: torch.Tensor, prompts: Sequence[str]):
        """[pad][visual M][text] per row in one gather -> embeds (B, M + T, d), mask (B, M + T)."""
        tok = self.model.tokenizer
        ids = [tok.encode(apply_template(self.model.config.template, p)) for p in prompts]
        b, m, d = visual.shape
        t = max(len(x) for x in ids)
        right = torch.zeros(b, t, dtype=torch.long)  # text right-aligned; the left fill is never read
        for i, row in enumerate(ids):
            if row:
                right[i, t - len(row):] = torch.tensor(row)
        lens = torch.tensor([len(x) for x in ids], device=visual.device)
        text = self.model.llm.embed(right.to(visual.device)).to(visual.dtype)  # (B, T, d)
        source = torch.cat([visual.new_zeros(b, 1, d), visual, text], dim=1)  # (B, 1 + M + T, d)
        j = torch.arange(m + t, device=visual.device).unsqueeze(0)  # (1, M + T)
        pad = (t - lens).unsqueeze(1)  # (B, 1)
        index = torch.where(j < pad, 0, torch.where(j < pad + m, 1 + j - pad, 1 + j))  # (B, M + T)
        embeds = source.gather(1, index.unsqueeze(-1).expand(b, m + t, d))
        return embeds, (j >= pad).long()

    # -- generation -------------------------------------------------------------------------------

    @torch.no_grad()
    def generate(self, images, prompts: Sequence[str], max_new_tokens: int = 16,
                 stop: Optional[Sequence[str]] = None) -> list[str]:
        """Same contract and answers as ``MLLM.generate`` (greedy; EOS, stop strings, max_new_tokens)."""
        if len(images) != len(prompts):
            raise ValueError(f"{len(images)} images but {len(prompts)} prompts")
        embeds, mask = self.assemble(self.encode_images(images), prompts)
        rows = self.decoder.generate(embeds, mask, max_new_tokens)
        texts = []
        for row in rows:
            text = self.model.tokenizer.decode(row)
            for s in stop or []:
                text = text.split(s)[0]
            texts.append(text.strip())
        return texts


def attach(model, graphs: Optional[bool] = None) -> Engine:
    """Build an ``Engine`` for ``model`` and record it on the model (``model.identity()['engine']``)."""
    model.engine = Engine(model, graphs=graphs)
    return model.engine
