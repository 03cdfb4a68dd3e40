"""Mamba-1 language model: one readable implementation, its kernels chosen once (``models/ops.py``).

The module tree and parameter names are exactly those of mamba-ssm's ``MambaLMHeadModel``
(``backbone.embedding``, ``backbone.layers.{i}.mixer.*``, ``backbone.layers.{i}.norm``,
``backbone.norm_f``, ``lm_head``), so a mamba-ssm state dict loads with ``load_state_dict``.

As in mamba-ssm, prefill and step are separate and the model allocates its own inference cache
(``allocate_inference_cache``: every layer's conv and SSM state in two static tensors, the shapes a CUDA graph
needs). Prefill follows mamba-ssm's layout: one in_proj GEMM straight into (b, 2*d_inner, l), one x_proj GEMM
over all b*l rows, dt_proj's GEMM written in the scan's layout, fused add + RMSNorm.

Left padding costs no extra pass over the activations: the embeddings are zeroed at padded positions once, and
the step size of a padded position is pushed to -1e4 inside the dt_proj GEMM itself (an extra input column
holding 1 at padding, an extra weight column holding -1e4). With zero embeddings and a bias-free in_proj (every
mamba-ssm config), padded positions stay exactly zero through every layer (conv input 0, z = 0, so y = 0), the
SSM state passes them unchanged (softplus(-1e4) = 0 in float32), and real tokens see what they would see
without padding.

With ``Kernels.fused_scan`` (backend "fused") prefill keeps every activation channel-last, (b, l, channels) as
the GEMMs write it, for our Triton scan (``scan_triton.py``); left padding then reaches the scan as the number of
padded positions per row, which it skips.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .ops import MASKED_DT, REFERENCE, Kernels
from .scan_triton import selective_scan_channel_last


@dataclass
class MambaConfig:
    """Same fields and defaults as ``mamba_ssm.models.config_mamba.MambaConfig``."""

    d_model: int = 2560
    d_intermediate: int = 0
    n_layer: int = 64
    vocab_size: int = 50277
    ssm_cfg: dict = field(default_factory=dict)
    attn_layer_idx: list = field(default_factory=list)
    attn_cfg: dict = field(default_factory=dict)
    rms_norm: bool = True
    residual_in_fp32: bool = True
    fused_add_norm: bool = True
    pad_vocab_size_multiple: int = 8
    tie_embeddings: bool = True

    def __post_init__(self):
        if self.d_intermediate:
            raise ValueError("MambaConfig.d_intermediate != 0 (gated MLP blocks) is not supported")
        if self.attn_layer_idx:
            raise ValueError("MambaConfig.attn_layer_idx (hybrid attention layers) is not supported")
        layer = self.ssm_cfg.get("layer", "Mamba1")
        if layer != "Mamba1":
            raise ValueError(f"ssm_cfg.layer={layer!r}: only Mamba1 is supported")

    @property
    def padded_vocab_size(self) -> int:
        m = self.pad_vocab_size_multiple
        return self.vocab_size if m <= 1 else int(math.ceil(self.vocab_size / m) * m)

    def ssm_cfg_kwargs(self) -> dict:
        return {k: v for k, v in self.ssm_cfg.items() if k != "layer"}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "MambaConfig":
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown MambaConfig fields {unknown}; known: {sorted(known)}")
        return cls(**d)


class RMSNorm(nn.Module):
    def __init__(self, hidden_size: int, eps: float = 1e-5, device=None, dtype=None):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(hidden_size, device=device, dtype=dtype))

    def forward(self, x):
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return (xf * self.weight.float()).to(self.weight.dtype)


class MambaMixer(nn.Module):
    """One Mamba-1 selective-SSM mixer (parameter names as mamba-ssm's ``Mamba``)."""

    def __init__(self, d_model: int, d_state: int = 16, d_conv: int = 4, expand: int = 2, dt_rank="auto",
                 dt_min: float = 0.001, dt_max: float = 0.1, dt_init_floor: float = 1e-4, conv_bias: bool = True,
                 bias: bool = False, layer_idx: Optional[int] = None, device=None, dtype=None):
        super().__init__()
        fk = {"device": device, "dtype": dtype}
        self.d_model, self.d_state, self.d_conv = d_model, d_state, d_conv
        self.d_inner = int(expand * d_model)
        self.dt_rank = math.ceil(d_model / 16) if dt_rank == "auto" else int(dt_rank)
        self.layer_idx = layer_idx
        self.kernels: Kernels = REFERENCE  # shared by every mixer of a model (ops.set_kernels)

        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=bias, **fk)
        self.conv1d = nn.Conv1d(self.d_inner, self.d_inner, d_conv, groups=self.d_inner,
                                padding=d_conv - 1, bias=conv_bias, **fk)
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False, **fk)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True, **fk)
        self.A_log = nn.Parameter(torch.empty(self.d_inner, d_state, device=device, dtype=torch.float32))
        self.D = nn.Parameter(torch.empty(self.d_inner, device=device, dtype=torch.float32))
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=bias, **fk)
        self._dt_range = (dt_min, dt_max, dt_init_floor)
        self._consts: tuple = ()
        if device is None or torch.device(device).type != "meta":
            self.reset_ssm_parameters()

    @torch.no_grad()
    def reset_ssm_parameters(self):
        """mamba-ssm's init: dt in [dt_min, dt_max] log-uniform, S4D-real A, D = 1."""
        dt_min, dt_max, floor = self._dt_range
        std = self.dt_rank ** -0.5
        nn.init.uniform_(self.dt_proj.weight, -std, std)
        dt = torch.exp(torch.rand(self.d_inner, device=self.A_log.device)
                       * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)).clamp(min=floor)
        self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
        A = torch.arange(1, self.d_state + 1, dtype=torch.float32, device=self.A_log.device)
        self.A_log.copy_(torch.log(A).expand(self.d_inner, -1))
        self.D.fill_(1.0)

    def ssm_constants(self):
        """(A (d_inner, n), D, dt bias) in float32; kept between calls while no gradient is taken and the
        weights are unchanged (their storage and version), so inference and CUDA graphs reuse one copy."""
        key = tuple((p.data_ptr(), p._version) for p in (self.A_log, self.D, self.dt_proj.bias))
        if self._consts and self._consts[0] == key and not torch.is_grad_enabled():
            return self._consts[1]
        consts = (-torch.exp(self.A_log.float()), self.D.float(), self.dt_proj.bias.float())
        self._consts = (key, consts) if not torch.is_grad_enabled() else ()
        return consts

    # -- prefill: a whole sequence -------------------------------------------------------------------------

    def forward(self, hidden, pad=None, conv_state=None, ssm_state=None):
        """hidden (b, l, d_model) -> (b, l, d_model).

        ``pad`` (b*l, 1) in hidden's dtype: 1 at left padding (the caller zeroed those embeddings); None when no
        row is padded. ``conv_state`` (b, d_inner, d_conv) / ``ssm_state`` (b, d_inner, n): filled with the final
        states when given (a prefill before decoding)."""
        if self.kernels.fused_scan and not (torch.is_grad_enabled() and
                                            (hidden.requires_grad or self.in_proj.weight.requires_grad)):
            return self._forward_channel_last(hidden, pad, conv_state, ssm_state)  # (no backward: not for training)
        b, l, d = hidden.shape
        k, r, n, di = self.kernels, self.dt_rank, self.d_state, self.d_inner
        xz = self.in_proj.weight @ hidden.reshape(b * l, d).t()  # (2*d_inner, b*l): the scan's layout directly
        if self.in_proj.bias is not None:
            xz = xz + self.in_proj.bias[:, None]
        x, z = xz.view(2 * di, b, l).transpose(0, 1).chunk(2, dim=1)  # (b, d_inner, l) views, stride 1 along l
        if pad is not None and self.in_proj.bias is not None:  # a bias would make padded positions non-zero
            x = x * (1 - pad).view(b, 1, l)
        if conv_state is not None:
            conv_state.copy_(F.pad(x, (max(self.d_conv - l, 0), 0))[..., -self.d_conv:])
        x = k.conv(x, self.conv1d.weight.squeeze(1), self.conv1d.bias)  # (b, d_inner, l), after SiLU
        x_dbl = F.linear(x.transpose(1, 2).reshape(b * l, di), self.x_proj.weight)  # (b*l, r + 2n): one GEMM
        if pad is None:
            dt = self.dt_proj.weight @ x_dbl[:, :r].t()  # (d_inner, b*l), bias added in the scan
        else:  # padding folded into the same GEMM: an extra input column (1 at padding) times -1e4
            w = self.dt_proj.weight
            w = torch.cat([w, w.new_full((di, 1), MASKED_DT)], 1)
            dt = w @ torch.cat([x_dbl[:, :r], pad.to(x_dbl.dtype)], dim=1).t()
        dt = dt.view(di, b, l).transpose(0, 1)  # (b, d_inner, l) view, stride 1 along l
        Bm = x_dbl[:, r:r + n].view(b, l, n).transpose(1, 2).contiguous()  # (b, n, l)
        Cm = x_dbl[:, r + n:].view(b, l, n).transpose(1, 2).contiguous()
        A, D, dt_bias = self.ssm_constants()
        y, last = k.scan_prefill(x, dt, A, Bm, Cm, D, z, dt_bias)
        if ssm_state is not None:
            ssm_state.copy_(last)
        out = torch.matmul(y.transpose(1, 2), self.out_proj.weight.t())  # (b, l, d_model)
        return out if self.out_proj.bias is None else out + self.out_proj.bias

    def _forward_channel_last(self, hidden, pad, conv_state, ssm_state):
        """``forward`` for the fused scan: activations stay (b, l, channels), as the GEMMs write them; left padding
        becomes ``starts``, the number of padded positions per row (the scan skips them: state unchanged, y = 0)."""
        b, l, _ = hidden.shape
        k, r, n = self.kernels, self.dt_rank, self.d_state
        x, z = F.linear(hidden, self.in_proj.weight, self.in_proj.bias).chunk(2, dim=-1)  # (b, l, d_inner) views
        starts = None
        if pad is not None:
            pad = pad.view(b, l)
            starts = (pad != 0).sum(1, dtype=torch.int32)  # (b,): padding is on the left
            if self.in_proj.bias is not None:  # padded positions must reach the conv as zeros
                x = x * (1 - pad).unsqueeze(-1)
        if conv_state is not None:
            conv_state.copy_(F.pad(x.transpose(1, 2), (max(self.d_conv - l, 0), 0))[..., -self.d_conv:])
        x = k.conv(x.transpose(1, 2), self.conv1d.weight.squeeze(1), self.conv1d.bias)  # (b, d_inner, l)
        x = x.transpose(1, 2)  # (b, l, d_inner): stride 1 along d_inner with causal-conv1d, else copied by the scan
        x_dbl = F.linear(x, self.x_proj.weight)  # (b, l, r + 2n): one GEMM over b*l rows
        dt = F.linear(x_dbl[..., :r], self.dt_proj.weight)  # (b, l, d_inner), bias added in the scan
        A, D, dt_bias = self.ssm_constants()
        y, last = selective_scan_channel_last(x, dt, A, x_dbl[..., r:r + n], x_dbl[..., r + n:], D, z, dt_bias,
                                              starts)  # y (b, l, d_inner)
        if ssm_state is not None:
            ssm_state.copy_(last)
        return F.linear(y, self.out_proj.weight, self.out_proj.bias)

    # -- decode: one token, states updated in place (fixed shapes: CUDA-graph safe) --------------------------

    def step(self, hidden, conv_state, ssm_state):
        """hidden (b, d_model) -> (b, d_model)."""
        r, n = self.dt_rank, self.d_state
        x, z = F.linear(hidden, self.in_proj.weight, self.in_proj.bias).chunk(2, dim=-1)  # (b, d_inner) each
        x = self.kernels.conv_update(x, conv_state, self.conv1d.weight.squeeze(1), self.conv1d.bias)
        x_db = F.linear(x, self.x_proj.weight)  # (b, r + 2n)
        dt = F.linear(x_db[:, :r], self.dt_proj.weight)  # (b, d_inner), bias added in the update
        A, D, dt_bias = self.ssm_constants()
        y = self.kernels.state_update(ssm_state, x, dt, A, x_db[:, r:r + n], x_db[:, r + n:], D, z, dt_bias)
        return F.linear(y, self.out_proj.weight, self.out_proj.bias)


