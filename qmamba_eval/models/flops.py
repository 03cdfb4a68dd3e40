"""Forward FLOP counts, nanoGPT style: 2 FLOPs per multiply-add of every matmul, plus attention scores.

Used by the profiler for achieved TFLOP/s and the fraction of the hardware floor. Elementwise work (norms,
activations, the Mamba scan's exponentials) is left out except where noted: these are matmul counts.
"""

from __future__ import annotations


def llama_flops_per_token(config, context: int) -> float:
    """A Llama decoder at a given attention context: projections + MLP + QK^T and AV + lm_head."""
    d, inter, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    heads = config.num_attention_heads
    kv = getattr(config, "num_key_value_heads", None) or heads
    head_dim = d // heads
    proj = 2 * d * (d + 2 * kv * head_dim + d)  # q, k, v, o
    mlp = 2 * 3 * d * inter
    attn = 2 * 2 * context * d  # scores and weighted sum
    return float(layers * (proj + mlp + attn) + 2 * d * config.vocab_size)


def llm_prefill_flops(llm, batch: int, length: int) -> float:
    """Forward FLOPs of a prefill of ``batch`` rows of ``length`` tokens (causal attention: mean context l/2)."""
    if hasattr(llm, "flops_per_token"):
        return batch * length * llm.flops_per_token()
    return batch * length * llama_flops_per_token(llm.model.config, length / 2)


def llm_decode_flops(llm, batch: int, context: int) -> float:
    if hasattr(llm, "flops_per_token"):
        return batch * llm.flops_per_token()
    return batch * llama_flops_per_token(llm.model.config, context)


def vit_flops(spec, images: int, tokens: int) -> float:
    """A ViT backbone (``vision.BackboneSpec``) on ``images`` images of ``tokens`` tokens, all layers but the
    last (the features come from the second-to-last): patch embedding + per layer 4 d^2 + 2 d*ff + attention."""
    d, ff, layers = spec.hidden_size, spec.intermediate_size, spec.num_layers - 1
    patch = 2 * tokens * 3 * spec.patch_size ** 2 * d
    per_layer = 2 * tokens * (4 * d * d + 2 * d * ff) + 2 * 2 * tokens * tokens * d
    return float(images * (patch + layers * per_layer))
