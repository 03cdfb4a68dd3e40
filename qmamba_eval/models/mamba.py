"""Mamba-1 language model in plain PyTorch, with an optional mamba-ssm kernel path.

The module tree and parameter names are exactly those of mamba-ssm's ``MambaLMHeadModel``
(``backbone.embedding``, ``backbone.layers.{i}.mixer.*``, ``backbone.layers.{i}.norm``,
``backbone.norm_f``, ``lm_head``), so a mamba-ssm state dict loads with ``load_state_dict``.

Two kernel backends run on the same weights:

* ``"reference"`` -- pure PyTorch (sequential selective scan), any device, float32 maths for the state.
* ``"mamba_ssm"`` -- mamba-ssm's CUDA selective scan, causal-conv1d (when installed) and the Triton
  ``selective_state_update`` for decoding.  Only on CUDA with mamba-ssm importable.

``set_backend("auto")`` (on ``MambaLM`` or the ``MLLM``) picks ``mamba_ssm`` when it can and says so in
``model.backend``; the choice is never made silently and is recorded in every result file. The choice lives
in one ``KernelPath`` object shared by all mixers of a model; kernel availability is probed once per process.

Padding: a Mamba state would be polluted by pad tokens, so forward() takes an ``attention_mask``
(left padding).  Masked positions feed zeros into the causal conv and get a step size of zero
(softplus(-1e4) == 0 in float32), so the SSM state passes through them unchanged and real tokens
see exactly what they would see without padding.
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import asdict, dataclass, field
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

log = logging.getLogger(__name__)

BACKENDS = ("reference", "mamba_ssm")
_MASKED_DT = -1.0e4  # softplus(_MASKED_DT + bias) underflows to exactly 0 in float32


# ----------------------------------------------------------------------------- config


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


# ----------------------------------------------------------------------------- kernels


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


def resolve_backend(name: str, on_cuda: bool) -> str:
    """'auto' -> 'mamba_ssm' on CUDA with mamba-ssm importable, else 'reference' (logged, never silent)."""
    if name == "auto":
        name = "mamba_ssm" if on_cuda and mamba_ssm_available() else "reference"
        log.info("Mamba backend auto -> %s (cuda=%s)", name, on_cuda)
    if name not in BACKENDS:
        raise ValueError(f"unknown Mamba backend {name!r}; choose from {BACKENDS} or 'auto'")
    if name == "mamba_ssm":
        if not on_cuda:
            raise RuntimeError("backend 'mamba_ssm' needs the model on a CUDA device")
        if not mamba_ssm_available():
            raise RuntimeError("backend 'mamba_ssm' needs mamba-ssm: pip install mamba-ssm causal-conv1d "
                               "--no-build-isolation")
    return name


@dataclass(frozen=True)
class KernelPath:
    """The kernel path of a model's Mamba mixers, decided once by ``set_mamba_backend`` and shared by all."""

    backend: str = "reference"  # one of BACKENDS
    causal_conv1d: bool = False  # causal-conv1d kernels in use (only with backend "mamba_ssm")

    def info(self) -> dict:
        return {"backend": self.backend, "causal_conv1d": self.causal_conv1d,
                "causal_conv1d_installed": causal_conv1d_available()}


REFERENCE = KernelPath()


def set_mamba_backend(module: nn.Module, name: str = "auto") -> str:
    """Set the kernel path of every ``MambaMixer`` inside ``module``; returns the resolved name
    ("n/a" when the module has no Mamba layer, e.g. a Transformer LLM with an MLP projector)."""
    mixers = [m for m in module.modules() if isinstance(m, MambaMixer)]
    p = next(module.parameters(), None)
    resolved = resolve_backend(name, bool(p is not None and p.is_cuda))
    path = KernelPath(resolved, resolved == "mamba_ssm" and causal_conv1d_available())
    for m in mixers:
        m.kernels = path
    return resolved if mixers else "n/a"


def kernel_path_of(module: nn.Module) -> Optional[KernelPath]:
    """The kernel path of the first Mamba mixer in ``module`` (None without one)."""
    return next((m.kernels for m in module.modules() if isinstance(m, MambaMixer)), None)


