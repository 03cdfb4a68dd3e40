"""The Mamba-1 selective scan for prefill as one Triton kernel, on channel-last activations.

Per row b, channel d, state n (float32 throughout, inputs in float32 / bfloat16 / float16):

    delta_t = softplus(dt_t + dt_bias[d])
    h_t     = exp(delta_t * A[d, n]) * h_{t-1} + delta_t * B_t[n] * u_t            (h_{-1} = 0)
    y_t     = (sum_n C_t[n] * h_t[n] + D[d] * u_t) * silu(z_t)

Why channel-last: u, dt and z come straight out of GEMMs as (b, l, channels), so one time step of a block of
channels is one contiguous (coalesced) load, and B_t / C_t (b, l, n) are read once per step for the whole block
instead of once per channel. Each program owns one row and ``BLOCK_D`` channels, keeps their state in registers
and walks the time axis in order: every input byte is read once and every output byte written once, with no
padding of the length. Left padding (``starts``): positions t < starts[b] leave the state as it is and get
y = 0 exactly; the program does not compute them at all.

Register layout (read off the compiled sm_90 code, Triton 3.9): the state is an (N, BLOCK_D) tile with the
channels on its fast axis and no 2D memory access, so Triton's default layout gives each lane one channel and
all N of its states (BLOCK_D >= 32: the C.h sum and the channel's softplus / SiLU stay in one thread; no shared
memory, no barrier) or, in a one-warp program with BLOCK_D < 32, one channel to 32 / BLOCK_D lanes (more lanes
for a small batch, at the price of repeating the per-channel work and two or so shuffles per step).

``selective_scan_channel_last_reference`` is the same function in plain PyTorch (the repository's
``ops.selective_scan_reference`` on transposed inputs): the kernel is tested against it. Triton is imported on
first use, so this module imports without it; ``TRITON_INTERPRET=1`` set before that first use runs the kernel
on CPU tensors (the tests do).
"""

from __future__ import annotations

import functools
from contextlib import nullcontext as _nullcontext

import torch
import torch.nn.functional as F

from .ops import selective_scan_reference, triton_available  # noqa: F401  (triton_available: part of this API)

tl = None  # triton.language, bound by _kernel() on first use (the kernel's body reads it as a global)
MAX_STATES_PER_LANE = 16  # N = 32 or 64 splits a channel over 2 or 4 lanes (registers)
MIN_STATES_PER_LANE = 4  # a small batch splits a channel over at most N / 4 lanes (repeated per-channel work)
WARPS_PER_SM = 8  # lanes wanted: enough warps per multiprocessor to switch between while one waits


