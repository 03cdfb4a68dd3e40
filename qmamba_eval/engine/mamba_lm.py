"""Fast prefill and single-token step for ``models.mamba.MambaLM`` (same weights, no copies).

Prefill follows mamba-ssm's layout (one in_proj GEMM straight into (b, 2d, l), one x_proj GEMM over all b*l
rows, dt_proj's GEMM written straight in the scan's layout, fused add + RMSNorm) and writes the conv / SSM states of every layer into
a static ``MambaState`` that the decode step (CUDA-graph friendly: fixed shapes, in-place updates) reads.

Left padding costs no extra pass over the activations: the embeddings are zeroed at padded positions once,
and the step size of padded positions is pushed to -1e4 inside the dt_proj GEMM itself (an extra input
column holding 1 at padding, an extra weight column holding -1e4). With zero embeddings and a bias-free
in_proj, padded positions stay exactly zero through every layer (conv input 0, z = 0, so y = 0), the SSM
state passes them unchanged (softplus(-1e4) = 0), and real tokens see what they would without padding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..models.mamba import MambaLM
from .kernels import Kernels

_MASKED_DT = -1.0e4


@dataclass
class MambaState:
    conv: torch.Tensor  # (n_layer, b, d_inner, d_conv), model dtype
    ssm: torch.Tensor  # (n_layer, b, d_inner, d_state), float32


class FastMambaLM:
    def __init__(self, lm: MambaLM, kernels: Kernels):
        self.lm, self.k = lm, kernels
        self.config = lm.config
        mixers = [layer.mixer for layer in lm.backbone.layers]
        if any(m.in_proj.bias is not None for m in mixers):
            raise ValueError("the engine's padding scheme needs a bias-free in_proj (as every mamba-ssm config)")
        m0 = mixers[0]
        self.d_inner, self.d_state, self.d_conv, self.dt_rank = m0.d_inner, m0.d_state, m0.d_conv, m0.dt_rank
        with torch.no_grad():  # derived per-layer constants, computed once
            self.A = [-torch.exp(m.A_log.float()) for m in mixers]  # (d_inner, n)
            self.D = [m.D.float() for m in mixers]
            self.dt_bias = [m.dt_proj.bias.float() for m in mixers]
            self.conv_w = [m.conv1d.weight.squeeze(1) for m in mixers]  # (d_inner, w) views
            col = torch.full((self.d_inner, 1), _MASKED_DT, device=m0.dt_proj.weight.device,
                             dtype=m0.dt_proj.weight.dtype)
            self.dt_w_masked = [torch.cat([m.dt_proj.weight, col], 1) for m in mixers]  # (d_inner, r + 1)
        self.mixers = mixers
        self.norms = [layer.norm for layer in lm.backbone.layers]

    # -- state --------------------------------------------------------------------------------

    def allocate_state(self, batch: int, total_len: int = 0) -> MambaState:
        w = self.lm.lm_head.weight
        n = len(self.mixers)
        return MambaState(conv=torch.zeros(n, batch, self.d_inner, self.d_conv, device=w.device, dtype=w.dtype),
                          ssm=torch.zeros(n, batch, self.d_inner, self.d_state, device=w.device,
                                          dtype=torch.float32))

    def state_key(self, total_len: int):
        return None  # Mamba's state does not grow with the sequence

    # -- prefill -------------------------------------------------------------------------------

    @torch.no_grad()
    def prefill(self, embeds, mask, state: MambaState):
        """embeds (b, l, d), mask (b, l) 1 = token, 0 = left padding -> last-position logits (b, V);
        fills rows [:b] of ``state``."""
        b, l, d = embeds.shape
        hidden = embeds.to(self.lm.lm_head.weight.dtype)
        pad_col = None
        if mask is not None:
            maskf = mask.to(hidden.dtype)
            hidden = hidden * maskf.unsqueeze(-1)
            pad_col = (1 - maskf).reshape(b * l, 1)  # (b*l, 1): 1 at padding
        residual = None
        for i, (mixer, norm) in enumerate(zip(self.mixers, self.norms)):
            normed, residual = self.k.add_rmsnorm(hidden, residual, norm.weight, norm.eps)
            hidden = self._mixer_prefill(i, mixer, normed, pad_col, state)
        h_last, r_last = hidden[:, -1], residual[:, -1]
        normed, _ = self.k.add_rmsnorm(h_last, r_last, self.lm.backbone.norm_f.weight,
                                       self.lm.backbone.norm_f.eps, prenorm=False)
        return self.lm.lm_head(normed)  # (b, V)

    def _mixer_prefill(self, i, m, normed, pad_col, state):
        b, l, d = normed.shape
        r, n, di = self.dt_rank, self.d_state, self.d_inner
        xz = (m.in_proj.weight @ normed.reshape(b * l, d).t()).view(2 * di, b, l).transpose(0, 1)
        x, z = xz.chunk(2, dim=1)  # (b, d_inner, l) views, stride 1 along l
        state.conv[i, :b].copy_(F.pad(x, (max(self.d_conv - l, 0), 0))[..., -self.d_conv:])
        x = self.k.conv(x, self.conv_w[i], m.conv1d.bias)  # (b, d_inner, l)
        x_dbl = F.linear(x.transpose(1, 2).reshape(b * l, di), m.x_proj.weight)  # (b*l, r + 2n): one GEMM
        if pad_col is None:
            dt = m.dt_proj.weight @ x_dbl[:, :r].t()  # (d_inner, b*l)
        else:  # padding folded into the same GEMM: an extra input column (1 at padding) times -1e4
            dt = self.dt_w_masked[i] @ torch.cat([x_dbl[:, :r], pad_col], dim=1).t()
        dt = dt.view(di, b, l).transpose(0, 1)  # (b, d_inner, l) view, stride 1 along l
        Bm = x_dbl[:, r:r + n].view(b, l, n).transpose(1, 2).contiguous()  # (b, n, l)
        Cm = x_dbl[:, r + n:].view(b, l, n).transpose(1, 2).contiguous()
        y, last = self.k.scan_prefill(x, dt, self.A[i], Bm, Cm, self.D[i], z, self.dt_bias[i])
        state.ssm[i, :b].copy_(last)
        return torch.matmul(y.transpose(1, 2), m.out_proj.weight.t())  # (b, l, d_model)

    # -- decode ----------------------------------------------------------------------------------

    @torch.no_grad()
    def step(self, ids, state: MambaState):
        """ids (b,) -> logits (b, V); every layer's state updated in place (fixed shapes: graph-safe)."""
        hidden = self.lm.backbone.embedding(ids)
        residual = None
        r, n = self.dt_rank, self.d_state
        for i, (m, norm) in enumerate(zip(self.mixers, self.norms)):
            normed, residual = self.k.add_rmsnorm(hidden, residual, norm.weight, norm.eps)
            x, z = F.linear(normed, m.in_proj.weight).chunk(2, dim=-1)  # (b, d_inner) each
            x = self.k.conv_update(x, state.conv[i], self.conv_w[i], m.conv1d.bias)
            x_db = F.linear(x, m.x_proj.weight)  # (b, r + 2n)
            dt = F.linear(x_db[:, :r], m.dt_proj.weight)  # (b, d_inner)
            y = self.k.state_update(state.ssm[i], x, dt, self.A[i], x_db[:, r:r + n], x_db[:, r + n:],
                                    self.D[i], z, self.dt_bias[i])
            hidden = F.linear(y, m.out_proj.weight)
        normed, _ = self.k.add_rmsnorm(hidden, residual, self.lm.backbone.norm_f.weight,
                                       self.lm.backbone.norm_f.eps, prenorm=False)
        return self.lm.lm_head(normed)