class Block(nn.Module):
    """Pre-norm residual block: residual += hidden; hidden = mixer(norm(residual)) (the add and the norm fused)."""

    def __init__(self, d_model, mixer: MambaMixer, rms_norm=True, residual_in_fp32=True, norm_eps=1e-5,
                 device=None, dtype=None):
        super().__init__()
        self.residual_in_fp32 = residual_in_fp32
        self.mixer = mixer
        norm_cls = RMSNorm if rms_norm else nn.LayerNorm
        self.norm = norm_cls(d_model, eps=norm_eps, device=device, dtype=dtype)


class MixerModel(nn.Module):
    def __init__(self, config: MambaConfig, device=None, dtype=None):
        super().__init__()
        fk = {"device": device, "dtype": dtype}
        c = config
        self.embedding = nn.Embedding(c.padded_vocab_size, c.d_model, **fk)
        self.layers = nn.ModuleList(
            Block(c.d_model, MambaMixer(c.d_model, layer_idx=i, **c.ssm_cfg_kwargs(), **fk),
                  rms_norm=c.rms_norm, residual_in_fp32=c.residual_in_fp32, **fk)
            for i in range(c.n_layer))
        norm_cls = RMSNorm if c.rms_norm else nn.LayerNorm
        self.norm_f = norm_cls(c.d_model, eps=1e-5, **fk)