def _scan_fwd(u_ptr, dt_ptr, z_ptr, b_ptr, c_ptr, a_ptr, dskip_ptr, bias_ptr, starts_ptr, y_ptr, last_ptr,
              seqlen, dim,
              u_sb, u_sl, dt_sb, dt_sl, z_sb, z_sl, b_sb, b_sl, b_sn, c_sb, c_sl, c_sn, y_sb, y_sl,
              N: tl.constexpr, BLOCK_D: tl.constexpr):
    """Program (channel block, row): channels [pid0 * BLOCK_D, + BLOCK_D) of row pid1, every time step in order.

    Strides are in elements (``*_sb`` row, ``*_sl`` time, ``*_sn`` state); channels have stride 1. The state is
    an (N, BLOCK_D) tile, channels along its fast axis: Triton then spreads the channels over the lanes and keeps
    the N states of a channel in one thread (BLOCK_D >= 32) or over 32 / BLOCK_D lanes (BLOCK_D < 32, 1 warp), so
    a channel's softplus / SiLU are computed by few threads and the C.h sum needs few shuffles or none."""
    row = tl.program_id(1).to(tl.int64)
    cols = tl.program_id(0) * BLOCK_D + tl.arange(0, BLOCK_D)  # (BLOCK_D,)
    states = tl.arange(0, N)  # (N,)
    cmask = cols < dim
    # A * log2(e): exp(delta * A) = exp2(delta * A2), one multiply less per state and step. Gathered one state
    # at a time, as the last state is stored: a 2D access along n would make Triton lay the tile out along n.
    A2 = tl.zeros([N, BLOCK_D], dtype=tl.float32)
    for n in tl.static_range(N):
        a_n = tl.load(a_ptr + cols * N + n, mask=cmask, other=0.0) * 1.4426950408889634  # (BLOCK_D,)
        A2 = tl.where(states[:, None] == n, a_n[None, :], A2)
    d_skip = tl.load(dskip_ptr + cols, mask=cmask, other=0.0)
    bias = tl.load(bias_ptr + cols, mask=cmask, other=0.0)

    start = tl.minimum(tl.maximum(tl.load(starts_ptr + row), 0), seqlen)
    y_t = y_ptr + row * y_sb  # row base pointers (scalars) of step t; channel offsets (int32) added per access
    for _ in range(0, start):  # left padding: y = 0 exactly; the state does not move
        tl.store(y_t + cols, tl.zeros([BLOCK_D], dtype=y_ptr.dtype.element_ty), mask=cmask)
        y_t += y_sl

    # row and time offsets in int64 (long rows pass 2**31 elements). A row of padding alone (start == seqlen)
    # reads step seqlen - 1 and uses none of it.
    t0 = tl.minimum(start, seqlen - 1).to(tl.int64)
    u_t = u_ptr + row * u_sb + t0 * u_sl
    dt_t = dt_ptr + row * dt_sb + t0 * dt_sl
    z_t = z_ptr + row * z_sb + t0 * z_sl
    b_t = b_ptr + row * b_sb + t0 * b_sl
    c_t = c_ptr + row * c_sb + t0 * c_sl
    u = tl.load(u_t + cols, mask=cmask, other=0.0)
    dt = tl.load(dt_t + cols, mask=cmask, other=0.0)
    z = tl.load(z_t + cols, mask=cmask, other=0.0)
    bn = tl.load(b_t + states * b_sn)
    cn = tl.load(c_t + states * c_sn)
    h = tl.zeros([N, BLOCK_D], dtype=tl.float32)
    for t in range(start, seqlen):
        # step t + 1's inputs are requested before step t's arithmetic, which then hides their latency; the last
        # step re-reads itself (in bounds, unused) rather than masking
        adv = (t + 1 < seqlen).to(tl.int32)
        u_t += adv * u_sl
        dt_t += adv * dt_sl
        z_t += adv * z_sl
        b_t += adv * b_sl
        c_t += adv * c_sl
        u_next = tl.load(u_t + cols, mask=cmask, other=0.0)
        dt_next = tl.load(dt_t + cols, mask=cmask, other=0.0)
        z_next = tl.load(z_t + cols, mask=cmask, other=0.0)
        bn_next = tl.load(b_t + states * b_sn)
        cn_next = tl.load(c_t + states * c_sn)

        uf = u.to(tl.float32)
        x = dt.to(tl.float32) + bias
        # torch's softplus: x above 20, else log1p(exp(x)); log1p(e) = log(1 + e) * e / ((1 + e) - 1) keeps the
        # digits a plain log(1 + e) loses when e is small (the usual case: step sizes of 1e-3), and is e where
        # 1 + e rounds to 1
        e = tl.exp(tl.minimum(x, 20.0))
        e1 = 1.0 + e
        tiny = e1 == 1.0
        delta = tl.where(x > 20.0, x, tl.where(tiny, e, tl.log(e1) * (e / tl.where(tiny, 1.0, e1 - 1.0))))
        h = tl.fma(tl.exp2(delta[None, :] * A2), h, (delta * uf)[None, :] * bn.to(tl.float32)[:, None])  # (N, BLOCK_D)
        y = tl.sum(h * cn.to(tl.float32)[:, None], axis=0) + d_skip * uf  # (BLOCK_D,)
        zf = z.to(tl.float32)
        tl.store(y_t + cols, (y * zf * tl.sigmoid(zf)).to(y_ptr.dtype.element_ty), mask=cmask)
        y_t += y_sl
        u, dt, z, bn, cn = u_next, dt_next, z_next, bn_next, cn_next

    for n in tl.static_range(N):
        h_n = tl.sum(tl.where(states[:, None] == n, h, 0.0), axis=0)  # (BLOCK_D,)
        tl.store(last_ptr + row * dim * N + cols * N + n, h_n, mask=cmask)


@functools.cache
def _kernel():
    """The jitted kernel, built on first use (Triton imported then; TRITON_INTERPRET is read then too)."""
    global tl
    import triton
    import triton.language

    tl = triton.language
    return triton.jit(_scan_fwd)


@functools.cache
def _sm_count(device: torch.device) -> int:
    return torch.cuda.get_device_properties(device).multi_processor_count if device.type == "cuda" else 1


