"""The LLaVA-style baseline's LLM: a Hugging Face ``LlamaForCausalLM`` behind the LLM interface of ``mllm.py``.

``forward`` (whole sequences, training and log-likelihood scoring) runs the Hugging Face model with SDPA
attention. Generation runs on a static KV cache the model allocates itself (``allocate_inference_cache``:
(n_layer, b, kv_heads, L, head_dim), lengths bucketed to multiples of ``LEN_BUCKET`` so a few CUDA graphs serve
every prompt), with one write slot shared by all rows and a per-row rotary position (left padding: position =
real tokens so far), SDPA with a boolean key mask, and fixed shapes in ``step``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

LEN_BUCKET = 128


@dataclass
class LlamaCache:
    k: torch.Tensor  # (n_layer, b, kv_heads, L, head_dim)
    v: torch.Tensor
    valid: torch.Tensor  # (b, L) bool: slot holds a real token
    pos: torch.Tensor  # (b,) long: rotary position of the next token
    slot: torch.Tensor  # (1,) long: next cache slot (same for every row)


def _rope(x, cos, sin):  # x (b, h, l, hd); cos/sin (b, l, hd)
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


class LlamaLM(nn.Module):
    def __init__(self, config: dict, device=None, dtype=None):
        super().__init__()
        from transformers import LlamaConfig, LlamaForCausalLM

        cfg = LlamaConfig(**config)
        cfg._attn_implementation = "sdpa"
        self.model = LlamaForCausalLM(cfg)
        if dtype is not None or device is not None:
            self.model.to(device=device, dtype=dtype)
        self.heads = cfg.num_attention_heads
        self.kv_heads = getattr(cfg, "num_key_value_heads", None) or self.heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.heads

    @property
    def hidden_size(self) -> int:
        return self.model.config.hidden_size

    @property
    def max_positions(self) -> int:
        return self.model.config.max_position_embeddings

    def kernel_info(self) -> dict:
        return {"attention": "torch-sdpa"}

    def embed(self, ids):
        return self.model.get_input_embeddings()(ids)

    def forward(self, input_ids=None, inputs_embeds=None, attention_mask=None, num_last_tokens=0):
        if inputs_embeds is None:
            inputs_embeds = self.embed(input_ids)
        if attention_mask is None:
            attention_mask = torch.ones(inputs_embeds.shape[:2], dtype=torch.long, device=inputs_embeds.device)
        positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        out = self.model(inputs_embeds=inputs_embeds, attention_mask=attention_mask.long(), position_ids=positions,
                         use_cache=False)
        return out.logits[:, -num_last_tokens:] if num_last_tokens else out.logits

    # -- the inference cache ------------------------------------------------------------------------------------

    def cache_key(self, max_seqlen: int) -> int:
        return LEN_BUCKET * math.ceil(max_seqlen / LEN_BUCKET)

    def allocate_inference_cache(self, batch: int, max_seqlen: int, dtype=None) -> LlamaCache:
        w = self.model.lm_head.weight
        length = self.cache_key(max_seqlen)
        shape = (len(self.model.model.layers), batch, self.kv_heads, length, self.head_dim)
        return LlamaCache(k=torch.zeros(shape, device=w.device, dtype=dtype or w.dtype),
                          v=torch.zeros(shape, device=w.device, dtype=dtype or w.dtype),
                          valid=torch.zeros(batch, length, dtype=torch.bool, device=w.device),
                          pos=torch.zeros(batch, dtype=torch.long, device=w.device),
                          slot=torch.zeros(1, dtype=torch.long, device=w.device))

    def _attn_block(self, layer, x, cos, sin, mask, write):
        """x (b, l, d) -> x + attention + MLP; ``write(k, v)`` stores keys / values and returns the ones to use."""
        b, l, _ = x.shape
        a = layer.self_attn
        h = layer.input_layernorm(x)
        q = a.q_proj(h).view(b, l, self.heads, self.head_dim).transpose(1, 2)
        k = a.k_proj(h).view(b, l, self.kv_heads, self.head_dim).transpose(1, 2)
        v = a.v_proj(h).view(b, l, self.kv_heads, self.head_dim).transpose(1, 2)
        q, k = _rope(q, cos, sin), _rope(k, cos, sin)
        k, v = write(k, v)
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=self.kv_heads != self.heads)
        x = x + a.o_proj(o.transpose(1, 2).reshape(b, l, self.heads * self.head_dim))
        return x + layer.mlp(layer.post_attention_layernorm(x))

    @torch.no_grad()
    def prefill(self, inputs_embeds, attention_mask, cache: LlamaCache):
        """embeds (b, l, d), mask (b, l) left padding -> last logits (b, V); fills cache rows [:b]."""
        b, l, _ = inputs_embeds.shape
        hf = self.model
        x = inputs_embeds.to(hf.lm_head.weight.dtype)
        keep = attention_mask.bool()
        cos, sin = hf.model.rotary_emb(x, (keep.long().cumsum(-1) - 1).clamp(min=0))
        causal = torch.ones(l, l, dtype=torch.bool, device=x.device).tril()
        allowed = (causal & keep[:, None, :]) | torch.eye(l, dtype=torch.bool, device=x.device)  # pads see self
        allowed = allowed.unsqueeze(1)  # (b, 1, l, l)
        for i, layer in enumerate(hf.model.layers):
            def write(k, v, i=i):
                cache.k[i, :b, :, :l] = k
                cache.v[i, :b, :, :l] = v
                return k, v

            x = self._attn_block(layer, x, cos, sin, allowed, write)
        cache.valid[:b] = False
        cache.valid[:b, :l] = keep
        cache.pos[:b] = keep.sum(-1)
        cache.slot.fill_(l)
        return hf.lm_head(hf.model.norm(x[:, -1]))

    @torch.no_grad()
    def step(self, input_ids, cache: LlamaCache):
        """ids (b,) -> logits (b, V); cache, positions and slot advanced in place (graph-safe)."""
        hf = self.model
        x = hf.model.embed_tokens(input_ids).unsqueeze(1)  # (b, 1, d)
        cos, sin = hf.model.rotary_emb(x, cache.pos.unsqueeze(1))
        cache.valid.index_fill_(1, cache.slot, True)
        mask = cache.valid[:, None, None, :]  # (b, 1, 1, L)
        for i, layer in enumerate(hf.model.layers):
            def write(k, v, i=i):
                cache.k[i].index_copy_(2, cache.slot, k)
                cache.v[i].index_copy_(2, cache.slot, v)
                return cache.k[i], cache.v[i]

            x = self._attn_block(layer, x, cos, sin, mask, write)
        cache.pos.add_(1)
        cache.slot.add_(1)
        return hf.lm_head(hf.model.norm(x[:, 0]))
