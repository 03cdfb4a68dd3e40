"""The Mamba LM against a float64 sequential reference written from the equations."""

import math

import pytest
import torch
import torch.nn.functional as F

from qmamba_eval.models.mamba import MambaConfig, MambaLM


def reference_lm_float64(model: MambaLM, ids: torch.Tensor) -> torch.Tensor:
    """Independent float64 re-implementation: explicit per-token conv window and SSM recurrence."""
    sd = {k: v.double() for k, v in model.state_dict().items()}
    c = model.config
    x = sd["backbone.embedding.weight"][ids]  # (b, l, d)
    b, l, _ = x.shape
    residual = torch.zeros_like(x)
    hidden = x

    def rms(v, w):
        return v * torch.rsqrt(v.pow(2).mean(-1, keepdim=True) + 1e-5) * w

    for i in range(c.n_layer):
        p = f"backbone.layers.{i}."
        residual = residual + hidden if i else hidden
        h = rms(residual, sd[p + "norm.weight"])
        W = lambda n: sd[p + "mixer." + n]
        xz = h @ W("in_proj.weight").T
        d_inner = xz.shape[-1] // 2
        u, z = xz[..., :d_inner], xz[..., d_inner:]
        k = W("conv1d.weight").shape[-1]
        A = -torch.exp(W("A_log"))
        n = A.shape[1]
        r = W("dt_proj.weight").shape[1]
        out = torch.zeros(b, l, d_inner, dtype=torch.float64)
        state = torch.zeros(b, d_inner, n, dtype=torch.float64)
        for t in range(l):
            window = torch.stack([u[:, t - k + 1 + j] if t - k + 1 + j >= 0 else torch.zeros_like(u[:, 0])
                                  for j in range(k)], -1)  # (b, d_inner, k)
            xc = F.silu((window * W("conv1d.weight")[:, 0]).sum(-1) + W("conv1d.bias"))
            dbc = xc @ W("x_proj.weight").T
            dt = F.softplus(dbc[:, :r] @ W("dt_proj.weight").T + W("dt_proj.bias"))
            Bt, Ct = dbc[:, r:r + n], dbc[:, r + n:]
            state = torch.exp(dt[..., None] * A) * state + (dt * xc)[..., None] * Bt[:, None]
            y = (state * Ct[:, None]).sum(-1) + W("D") * xc
            out[:, t] = y * F.silu(z[:, t])
        hidden = out @ W("out_proj.weight").T
    residual = residual + hidden
    h = rms(residual, sd["backbone.norm_f.weight"])
    return h @ sd["lm_head.weight"].T


def tiny(tie=True, **kw):
    torch.manual_seed(1)
    m = MambaLM(MambaConfig(d_model=32, n_layer=3, vocab_size=101, tie_embeddings=tie, **kw))
    with torch.no_grad():  # make the mixers matter so errors show (random init is near-identity)
        for layer in m.backbone.layers:
            layer.mixer.out_proj.weight.mul_(20)
            layer.mixer.dt_proj.bias.add_(3.0)
    return m.eval()


@pytest.mark.parametrize("tie", [True, False])
def test_matches_float64_reference(tie):
    m = tiny(tie)
    ids = torch.randint(0, 101, (2, 13))
    got = m(input_ids=ids).double()
    ref = reference_lm_float64(m, ids)
    assert got.shape == (2, 13, 104)  # vocab padded to a multiple of 8
    rel = (got - ref).abs().max() / ref.abs().max()
    assert rel < 1e-5, rel


def test_step_decoding_equals_full_sequence():
    m = tiny()
    ids = torch.randint(0, 101, (3, 12))
    full = m(input_ids=ids)
    cache = m.allocate_inference_cache(4)  # a bucket larger than the batch: rows beyond it are spare
    pre = m(input_ids=ids[:, :5], cache=cache, num_last_tokens=1)
    torch.testing.assert_close(pre[:, 0], full[:, 4], rtol=1e-5, atol=1e-5)
    sub = type(cache)(cache.conv[:, :3], cache.ssm[:, :3])
    for t in range(5, 12):
        torch.testing.assert_close(m.step(ids[:, t], sub), full[:, t], rtol=1e-5, atol=1e-5)


def test_short_prefill_shorter_than_conv_window():
    m = tiny()
    ids = torch.randint(0, 101, (1, 6))
    full = m(input_ids=ids)
    cache = m.allocate_inference_cache(1)
    m(input_ids=ids[:, :2], cache=cache)
    for t in range(2, 6):
        torch.testing.assert_close(m.step(ids[:, t], cache), full[:, t], rtol=1e-5, atol=1e-5)


def test_inputs_embeds_path_equals_input_ids():
    m = tiny()
    ids = torch.randint(0, 101, (2, 7))
    torch.testing.assert_close(m(inputs_embeds=m.backbone.embedding(ids)), m(input_ids=ids))
    assert m(input_ids=ids, num_last_tokens=2).shape == (2, 2, 104)
    with pytest.raises(ValueError, match="exactly one"):
        m(input_ids=ids, inputs_embeds=m.backbone.embedding(ids))