def launch_config(b: int, d: int, n: int, device) -> int:
    """BLOCK_D for a (b, l, d) scan with n states: lanes per channel, as few as fill the GPU.

    One lane per channel (all n states in it: BLOCK_D = 32 x warps, up to 4 warps) when b * d lanes give
    ``WARPS_PER_SM`` warps per multiprocessor (batch 64 x d_inner 5120: 78; batch 8: 9.7); else 2, 4 ... lanes per
    channel in one-warp programs (BLOCK_D = 32 / lanes), at most n / 4 (batch 1: 4 lanes, BLOCK_D 8).
    ``scripts/bench_scan.py`` times the other choices."""
    wanted = WARPS_PER_SM * 32 * _sm_count(torch.device(device))
    lanes = max(1, n // MAX_STATES_PER_LANE)
    while lanes < max(1, n // MIN_STATES_PER_LANE) and b * d * lanes < wanted:
        lanes *= 2
    if lanes > 1:
        return 32 // lanes
    return 32 * warps_for(1 << max(0, d - 1).bit_length())  # up to 4 warps, fewer for a narrow d


def warps_for(block_d: int) -> int:
    """Warps of a program of ``block_d`` channels: one lane per channel up to 4 warps, one warp below 32."""
    return min(4, max(1, block_d // 32))


def _check(u, dt, A, B, C, D, z, dt_bias, starts):
    b, l, d = u.shape
    n = A.shape[-1]
    if n < 1 or n > 64 or n & (n - 1):
        raise ValueError(f"d_state must be a power of two up to 64, got {n}")
    for name, t, shape in (("dt", dt, (b, l, d)), ("z", z, (b, l, d)), ("A", A, (d, n)), ("B", B, (b, l, n)),
                           ("C", C, (b, l, n)), ("D", D, (d,)), ("dt_bias", dt_bias, (d,))):
        if tuple(t.shape) != shape:
            raise ValueError(f"{name} has shape {tuple(t.shape)}, expected {shape} (u is {tuple(u.shape)})")
    if starts is not None and tuple(starts.shape) != (b,):
        raise ValueError(f"starts has shape {tuple(starts.shape)}, expected ({b},)")


def selective_scan_channel_last(u, dt, A, B, C, D, z, dt_bias, starts=None, *, block_d=None):
    """Fused selective scan (Triton) -> (y (b, l, d) in u's dtype, contiguous; last state (b, d, n) float32).

    u, dt, z: (b, l, d), channels at stride 1 (other strides free: views of a (b, l, 2d) GEMM output do; a tensor
    that is not channel-last is copied); B, C: (b, l, n), any strides (views of the x_proj output); A: (d, n);
    D, dt_bias: (d,); ``dt`` is the raw step (softplus(dt + dt_bias) is taken here). ``starts`` (b,) integer: the
    left padding per row (positions t < starts[b] are skipped: state unchanged, y = 0). ``block_d`` (a power of
    two) overrides ``launch_config`` (for tuning)."""
    _check(u, dt, A, B, C, D, z, dt_bias, starts)
    b, l, d = u.shape
    n = A.shape[-1]
    u, dt, z = (t if t.stride(-1) == 1 else t.contiguous() for t in (u, dt, z))
    A, D, dt_bias = (t.float().contiguous() for t in (A, D, dt_bias))
    if starts is None:
        starts = torch.zeros(b, dtype=torch.int32, device=u.device)
    else:
        starts = starts.to(device=u.device, dtype=torch.int32).contiguous()
    y = torch.empty(b, l, d, dtype=u.dtype, device=u.device)
    last = torch.empty(b, d, n, dtype=torch.float32, device=u.device)
    if l == 0:  # nothing to scan (the kernel reads at least one step)
        return y, last.zero_()
    block_d = block_d or launch_config(b, d, n, u.device)
    grid = (-(-d // block_d), b)
    with torch.cuda.device(u.device) if u.is_cuda else _nullcontext():  # the tensors' GPU, whichever is current
        _kernel()[grid](u, dt, z, B, C, A, D, dt_bias, starts, y, last, l, d,
                        u.stride(0), u.stride(1), dt.stride(0), dt.stride(1), z.stride(0), z.stride(1),
                        B.stride(0), B.stride(1), B.stride(2), C.stride(0), C.stride(1), C.stride(2),
                        y.stride(0), y.stride(1), N=n, BLOCK_D=block_d, num_warps=warps_for(block_d),
                        enable_fp_fusion=True)  # multiply-adds fused (Triton 3.10 stops doing it by default)
    return y, last


def selective_scan_channel_last_reference(u, dt, A, B, C, D, z, dt_bias, starts=None):
    """The kernel's plain-PyTorch twin (same arguments and results), through ``ops.selective_scan_reference``.

    Padding: delta = 0 at padded positions (exp(0) = 1 and delta * B * u = 0 leave the state as it is), then
    y is set to 0 there."""
    _check(u, dt, A, B, C, D, z, dt_bias, starts)
    b, l, _ = u.shape
    delta = F.softplus(dt.float() + dt_bias.float())  # (b, l, d)
    pad = None
    if starts is not None:
        pad = torch.arange(l, device=u.device)[None, :] < starts.to(u.device)[:, None]  # (b, l): True at padding
        delta = delta.masked_fill(pad[..., None], 0.0)
    y, last = selective_scan_reference(u.transpose(1, 2), delta.transpose(1, 2), A, B.transpose(1, 2),
                                       C.transpose(1, 2), D, z.transpose(1, 2))  # y (b, d, l)
    y = y.transpose(1, 2)
    if pad is not None:
        y = y.masked_fill(pad[..., None], 0)
    return y.contiguous(), last