@dataclass
class MambaCache:
    """Every layer's decoding state in two static tensors (rows beyond a batch are spare)."""

    conv: torch.Tensor  # (n_layer, b, d_inner, d_conv), model dtype
    ssm: torch.Tensor  # (n_layer, b, d_inner, d_state), float32


class MambaLM(nn.Module):
    """``MambaLMHeadModel`` twin: ``model(input_ids=...)`` -> logits (b, l, padded vocab); ``prefill`` / ``step``
    on a cache from ``allocate_inference_cache`` (the LLM interface of ``mllm.py``)."""

    def __init__(self, config: MambaConfig, device=None, dtype=None):
        super().__init__()
        self.config = config
        self.kernels: Kernels = REFERENCE
        self.backbone = MixerModel(config, device=device, dtype=dtype)
        self.lm_head = nn.Linear(config.d_model, config.padded_vocab_size, bias=False, device=device, dtype=dtype)
        if device is None or torch.device(device).type != "meta":
            self._init_weights()
        if config.tie_embeddings:
            self.lm_head.weight = self.backbone.embedding.weight

    @torch.no_grad()
    def _init_weights(self):
        # mamba-ssm's _init_weights (mixer_seq_simple.py): embeddings N(0, 0.02); every other Linear keeps
        # PyTorch's default (kaiming-uniform) init with its bias zeroed; out_proj re-drawn kaiming-uniform(a=sqrt 5)
        # and divided by sqrt(n_layer) (one residual branch per layer). The SSM's dt / A / D come from the mixer.
        nn.init.normal_(self.backbone.embedding.weight, std=0.02)
        for layer in self.backbone.layers:
            m = layer.mixer
            for lin in (m.in_proj, m.x_proj, m.out_proj):
                if lin.bias is not None:
                    nn.init.zeros_(lin.bias)
            nn.init.kaiming_uniform_(m.out_proj.weight, a=math.sqrt(5))
            m.out_proj.weight.div_(math.sqrt(self.config.n_layer))

    @property
    def hidden_size(self) -> int:
        return self.config.d_model

    def embed(self, ids):
        return self.backbone.embedding(ids)

    # -- the inference cache ------------------------------------------------------------------------------------

    def allocate_inference_cache(self, batch: int, max_seqlen: int = 0, dtype=None) -> MambaCache:
        w, m = self.lm_head.weight, self.backbone.layers[0].mixer
        n = len(self.backbone.layers)
        return MambaCache(conv=torch.zeros(n, batch, m.d_inner, m.d_conv, device=w.device, dtype=dtype or w.dtype),
                          ssm=torch.zeros(n, batch, m.d_inner, m.d_state, device=w.device, dtype=torch.float32))

    def cache_key(self, max_seqlen: int):
        return None  # a Mamba state does not grow with the sequence: one cache per batch size

    # -- a whole sequence -------------------------------------------------------------------------------------

    def forward(self, input_ids=None, inputs_embeds=None, attention_mask=None, num_last_tokens: int = 0,
                cache: Optional[MambaCache] = None):
        """Logits (b, l, V) -- or (b, n, V) for the last ``num_last_tokens`` positions.

        ``attention_mask`` (b, l): 1 for tokens, 0 for left padding. ``cache``: rows [:b] filled for decoding."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids or inputs_embeds")
        hidden = self.backbone.embedding(input_ids) if inputs_embeds is None else inputs_embeds
        hidden, residual = self._layers(hidden, attention_mask, cache)
        if num_last_tokens > 0:
            hidden, residual = hidden[:, -num_last_tokens:], residual[:, -num_last_tokens:]
        return self.lm_head(self._final_norm(hidden, residual))

    def prefill(self, inputs_embeds, attention_mask, cache: MambaCache):
        """embeds (b, l, d), mask (b, l) -> last-position logits (b, V); fills rows [:b] of ``cache``."""
        hidden, residual = self._layers(inputs_embeds, attention_mask, cache)
        return self.lm_head(self._final_norm(hidden[:, -1], residual[:, -1]))

    def _layers(self, hidden, attention_mask, cache):
        b, l, _ = hidden.shape
        hidden = hidden.to(self.lm_head.weight.dtype)
        pad = None
        if attention_mask is not None:
            maskf = attention_mask.to(hidden.dtype)
            hidden = hidden * maskf.unsqueeze(-1)
            pad = (1 - maskf).reshape(b * l, 1)  # (b*l, 1): 1 at padding
        residual = None
        for i, layer in enumerate(self.backbone.layers):
            normed, residual = self.kernels.add_norm(hidden, residual, layer.norm,
                                                     residual_in_fp32=layer.residual_in_fp32)
            states = (cache.conv[i, :b], cache.ssm[i, :b]) if cache is not None else (None, None)
            hidden = layer.mixer(normed, pad, *states)
        return hidden, residual

    def _final_norm(self, hidden, residual):
        return self.kernels.add_norm(hidden, residual, self.backbone.norm_f, prenorm=False,
                                     residual_in_fp32=self.config.residual_in_fp32)

    # -- one token --------------------------------------------------------------------------------------------

    @torch.no_grad()
    def step(self, input_ids, cache: MambaCache):
        """ids (b,) -> logits (b, V); every layer's state updated in place (fixed shapes: graph-safe)."""
        hidden = self.backbone.embedding(input_ids)
        residual = None
        for i, layer in enumerate(self.backbone.layers):
            normed, residual = self.kernels.add_norm(hidden, residual, layer.norm,
                                                     residual_in_fp32=layer.residual_in_fp32)
            hidden = layer.mixer.step(normed, cache.conv[i], cache.ssm[i])
        return self.lm_head(self._final_norm(hidden, residual))

    # -- accounting ---------------------------------------------------------------------------------------------

    def kernel_info(self) -> dict:
        return self.kernels.describe()

    def num_params(self, non_embedding: bool = False) -> int:
        n = sum(p.numel() for p in self.parameters())
        return n - self.backbone.embedding.weight.numel() if non_embedding else n

    def flops_per_token(self) -> float:
        """Forward FLOPs per token (2 * MACs of the matmuls + the scan), lm_head included."""
        c, m = self.config, self.backbone.layers[0].mixer if self.backbone.layers else None
        if m is None:
            return 2.0 * c.d_model * c.padded_vocab_size
        di, n, r = m.d_inner, m.d_state, m.dt_rank
        per_layer = 2 * (c.d_model * 2 * di + di * (r + 2 * n) + r * di + di * c.d_model)
        per_layer += 2 * di * m.d_conv + 9 * di * n  # conv + scan (exp, mul, add, C dot)
        return float(c.n_layer * per_layer + 2 * c.d_model * c.padded_vocab_size)


def cast_keeping_ssm_fp32(module: nn.Module, device=None, dtype=None) -> nn.Module:
    """Move to ``device`` and cast parameters to ``dtype``, except each mixer's A_log and D, which stay
    float32 as in mamba-ssm. Buffers keep their dtype."""
    if dtype is not None:  # cast where the weights are, then move: the device never holds both copies
        for m in module.modules():
            for pname, p in m.named_parameters(recurse=False):
                if not (isinstance(m, MambaMixer) and pname in ("A_log", "D")):
                    p.data = p.data.to(dtype)
    return module.to(device)
