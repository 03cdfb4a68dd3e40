"""Fast prefill and single-token step for the LLaVA-style Llama LLM (``models.llm.LlamaLM``), same weights.

A static KV cache (n_layer, b, kv_heads, L, head_dim) with one write slot shared by all rows and a per-row
rotary position (left padding: position = real tokens so far), SDPA attention with a boolean key mask, and
fixed shapes in the step, so the decoder can capture it in a CUDA graph. Cache lengths are bucketed to
multiples of ``LEN_BUCKET`` so a few graphs serve every prompt length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

LEN_BUCKET = 128


@dataclass
class LlamaState:
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


class FastLlama:
    def __init__(self, llm):
        self.hf = llm.model  # LlamaForCausalLM
        cfg = self.hf.config
        self.layers = list(self.hf.model.layers)
        self.heads = cfg.num_attention_heads
        self.kv_heads = getattr(cfg, "num_key_value_heads", None) or self.heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.heads
        self.rotary = self.hf.model.rotary_emb

    def state_key(self, total_len: int):
        return LEN_BUCKET * math.ceil(total_len / LEN_BUCKET)

    def allocate_state(self, batch: int, total_len: int) -> LlamaState:
        w = self.hf.lm_head.weight
        length = self.state_key(total_len)
        shape = (len(self.layers), batch, self.kv_heads, length, self.head_dim)
        return LlamaState(k=torch.zeros(shape, device=w.device, dtype=w.dtype),
                          v=torch.zeros(shape, device=w.device, dtype=w.dtype),
                          valid=torch.zeros(batch, length, dtype=torch.bool, device=w.device),
                          pos=torch.zeros(batch, dtype=torch.long, device=w.device),
                          slot=torch.zeros(1, dtype=torch.long, device=w.device))

    def _attn_block(self, i, layer, x, cos, sin, mask, write):
        """x (b, l, d) -> x + attention; ``write(i, k, v)`` stores keys / values and returns the ones to use."""
        b, l, _ = x.shape
        a = layer.self_attn
        h = layer.input_layernorm(x)
        q = a.q_proj(h).view(b, l, self.heads, self.head_dim).transpose(1, 2)
        k = a.k_proj(h).view(b, l, self.kv_heads, self.head_dim).transpose(1, 2)
        v = a.v_proj(h).view(b, l, self.kv_heads, self.head_dim).transpose(1, 2)
        q, k = _rope(q, cos, sin), _rope(k, cos, sin)
        k, v = write(i, k, v)
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=self.kv_heads != self.heads)
        x = x + a.o_proj(o.transpose(1, 2).reshape(b, l, self.heads * self.head_dim))
        h = layer.post_attention_layernorm(x)
        return x + layer.mlp(h)

    @torch.no_grad()
    def prefill(self, embeds, mask, state: LlamaState):
        """embeds (b, l, d), mask (b, l) left padding -> last logits (b, V); fills cache rows [:b]."""
        b, l, _ = embeds.shape
        x = embeds.to(self.hf.lm_head.weight.dtype)
        keep = mask.bool()
        pos = (keep.long().cumsum(-1) - 1).clamp(min=0)  # (b, l)
        cos, sin = self.rotary(x, pos)
        causal = torch.ones(l, l, dtype=torch.bool, device=x.device).tril()
        allowed = (causal & keep[:, None, :]) | torch.eye(l, dtype=torch.bool, device=x.device)  # pads see self
        allowed = allowed.unsqueeze(1)  # (b, 1, l, l)

        def write(i, k, v):
            state.k[i, :b, :, :l] = k
            state.v[i, :b, :, :l] = v
            return k, v

        for i, layer in enumerate(self.layers):
            x = self._attn_block(i, layer, x, cos, sin, allowed, write)
        state.valid[:b] = False
        state.valid[:b, :l] = keep
        state.pos[:b] = keep.sum(-1)
        state.slot.fill_(l)
        return self.hf.lm_head(self.hf.model.norm(x[:, -1]))

    @torch.no_grad()
    def step(self, ids, state: LlamaState):
        """ids (b,) -> logits (b, V); cache, positions and slot advanced in place (graph-safe)."""
        x = self.hf.model.embed_tokens(ids).unsqueeze(1)  # (b, 1, d)
        cos, sin = self.rotary(x, state.pos.unsqueeze(1))
        state.valid.index_fill_(1, state.slot, True)
        mask = state.valid[:, None, None, :]  # (b, 1, 1, L)

        def write(i, k, v):
            state.k[i].index_copy_(2, state.slot, k)
            state.v[i].index_copy_(2, state.slot, v)
            return state.k[i], state.v[i]

        for i, layer in enumerate(self.layers):
            x = self._attn_block(i, layer, x, cos, sin, mask, write)
        state.pos.add_(1)
        state.slot.add_(1)
        return self.hf.lm_head(self.hf.model.norm(x[:, 0]))