class MambaKernels:
    """Mixin for modules holding Mamba mixers: one setter, and ``backend`` read from the mixers."""

    def set_backend(self, name: str = "auto") -> str:
        """Kernel path for every Mamba mixer inside: 'reference', 'mamba_ssm' or 'auto'. Returns the one in use."""
        return set_mamba_backend(self, name)

    @property
    def backend(self) -> str:
        path = kernel_path_of(self)
        return path.backend if path is not None else "n/a"


def cast_keeping_ssm_fp32(module: nn.Module, device=None, dtype=None) -> nn.Module:
    """Move to ``device`` and cast parameters to ``dtype``, except each mixer's A_log and D, which stay
    float32 as in mamba-ssm. Buffers keep their dtype."""
    if dtype is not None:  # cast where the weights are, then move: the device never holds both copies
        for m in module.modules():
            for pname, p in m.named_parameters(recurse=False):
                if not (isinstance(m, MambaMixer) and pname in ("A_log", "D")):
                    p.data = p.data.to(dtype)
    return module.to(device)


# ----------------------------------------------------------------------------- layers


class RMSNorm(nn.Module):
    def __init__(self, hidden_size: int, eps: float = 1e-5, device=None, dtype=None):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(hidden_size, device=device, dtype=dtype))

    def forward(self, x):
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return (xf * self.weight.float()).to(self.weight.dtype)


@dataclass
class LayerState:
    conv: torch.Tensor  # (b, d_inner, d_conv) last conv inputs
    ssm: torch.Tensor  # (b, d_inner, d_state) float32