def test_left_padding_is_masked_exactly():
    m = tiny()
    ids = torch.randint(2, 101, (1, 9))
    alone = m(input_ids=ids)
    padded = torch.cat([torch.full((1, 4), 1), ids], dim=1)
    mask = torch.cat([torch.zeros(1, 4), torch.ones(1, 9)], dim=1).long()
    got = m(input_ids=padded, attention_mask=mask)[:, 4:]
    torch.testing.assert_close(got, alone, rtol=1e-5, atol=1e-5)
    # the mask matters: without it the pad tokens change the logits
    assert (m(input_ids=padded)[:, 4:] - alone).abs().max() > 1e-3
    # and decoding after a padded prefill continues exactly
    nxt = torch.randint(2, 101, (1,))
    c1, c2 = m.allocate_inference_cache(1), m.allocate_inference_cache(1)
    m(input_ids=ids, cache=c1)
    m(input_ids=padded, attention_mask=mask, cache=c2)
    torch.testing.assert_close(m.step(nxt, c2), m.step(nxt, c1), rtol=1e-5, atol=1e-5)


def test_state_dict_is_mamba_ssm_layout_and_round_trips():
    m = tiny()
    keys = set(m.state_dict())
    for k in ["backbone.embedding.weight", "backbone.norm_f.weight", "lm_head.weight"] + [
        f"backbone.layers.2.mixer.{n}" for n in ("in_proj.weight", "conv1d.weight", "conv1d.bias", "x_proj.weight",
                                                   "dt_proj.weight", "dt_proj.bias", "A_log", "D", "out_proj.weight")
    ] + ["backbone.layers.0.norm.weight"]:
        assert k in keys, k
    m2 = MambaLM(m.config).eval()
    m2.load_state_dict(m.state_dict())
    ids = torch.randint(0, 101, (1, 5))
    torch.testing.assert_close(m2(input_ids=ids), m(input_ids=ids))


def test_config_fields_and_errors():
    c = MambaConfig(d_model=2560, n_layer=64, vocab_size=50277)
    assert c.padded_vocab_size == 50280
    with pytest.raises(ValueError, match="unknown MambaConfig fields"):
        MambaConfig.from_dict({"d_model": 8, "bogus": 1})
    with pytest.raises(ValueError, match="Mamba1"):
        MambaConfig(ssm_cfg={"layer": "Mamba2"})


def test_kernel_choice_is_explicit_on_cpu():
    from qmamba_eval.models.ops import Kernels, set_kernels

    m = tiny()
    k = set_kernels(m, Kernels.resolve("auto", "cpu"))
    assert k.backend == "reference" and not (k.scan or k.graphs or k.device_resize)
    assert {id(layer.mixer.kernels) for layer in m.backbone.layers} == {id(m.kernels)} == {id(k)}
    assert m.kernel_info()["causal_conv1d"] == "torch" and m.kernel_info()["selective_scan"] == "torch-reference"
    with pytest.raises(RuntimeError, match="CUDA"):
        Kernels.resolve("mamba_ssm", "cpu")
    with pytest.raises(ValueError, match="unknown kernel backend"):
        Kernels.resolve("fast", "cpu")


def test_prefill_with_padding_and_a_larger_cache_continues_like_the_full_sequence():
    """``prefill`` on a left-padded batch fills the cache rows of the batch; steps then equal the full forward."""
    m = tiny()
    lengths = [9, 3, 6]
    g = torch.Generator().manual_seed(1)
    embeds = torch.randn(3, 9, 32, generator=g)  # padded positions hold garbage: it must be ignored
    mask = torch.zeros(3, 9, dtype=torch.long)
    for i, n in enumerate(lengths):
        mask[i, 9 - n:] = 1
    cache = m.allocate_inference_cache(4)
    logits = m.prefill(embeds, mask, cache)
    nxt = torch.tensor([5, 6, 7])
    stepped = m.step(nxt, type(cache)(cache.conv[:, :3], cache.ssm[:, :3]))
    for i, n in enumerate(lengths):
        alone = m(inputs_embeds=torch.cat([embeds[i:i + 1, 9 - n:], m.embed(nxt[i:i + 1])[:, None]], 1))
        torch.testing.assert_close(logits[i], alone[0, -2], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(stepped[i], alone[0, -1], rtol=1e-5, atol=1e-5)


def test_real_scale_preset_dimensions_on_meta_device():
    m = MambaLM(MambaConfig(d_model=2560, n_layer=64, vocab_size=50280), device="meta")
    n = m.num_params()
    assert 2.6e9 < n < 2.9e9, n  # Mamba-2.8B
    assert math.isclose(m.flops_per_token() / (2 * n), 1.0, rel_tol=0.1)


def test_kernel_availability_is_probed_once(monkeypatch):
    import builtins

    from qmamba_eval.models import ops as mamba

    mamba.causal_conv1d_available.cache_clear()
    calls = []
    real_import = builtins.__import__

    def counting_import(name, *a, **k):
        if name == "causal_conv1d":
            calls.append(name)
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", counting_import)
    for _ in range(3):
        mamba.causal_conv1d_available()
    assert len(calls) <= 1
    monkeypatch.undo()
    mamba.causal_conv1d_available.cache_clear()
