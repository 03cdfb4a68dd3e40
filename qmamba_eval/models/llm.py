"""Language-model backbones behind one small interface used by the MLLM.

``build_llm(kind, config)`` returns an ``nn.Module`` with

* ``embed(ids) -> (B, L, d)``
* ``forward(inputs_embeds, attention_mask) -> logits (B, L, V)``  (left padding)
* ``prefill(inputs_embeds, attention_mask) -> (last logits (B, V), cache)``
* ``decode(ids (B,), cache) -> logits (B, V)``

* ``hidden_size`` and ``kernel_info() -> dict``

``mamba``: ``mamba.MambaLM`` itself (state dict = mamba-ssm ``MambaLMHeadModel``; it implements the interface),
so checkpoint keys read ``llm.backbone.*`` / ``llm.lm_head.weight`` as in Cobra.
``llama``: a Hugging Face ``LlamaForCausalLM`` with PyTorch SDPA attention (the LLaVA-style baseline).
"""

from __future__ import annotations

import inspect

import torch
import torch.nn as nn

from .mamba import MambaConfig, MambaLM


class LlamaLM(nn.Module):
    """Hugging Face Llama causal LM behind the same interface (SDPA attention, KV cache)."""

    def __init__(self, config: dict, device=None, dtype=None):
        super().__init__()
        from transformers import LlamaConfig, LlamaForCausalLM

        cfg = LlamaConfig(**config)
        cfg._attn_implementation = "sdpa"
        self.model = LlamaForCausalLM(cfg)
        if dtype is not None or device is not None:
            self.model.to(device=device, dtype=dtype)
        self.backend = "torch-sdpa"
        # transformers >= 5.2x renamed forward(past_key_values=...) to forward(cache=...)
        params = inspect.signature(LlamaForCausalLM.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"

    @property
    def hidden_size(self) -> int:
        return self.model.config.hidden_size

    def embed(self, ids):
        return self.model.get_input_embeddings()(ids)

    @staticmethod
    def _positions(mask):
        return (mask.long().cumsum(-1) - 1).clamp(min=0)

    def forward(self, input_ids=None, inputs_embeds=None, attention_mask=None, num_last_tokens=0, cache=None):
        if inputs_embeds is None:
            inputs_embeds = self.embed(input_ids)
        if attention_mask is None:
            attention_mask = torch.ones(inputs_embeds.shape[:2], dtype=torch.long, device=inputs_embeds.device)
        out = self.model(inputs_embeds=inputs_embeds, attention_mask=attention_mask.long(),
                         position_ids=self._positions(attention_mask), use_cache=False)
        logits = out.logits
        return logits[:, -num_last_tokens:] if num_last_tokens else logits

    def prefill(self, inputs_embeds, attention_mask):
        mask = attention_mask.long()
        out = self.model(inputs_embeds=inputs_embeds, attention_mask=mask,
                         position_ids=self._positions(mask), use_cache=True)
        return out.logits[:, -1], {"kv": _past_key_values(out), "mask": mask}

    def decode(self, ids, cache):
        mask = torch.cat([cache["mask"], cache["mask"].new_ones(cache["mask"].shape[0], 1)], dim=1)
        pos = self._positions(mask)[:, -1:]
        out = self.model(input_ids=ids[:, None], attention_mask=mask, position_ids=pos,
                         use_cache=True, **{self._cache_kw: cache["kv"]})
        cache["kv"], cache["mask"] = _past_key_values(out), mask
        return out.logits[:, -1]

    def kernel_info(self) -> dict:
        return {"backend": self.backend}


def build_llm(kind: str, config: dict, device=None, dtype=None) -> nn.Module:
    if kind == "mamba":
        return MambaLM(MambaConfig.from_dict(config), device=device, dtype=dtype)
    if kind == "llama":
        return LlamaLM(config, device=device, dtype=dtype)
    raise ValueError(f"unknown LLM kind {kind!r}; use 'mamba' or 'llama'")


def _past_key_values(out):
    """The KV cache of a transformers output (``cache`` in new releases, ``past_key_values`` before)."""
    return out["cache"] if "cache" in out else out["past_key_values"]
