"""The kernel registry: every fast operation beside its plain-PyTorch twin, chosen once per model.

``Kernels.resolve(backend, device)`` decides, once, which implementation each operation uses; every module of
a model holding Mamba mixers or norms reads the same ``Kernels`` object (``MLLM.set_kernels``), and
``describe()`` records what ran in every result file.

| operation | fast (CUDA) | reference (any device) |
| --- | --- | --- |
| ``add_rmsnorm`` | mamba-ssm's Triton add + RMSNorm (launch config pinned) | float32 PyTorch |
| ``conv`` / ``conv_update`` | causal-conv1d | ``F.conv1d`` / a rolled window |
| ``scan_prefill`` / ``state_update`` | mamba-ssm's CUDA selective scan / Triton state update | ``selective_scan_reference`` |
| channel-last prefill scan (``fused_scan``) | ours in Triton (``scan_triton.py``) | its PyTorch twin there |
| image resize | bicubic + antialias on the device (``vision.resize_uint8``) | PIL bicubic (``vision.ImagePrep``) |
| greedy decoding | CUDA graphs per batch bucket (``decode.GreedyDecoder``) | the same step, eager |

Backends: ``reference`` (every twin, any device), ``mamba_ssm`` (the fast column; needs CUDA and mamba-ssm),
``fused`` (our Triton scan for prefill, on channel-last activations (``MambaMixer`` takes that path), and for the
rest mamba-ssm / causal-conv1d where they import, else their twins; needs CUDA and Triton), ``auto``
(``mamba_ssm`` on CUDA when it imports, the device resize and graphs on any CUDA device, else ``reference``).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

BACKENDS = ("auto", "reference", "mamba_ssm", "fused")
MASKED_DT = -1.0e4  # softplus(MASKED_DT + bias) underflows to exactly 0 in float32: padding leaves a state as it is


@functools.cache
def mamba_ssm_available() -> bool:
    """Whether mamba-ssm's CUDA scan and Triton state update import (probed once per process)."""
    try:
        import mamba_ssm.ops.selective_scan_interface  # noqa: F401  (needs selective_scan_cuda)
        import mamba_ssm.ops.triton.selective_state_update  # noqa: F401
    except Exception:  # ImportError, or a broken CUDA extension
        return False
    return True


@functools.cache
def triton_available() -> bool:
    """Whether Triton imports (probed once per process): the fused scan (``scan_triton.py``) needs it."""
    try:
        import triton  # noqa: F401
    except Exception:
        return False
    return True


@functools.cache
def causal_conv1d_available() -> bool:
    """Whether the causal-conv1d CUDA package imports (probed once per process)."""
    try:
        import causal_conv1d  # noqa: F401
    except Exception:
        return False
    return True


def selective_scan_reference(u, delta, A, B, C, D, z=None, state=None):
    """Sequential selective scan, float32 state.

    u, delta, z: (b, d, l); A: (d, n); B, C: (b, n, l); D: (d,); state: (b, d, n) or None.
    ``delta`` is the final step size (softplus and bias already applied).
    Returns y (b, d, l) in u's dtype and the last state (b, d, n) float32.
    """
    dtype_in = u.dtype
    u, delta, A, B, C, D = (t.float() for t in (u, delta, A, B, C, D))
    b, d, l = u.shape
    h = u.new_zeros(b, d, A.shape[1]) if state is None else state.float()
    dA = torch.exp(delta.unsqueeze(-1) * A[:, None, :])  # (b, d, l, n)
    dBu = (delta * u).unsqueeze(-1) * B.transpose(1, 2).unsqueeze(1)  # (b, d, l, n)
    ys = []
    # the time axis unbound once: indexing dA[:, :, t] per step would make autograd build a zero-filled
    # (b, d, l, n) gradient per step (training on CPU is several times slower that way)
    for dA_t, dBu_t, C_t in zip(dA.unbind(2), dBu.unbind(2), C.unbind(2)):
        h = dA_t * h + dBu_t  # (b, d, n)
        ys.append(torch.einsum("bdn,bn->bd", h, C_t))
    y = torch.stack(ys, dim=-1) + u * D[:, None]  # (b, d, l)
    if z is not None:
        y = y * F.silu(z.float())
    return y.to(dtype_in), h


# -- mamba-ssm's Triton norm: one launch config -------------------------------------------------------------

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


