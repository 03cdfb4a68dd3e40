"""The engine's fused operations, each with a plain-PyTorch twin used on the CPU (and in CI).

``Kernels(use_cuda_kernels)`` is decided once per engine; ``describe()`` says which ran. CUDA side:
mamba-ssm's Triton fused add + RMSNorm, causal-conv1d's conv and conv-state update, mamba-ssm's selective
scan and Triton ``selective_state_update``. PyTorch side: the same maths as ``models/mamba.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..models.mamba import causal_conv1d_available, mamba_ssm_available, selective_scan_reference


NORM_WARPS = 8  # Triton's layer-norm rule for rows of 4096 (BLOCK_N // 256, at most 8): d_model 2560
_pinned_warps: dict = {}  # "num_warps" once pin_norm_configs pinned something in this process


def pin_norm_configs(num_warps: int = NORM_WARPS, module=None) -> bool:
    """Give mamba-ssm's Triton add + RMSNorm kernels one launch config instead of timing six per process.

    Autotuning picks ``num_warps`` by timing, separately in every process; two picks sum a row in different
    orders, so a near-tied greedy token can differ between a 1-GPU run and the same run under torchrun
    (measured: 239 of 4,096 answers on 2 x H200, results/gpu/multigpu_run1.json). One fixed config makes
    every process run the same kernel. Returns whether any kernel was pinned."""
    try:
        import triton

        if module is None:
            from mamba_ssm.ops.triton import layer_norm as module
    except Exception:  # no Triton / mamba-ssm: nothing to pin
        return False
    pinned = False
    for name in dir(module):
        tuner = getattr(module, name)
        configs = getattr(tuner, "configs", ())
        # only configs that differ in num_warps alone (a block size in kwargs would be needed by the kernel)
        if type(tuner).__name__ == "Autotuner" and len(configs) > 1 and \
                all(not getattr(c, "kwargs", None) for c in configs):
            tuner.configs = [triton.Config({}, num_warps=num_warps)]
            pinned = True
    if pinned:
        _pinned_warps.setdefault("num_warps", num_warps)
    return pinned


@dataclass(frozen=True)
class Kernels:
    fused_norm: bool = False  # mamba-ssm Triton rms_norm_fn (add + norm in one pass)
    scan: bool = False  # mamba-ssm CUDA selective scan + Triton selective_state_update
    conv1d: bool = False  # causal-conv1d

    @classmethod
    def for_device(cls, device: torch.device) -> "Kernels":
        cuda = torch.device(device).type == "cuda"
        ms = cuda and mamba_ssm_available()
        if ms:
            pin_norm_configs()
        return cls(fused_norm=ms, scan=ms, conv1d=ms and causal_conv1d_available())

    def describe(self) -> dict:
        return {"fused_add_rmsnorm": "mamba_ssm-triton" if self.fused_norm else "torch",
                "selective_scan": "mamba_ssm-cuda" if self.scan else "torch-reference",
                "state_update": "mamba_ssm-triton" if self.scan else "torch",
                "causal_conv1d": "causal_conv1d-cuda" if self.conv1d else "torch",
                "norm_configs": (f"pinned num_warps={_pinned_warps['num_warps']}"
                                 if self.fused_norm and _pinned_warps else "-")}

    # -- norm -------------------------------------------------------------------------------

    def add_rmsnorm(self, hidden, residual, weight, eps: float, prenorm: bool = True):
        """residual += hidden (float32 residual); returns (rmsnorm(residual) in weight's dtype, residual)."""
        if self.fused_norm:
            from mamba_ssm.ops.triton.layer_norm import rms_norm_fn

            out = rms_norm_fn(hidden, weight, None, residual=residual, eps=eps, prenorm=prenorm,
                              residual_in_fp32=True)
            return out if prenorm else (out, None)
        residual = hidden.float() if residual is None else residual + hidden.float()
        normed = residual * torch.rsqrt(residual.pow(2).mean(-1, keepdim=True) + eps)
        return (normed * weight.float()).to(weight.dtype), residual

    # -- prefill ------------------------------------------------------------------------------

    def conv(self, x, weight, bias):
        """Causal depthwise conv + SiLU: x (b, d, l) (stride 1 along l), weight (d, w) -> (b, d, l)."""
        if self.conv1d:
            from causal_conv1d import causal_conv1d_fn

            return causal_conv1d_fn(x, weight, bias, activation="silu")
        w = weight.shape[-1]
        return F.silu(F.conv1d(F.pad(x, (w - 1, 0)), weight.unsqueeze(1), bias, groups=x.shape[1]))

    def scan_prefill(self, x, dt, A, B, C, D, z, dt_bias):
        """x, dt, z (b, d, l); B, C (b, n, l) -> (y (b, d, l), last state (b, d, n) float32)."""
        if self.scan:
            from mamba_ssm.ops.selective_scan_interface import selective_scan_fn

            return selective_scan_fn(x, dt, A, B, C, D, z=z, delta_bias=dt_bias, delta_softplus=True,
                                     return_last_state=True)
        delta = F.softplus(dt.float() + dt_bias[:, None])
        return selective_scan_reference(x, delta, A, B, C, D, z)

    # -- decode ------------------------------------------------------------------------------

    def conv_update(self, x, conv_state, weight, bias):
        """x (b, d); conv_state (b, d, w) updated in place -> SiLU(conv) (b, d)."""
        if self.conv1d:
            from causal_conv1d import causal_conv1d_update

            return causal_conv1d_update(x, conv_state, weight, bias, "silu")
        conv_state.copy_(torch.cat([conv_state[:, :, 1:], x.unsqueeze(-1)], dim=-1))
        out = (conv_state * weight).sum(-1)
        return F.silu(out + bias if bias is not None else out)

    def state_update(self, ssm_state, x, dt, A, B, C, D, z, dt_bias):
        """One SSM step; ssm_state (b, d, n) float32 updated in place -> y (b, d) in x's dtype."""
        if self.scan:
            from mamba_ssm.ops.triton.selective_state_update import selective_state_update

            return selective_state_update(ssm_state, x, dt, A, B, C, D, z=z, dt_bias=dt_bias, dt_softplus=True)
        delta = F.softplus(dt.float() + dt_bias)  # (b, d)
        ssm_state.copy_(ssm_state * torch.exp(delta.unsqueeze(-1) * A)
                        + (delta * x.float()).unsqueeze(-1) * B.float().unsqueeze(1))
        y = torch.einsum("bdn,bn->bd", ssm_state, C.float()) + D * x.float()
        return (y * F.silu(z.float())).to(x.dtype)
