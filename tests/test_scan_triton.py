"""The fused Triton selective scan (models/scan_triton.py) against its PyTorch twin, and the Mamba mixer's
channel-last path against the existing one (small shapes).

On a CUDA machine the kernel runs compiled. Elsewhere it runs in Triton's interpreter, on CPU tensors, which must
be switched on before Triton is first imported in a process (Triton builds its own language helpers then): in a
whole test run other tests' imports have imported it already, and it must not reach other tests (on a GPU
machine, mamba-ssm's kernels). So on the CPU ``test_in_the_interpreter`` runs this file again in a child process
with TRITON_INTERPRET=1, and the other tests run there (here they are skipped).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("triton")

from qmamba_eval.models import scan_triton as st  # noqa: E402
from qmamba_eval.models.mamba import MambaConfig, MambaLM  # noqa: E402
from qmamba_eval.models.ops import (BACKENDS, REFERENCE, Kernels, causal_conv1d_available,  # noqa: E402
                                    selective_scan_reference, set_kernels)

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
runs_here = pytest.mark.skipif(DEVICE == "cpu" and not INTERPRETED,
                               reason="on the CPU: runs in the interpreter's child process (test_in_the_interpreter)")


@pytest.mark.skipif(DEVICE == "cuda" or INTERPRETED, reason="the tests run in this process")
def test_in_the_interpreter():
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__], env=env,
                       cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]
    summary = r.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "1 skipped" in summary, r.stdout[-2000:]  # only this test skipped there


def scan_inputs(b, l, d, n, dtype, r=5, seed=0):
    """Inputs laid out as the mixer makes them: u and z halves of one (b, l, 2d) tensor, B and C column slices of
    one (b*l, r + 2n) tensor. Step biases span the softplus branches (tiny e, ordinary, above the threshold 20)."""
    g = torch.Generator().manual_seed(seed)
    xz = torch.randn(b, l, 2 * d, generator=g).to(DEVICE, dtype)
    x_dbl = torch.randn(b * l, r + 2 * n, generator=g).to(DEVICE, dtype)
    dt = (0.5 * torch.randn(b, l, d, generator=g)).to(DEVICE, dtype)
    A = -torch.exp(torch.randn(d, n, generator=g)).to(DEVICE)  # (d, n) negative, as -exp(A_log)
    D = torch.randn(d, generator=g).to(DEVICE)
    dt_bias = torch.tensor([-30.0, -3.0, 0.5, 25.0]).repeat(d // 4 + 1)[:d] + 0.1 * torch.randn(d, generator=g)
    u, z = xz[..., :d], xz[..., d:]  # (b, l, d) views, row stride 2d
    B, C = x_dbl[:, r:r + n].view(b, l, n), x_dbl[:, r + n:].view(b, l, n)
    return u, dt, A, B, C, D, z, dt_bias.to(DEVICE)


def assert_scan_close(got, want, rtol):
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        torch.testing.assert_close(g.float(), w.float(), rtol=rtol, atol=rtol * w.float().abs().max().item())


CASES = [  # b, l, d, n, dtype, block_d (None: launch_config), starts
    (2, 13, 40, 16, torch.float32, 16, [0, 5]),  # d not a multiple of BLOCK_D, l not a power of two
    (1, 1, 24, 4, torch.float32, 8, None),  # one step
    (3, 7, 32, 16, torch.float32, None, [0, 7, 3]),  # a row of padding alone; 4 lanes per channel on the CPU
    (2, 9, 20, 4, torch.float32, 32, [2, 0]),  # n = 4, BLOCK_D wider than d
    (1, 5, 8, 64, torch.float32, None, [1]),  # n = 64: a channel over 16 lanes (a tiny batch)
    (2, 11, 24, 16, torch.bfloat16, 16, [0, 4]),
    (2, 6, 16, 16, torch.float16, 64, None),
]


@runs_here
@pytest.mark.parametrize("b,l,d,n,dtype,block_d,starts", CASES)
def test_kernel_matches_the_pytorch_twin(b, l, d, n, dtype, block_d, starts):
    args = scan_inputs(b, l, d, n, dtype)
    pad = None if starts is None else torch.tensor(starts, device=DEVICE)
    y, last = st.selective_scan_channel_last(*args, pad, block_d=block_d)
    y_ref, last_ref = st.selective_scan_channel_last_reference(*args, pad)
    assert y.is_contiguous() and last.shape == (b, d, n) and last.dtype == torch.float32
    if dtype == torch.float32:
        assert_scan_close((y, last), (y_ref, last_ref), 1e-5)
    else:  # same half-precision inputs, float32 arithmetic: y differs by output rounding, the state barely
        assert_scan_close((y,), (y_ref,), 1e-2)
        assert_scan_close((last,), (last_ref,), 1e-4)
    for i, s in enumerate(starts or []):
        assert (y[i, :s] == 0).all()  # padding: exactly 0


@runs_here
def test_left_padding_equals_the_unpadded_row():
    """A row with s padded positions ends like the same row without them, scanned from a zero state."""
    u, dt, A, B, C, D, z, dt_bias = scan_inputs(2, 10, 16, 16, torch.float32)
    y, last = st.selective_scan_channel_last(u, dt, A, B, C, D, z, dt_bias, torch.tensor([0, 4], device=DEVICE),
                                             block_d=16)
    delta = F.softplus(dt + dt_bias)  # (b, l, d)
    tail = [t[1:, 4:].transpose(1, 2) for t in (u, delta, B, C, z)]  # the row's real part, (b, d, l) layout
    y_tail, last_tail = selective_scan_reference(tail[0], tail[1], A, tail[2], tail[3], D, tail[4])
    torch.testing.assert_close(y[1:, 4:], y_tail.transpose(1, 2), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(last[1:], last_tail, rtol=1e-5, atol=1e-5)


def test_launch_config_splits_channels_only_for_small_batches():
    assert st.launch_config(64, 5120, 16, "cpu") == 128 and st.warps_for(128) == 4  # a lane per channel
    assert st.launch_config(1, 64, 16, "cpu") == 8 and st.warps_for(8) == 1  # 4 lanes per channel, one warp
    assert st.launch_config(64, 64, 64, "cpu") == 8  # n = 64: at most 16 states in a lane
    assert st.launch_config(64, 48, 16, "cpu") == 64  # a narrow d: 2 warps


def test_fused_backend_is_named_and_needs_cuda():
    assert "fused" in BACKENDS
    with pytest.raises(RuntimeError, match="CUDA"):
        Kernels.resolve("fused", "cpu")
    assert Kernels("fused", fused_scan=True).describe()["selective_scan"] == "qmamba-triton-fused"
    assert REFERENCE.describe()["selective_scan"] == "torch-reference"


def tiny_lm(bias: bool) -> MambaLM:
    torch.manual_seed(1)
    m = MambaLM(MambaConfig(d_model=32, n_layer=2, vocab_size=101, ssm_cfg={"bias": bias}))
    with torch.no_grad():  # make the mixers matter (random init is near-identity)
        for layer in m.backbone.layers:
            layer.mixer.out_proj.weight.mul_(20)
            layer.mixer.dt_proj.bias.add_(3.0)
            if bias:
                layer.mixer.in_proj.bias.normal_()
    return m.eval()


@runs_here
@pytest.mark.parametrize("bias", [False, True])
@torch.no_grad()
def test_fused_mixer_path_matches_the_existing_path(bias):
    """Left-padded prefill (logits, caches), the next decode step and the whole-sequence forward at real tokens:
    the channel-last path with the fused scan equals the existing path (reference kernels, PyTorch conv). On a
    CUDA machine with causal-conv1d, the fused path's conv is causal-conv1d on channel-last data."""
    m = tiny_lm(bias).to(DEVICE)
    lengths = [9, 3, 6]
    embeds = torch.randn(3, 9, 32, generator=torch.Generator().manual_seed(2)).to(DEVICE)  # padding: garbage
    mask = torch.zeros(3, 9, dtype=torch.long, device=DEVICE)
    for i, n in enumerate(lengths):
        mask[i, 9 - n:] = 1
    nxt = torch.tensor([5, 6, 7], device=DEVICE)
    fused_kernels = Kernels("fused", fused_scan=True, conv1d=DEVICE == "cuda" and causal_conv1d_available())
    runs = []
    for kernels in (REFERENCE, fused_kernels):
        set_kernels(m, kernels)
        cache = m.allocate_inference_cache(3)
        logits = m.prefill(embeds, mask, cache)
        states = (cache.conv.clone(), cache.ssm.clone())
        runs.append((logits, *states, m.step(nxt, cache), m(inputs_embeds=embeds, attention_mask=mask)))
    ref, fused = runs
    for got, want in zip(fused[:4], ref[:4]):  # prefill logits, conv and SSM caches, step logits
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    real = mask.bool()
    torch.testing.assert_close(fused[4][real], ref[4][real], rtol=1e-4, atol=1e-4)


@runs_here
def test_with_autograd_the_mixer_keeps_the_differentiable_path():
    """The Triton scan has no backward pass: a forward that needs gradients takes the existing path."""
    m = tiny_lm(False).to(DEVICE).train()
    set_kernels(m, Kernels("fused", fused_scan=True))
    m(input_ids=torch.tensor([[1, 2, 3]], device=DEVICE)).float().pow(2).mean().backward()
    assert all(layer.mixer.A_log.grad.abs().sum() > 0 for layer in m.backbone.layers)