# -- the registry ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kernels:
    backend: str = "reference"  # the resolved backend name
    fused_norm: bool = False  # mamba-ssm Triton rms_norm_fn (add + norm in one pass)
    scan: bool = False  # mamba-ssm CUDA selective scan + Triton selective_state_update
    conv1d: bool = False  # causal-conv1d
    device_resize: bool = False  # images resized on the device (else PIL, in the data loader)
    graphs: bool = False  # CUDA graphs for the decode step
    fused_scan: bool = False  # prefill through our Triton scan on channel-last activations (scan_triton.py)

    @classmethod
    def resolve(cls, backend: str, device) -> "Kernels":
        """The kernels for ``backend`` on ``device`` (an error says why a backend cannot run there)."""
        if backend not in BACKENDS:
            raise ValueError(f"unknown kernel backend {backend!r}; choose from {', '.join(BACKENDS)}")
        cuda = torch.device(device).type == "cuda"
        if backend == "reference":
            return cls()
        if backend == "mamba_ssm":
            if not cuda:
                raise RuntimeError("backend 'mamba_ssm' needs the model on a CUDA device")
            if not mamba_ssm_available():
                raise RuntimeError("backend 'mamba_ssm' needs mamba-ssm: pip install mamba-ssm causal-conv1d "
                                   "--no-build-isolation")
        if backend == "fused":
            return cls._fused(cuda)
        if not cuda:  # auto on the CPU
            return cls()
        ms = mamba_ssm_available()
        if ms:
            pin_norm_configs()
        log.info("kernels auto -> mamba_ssm=%s on %s", ms, device)
        return cls("mamba_ssm" if ms else "torch-cuda", fused_norm=ms, scan=ms,
                   conv1d=ms and causal_conv1d_available(), device_resize=True, graphs=True)

    @classmethod
    def _fused(cls, cuda: bool) -> "Kernels":
        """Backend 'fused': our Triton prefill scan; mamba-ssm's norm and state update and causal-conv1d where
        they import (else their twins); graphs and the device resize as with 'mamba_ssm'."""
        if not cuda:
            raise RuntimeError("backend 'fused' needs the model on a CUDA device")
        if not triton_available():
            raise RuntimeError("backend 'fused' needs Triton: pip install triton")
        ms = mamba_ssm_available()
        if ms:
            pin_norm_configs()
        log.info("kernels fused -> Triton scan, mamba_ssm=%s", ms)
        return cls("fused", fused_norm=ms, scan=ms, conv1d=causal_conv1d_available(), device_resize=True,
                   graphs=True, fused_scan=True)

    def describe(self) -> dict:
        scan = "qmamba-triton-fused" if self.fused_scan else "mamba_ssm-cuda" if self.scan else "torch-reference"
        return {"backend": self.backend,
                "fused_add_rmsnorm": "mamba_ssm-triton" if self.fused_norm else "torch",
                "selective_scan": scan,
                "state_update": "mamba_ssm-triton" if self.scan else "torch",
                "causal_conv1d": "causal_conv1d-cuda" if self.conv1d else "torch",
                "image_resize": "device bicubic+antialias" if self.device_resize else "PIL bicubic",
                "cuda_graphs": self.graphs,
                "norm_configs": (f"pinned num_warps={_pinned_warps['num_warps']}"
                                 if self.fused_norm and _pinned_warps else "-")}

    # -- norm -------------------------------------------------------------------------------------------

    def add_norm(self, hidden, residual, norm, prenorm: bool = True, residual_in_fp32: bool = True):
        """residual += hidden; returns (norm(residual) in the norm's dtype, residual) -- or the normed tensor
        alone with ``prenorm=False``. ``norm``: an RMSNorm (fused on CUDA) or an ``nn.LayerNorm``."""
        if self.fused_norm and type(norm).__name__ == "RMSNorm":
            from mamba_ssm.ops.triton.layer_norm import rms_norm_fn

            return rms_norm_fn(hidden, norm.weight, None, residual=residual, eps=norm.eps, prenorm=prenorm,
                               residual_in_fp32=residual_in_fp32)
        if residual_in_fp32:
            residual = hidden.float() if residual is None else residual + hidden.float()
        else:
            residual = hidden if residual is None else residual + hidden
        if type(norm).__name__ == "RMSNorm":
            r = residual.float()
            normed = (r * torch.rsqrt(r.pow(2).mean(-1, keepdim=True) + norm.eps) * norm.weight.float())
            normed = normed.to(norm.weight.dtype)
        else:
            normed = norm(residual.to(norm.weight.dtype))
        return (normed, residual) if prenorm else normed

    # -- prefill ------------------------------------------------------------------------------------------

    def conv(self, x, weight, bias):
        """Causal depthwise conv + SiLU: x (b, d, l), weight (d, w) -> (b, d, l).

        x has stride 1 along l, or along d (channel-last: the transpose of a (b, l, d) view; causal-conv1d then
        writes a channel-last result, and takes such an input when d and the other strides are multiples of 8)."""
        if self.conv1d:
            from causal_conv1d import causal_conv1d_fn

            if x.stride(1) == 1 and x.stride(2) > 1 and (x.shape[1] % 8 or x.stride(0) % 8 or x.stride(2) % 8):
                x = x.contiguous()
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

    # -- decode ---------------------------------------------------------------------------------------------

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


REFERENCE = Kernels()


def set_kernels(module: torch.nn.Module, kernels: Kernels) -> Kernels:
    """Give every sub-module that reads kernels (Mamba mixers, LMs, the vision encoder) the same ``kernels``."""
    for m in module.modules():
        if "kernels" in vars(m):  # an attribute of the module itself (not a property like MLLM.kernels)
            m.kernels = kernels
    return kernels