class MambaMixer(nn.Module):
    """One Mamba-1 selective-SSM mixer (parameter names as mamba-ssm's ``Mamba``)."""

    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        dt_rank="auto",
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init_floor: float = 1e-4,
        conv_bias: bool = True,
        bias: bool = False,
        layer_idx: Optional[int] = None,
        device=None,
        dtype=None,
    ):
        super().__init__()
        fk = {"device": device, "dtype": dtype}
        self.d_model, self.d_state, self.d_conv = d_model, d_state, d_conv
        self.d_inner = int(expand * d_model)
        self.dt_rank = math.ceil(d_model / 16) if dt_rank == "auto" else int(dt_rank)
        self.layer_idx = layer_idx
        self.kernels = REFERENCE  # shared KernelPath, set by set_mamba_backend

        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=bias, **fk)
        self.conv1d = nn.Conv1d(self.d_inner, self.d_inner, d_conv, groups=self.d_inner,
                                padding=d_conv - 1, bias=conv_bias, **fk)
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False, **fk)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True, **fk)
        self.A_log = nn.Parameter(torch.empty(self.d_inner, d_state, device=device, dtype=torch.float32))
        self.D = nn.Parameter(torch.empty(self.d_inner, device=device, dtype=torch.float32))
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=bias, **fk)
        self._dt_range = (dt_min, dt_max, dt_init_floor)
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

    # -- prefill ------------------------------------------------------------------------

    def forward(self, hidden, mask=None, state: Optional[LayerState] = None):
        """hidden (b, l, d_model); mask (b, l) bool, False = padding (left).

        When ``state`` is given it is filled with the final conv/SSM state (for decoding).
        """
        b, l, _ = hidden.shape
        xz = self.in_proj(hidden)  # (b, l, 2*d_inner)
        x, z = xz.chunk(2, dim=-1)
        if mask is not None:
            x = x * mask.unsqueeze(-1).to(x.dtype)
        x = x.transpose(1, 2).contiguous()  # (b, d_inner, l)
        z = z.transpose(1, 2).contiguous()
        if state is not None:
            state.conv.copy_(F.pad(x, (max(self.d_conv - l, 0), 0))[..., -self.d_conv:])
        x = self._conv(x)  # (b, d_inner, l), after SiLU
        x_dbl = self.x_proj(x.transpose(1, 2))  # (b, l, dt_rank + 2n)
        dt, Bm, Cm = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = (dt @ self.dt_proj.weight.t()).transpose(1, 2)  # (b, d_inner, l), no bias yet
        if mask is not None:
            dt = dt.masked_fill(~mask.unsqueeze(1), _MASKED_DT)
        Bm = Bm.transpose(1, 2).contiguous()  # (b, n, l)
        Cm = Cm.transpose(1, 2).contiguous()
        A = -torch.exp(self.A_log.float())  # (d_inner, n)
        if self.kernels.backend == "mamba_ssm":
            from mamba_ssm.ops.selective_scan_interface import selective_scan_fn

            out = selective_scan_fn(x, dt.contiguous(), A, Bm, Cm, self.D.float(), z=z,
                                    delta_bias=self.dt_proj.bias.float(), delta_softplus=True,
                                    return_last_state=state is not None)
            y, last = out if state is not None else (out, None)
        else:
            delta = F.softplus(dt.float() + self.dt_proj.bias.float()[:, None])
            y, last = selective_scan_reference(x, delta, A, Bm, Cm, self.D, z)
        if state is not None:
            state.ssm.copy_(last)
        return self.out_proj(y.transpose(1, 2))  # (b, l, d_model)

    def _conv(self, x):
        w = self.conv1d.weight.squeeze(1)  # (d_inner, d_conv)
        if self.kernels.causal_conv1d:
            from causal_conv1d import causal_conv1d_fn

            return causal_conv1d_fn(x, w, self.conv1d.bias, activation="silu")
        return F.silu(self.conv1d(x)[..., : x.shape[-1]])

    # -- decode -------------------------------------------------------------------------

    def allocate_state(self, batch: int, device=None, dtype=None) -> LayerState:
        device = device or self.in_proj.weight.device
        dtype = dtype or self.in_proj.weight.dtype
        return LayerState(conv=torch.zeros(batch, self.d_inner, self.d_conv, device=device, dtype=dtype),
                          ssm=torch.zeros(batch, self.d_inner, self.d_state, device=device, dtype=torch.float32))

    def step(self, hidden, state: LayerState):
        """One token: hidden (b, d_model) -> (b, d_model); ``state`` is updated in place."""
        xz = self.in_proj(hidden)  # (b, 2*d_inner)
        x, z = xz.chunk(2, dim=-1)
        w = self.conv1d.weight.squeeze(1)  # (d_inner, d_conv)
        if self.kernels.causal_conv1d:
            from causal_conv1d import causal_conv1d_update

            x = causal_conv1d_update(x, state.conv, w, self.conv1d.bias, "silu")
        else:
            state.conv.copy_(torch.roll(state.conv, shifts=-1, dims=-1))
            state.conv[:, :, -1] = x
            x = (state.conv * w).sum(-1)
            if self.conv1d.bias is not None:
                x = x + self.conv1d.bias
            x = F.silu(x)
        x_db = self.x_proj(x)  # (b, dt_rank + 2n)
        dt, Bm, Cm = torch.split(x_db, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = dt @ self.dt_proj.weight.t()  # (b, d_inner)
        A = -torch.exp(self.A_log.float())
        if self.kernels.backend == "mamba_ssm":
            from mamba_ssm.ops.triton.selective_state_update import selective_state_update

            y = selective_state_update(state.ssm, x, dt, A, Bm, Cm, self.D.float(), z=z,
                                       dt_bias=self.dt_proj.bias.float(), dt_softplus=True)
        else:
            delta = F.softplus(dt.float() + self.dt_proj.bias.float())  # (b, d_inner)
            dA = torch.exp(delta.unsqueeze(-1) * A)  # (b, d_inner, n)
            dBx = (delta * x.float()).unsqueeze(-1) * Bm.float().unsqueeze(1)
            state.ssm.copy_(state.ssm * dA + dBx)
            y = torch.einsum("bdn,bn->bd", state.ssm, Cm.float()) + self.D.float() * x.float()
            y = (y * F.silu(z.float())).to(x.dtype)
        return self.out_proj(y)


class Block(nn.Module):
    """Pre-norm residual block: residual += hidden; hidden = mixer(norm(residual))."""

    def __init__(self, d_model, mixer: MambaMixer, rms_norm=True, residual_in_fp32=True,
                 norm_eps=1e-5, device=None, dtype=None):
        super().__init__()
        self.residual_in_fp32 = residual_in_fp32
        self.mixer = mixer
        norm_cls = RMSNorm if rms_norm else nn.LayerNorm
        self.norm = norm_cls(d_model, eps=norm_eps, device=device, dtype=dtype)

    def _pre(self, hidden, residual):
        residual = hidden + residual if residual is not None else hidden
        hidden = self.norm(residual.to(self.norm.weight.dtype))
        if self.residual_in_fp32:
            residual = residual.float()
        return hidden, residual

    def forward(self, hidden, residual=None, mask=None, state=None):
        hidden, residual = self._pre(hidden, residual)
        return self.mixer(hidden, mask=mask, state=state), residual

    def step(self, hidden, residual, state):
        hidden, residual = self._pre(hidden, residual)
        return self.mixer.step(hidden, state), residual


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

    def _final(self, hidden, residual):
        residual = hidden + residual if residual is not None else hidden
        return self.norm_f(residual.to(self.norm_f.weight.dtype))


@dataclass
class MambaCache:
    """Decoding state for every layer; ``seqlen`` counts the positions consumed so far."""

    layers: list
    seqlen: int = 0


class MambaLM(MambaKernels, nn.Module):
    """``MambaLMHeadModel`` twin: ``model(input_ids=...)`` -> logits (b, l, padded vocab).

    Also the MLLM's LLM interface (see ``llm.py``): ``embed``, ``prefill``, ``decode``, ``hidden_size``.
    """

    def __init__(self, config: MambaConfig, device=None, dtype=None):
        super().__init__()
        self.config = config
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

    # -- LLM interface (llm.py) ----------------------------------------------------------

    @property
    def hidden_size(self) -> int:
        return self.config.d_model

    def kernel_info(self) -> dict:
        return (kernel_path_of(self) or REFERENCE).info()

    def embed(self, ids):
        return self.backbone.embedding(ids)

    def prefill(self, inputs_embeds, attention_mask):
        """-> (last-position logits (b, V), cache ready for ``decode``)."""
        cache = self.allocate_cache(inputs_embeds.shape[0])
        logits = self(inputs_embeds=inputs_embeds, attention_mask=attention_mask, num_last_tokens=1, cache=cache)
        return logits[:, -1], cache

    def decode(self, ids, cache):
        return self.step(ids, cache)

    # -- prefill ------------------------------------------------------------------------

    def allocate_cache(self, batch: int) -> MambaCache:
        return MambaCache([l.mixer.allocate_state(batch) for l in self.backbone.layers])

    def forward(self, input_ids=None, inputs_embeds=None, attention_mask=None, num_last_tokens: int = 0,
                cache: Optional[MambaCache] = None):
        """Logits (b, l, V) -- or (b, n, V) for the last ``num_last_tokens`` positions.

        ``attention_mask`` (b, l): 1 for tokens, 0 for left padding. ``cache``: filled for decoding.
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids or inputs_embeds")
        hidden = self.backbone.embedding(input_ids) if inputs_embeds is None else inputs_embeds
        hidden = hidden.to(self.lm_head.weight.dtype)
        mask = None if attention_mask is None else attention_mask.bool()
        if mask is not None and bool(mask.all()):
            mask = None
        residual = None
        for i, layer in enumerate(self.backbone.layers):
            hidden, residual = layer(hidden, residual, mask=mask,
                                     state=None if cache is None else cache.layers[i])
        hidden = self.backbone._final(hidden, residual)
        if cache is not None:
            cache.seqlen = hidden.shape[1]
        if num_last_tokens > 0:
            hidden = hidden[:, -num_last_tokens:]
        return self.lm_head(hidden)

    # -- decode -------------------------------------------------------------------------

    @torch.no_grad()
    def step(self, input_ids=None, cache: MambaCache = None, inputs_embeds=None):
        """One position per row: input_ids (b,) or inputs_embeds (b, d) -> logits (b, V)."""
        hidden = self.backbone.embedding(input_ids) if inputs_embeds is None else inputs_embeds
        hidden = hidden.to(self.lm_head.weight.dtype)
        residual = None
        for layer, st in zip(self.backbone.layers, cache.layers):
            hidden, residual = layer.step(hidden, residual, st)
        cache.seqlen += 1
        return self.lm_head(self.backbone._final(hidden, residual))

    # -- accounting ---------------------------------------------------------------------

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
