"""Cross-modal projectors: visual features (B, N, vision_dim) -> LLM tokens (B, M, llm_dim).

Classes in reading order:

* ``ScanConnector``      -- VL-Mamba style Mamba scan over the patch grid (bidirectional / cross).
* ``CrossAttention``     -- multi-head attention from queries to visual tokens, optional local mask.
* ``QueryBlock``         -- one Q-Mamba (or Q-Former) block.
* ``QMambaProjector``    -- learned queries, Mamba over the queries, cross-attention to the image.
* ``QFormerProjector``   -- the Transformer twin: self-attention instead of Mamba.
* ``MLPProjector``       -- Cobra's / LLaVA-style ``fused-gelu-mlp`` over the raster-ordered patches (M = N).
* ``FixedScanProjector`` -- the same MLP after a VL-Mamba scan connector (bidirectional / cross).
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .mamba import MambaMixer

SCANS = ("raster", "bidirectional", "cross")


def _grid(n: int) -> int:
    side = math.isqrt(n)
    if side * side != n:
        raise ValueError(f"a 'cross' scan needs a square patch grid, got {n} patches")
    return side


class ScanConnector(nn.Module):
    """x + sum over scan orders of Mamba(LN(x) in that order), mapped back to raster order.

    ``bidirectional``: forward and reversed raster order (VL-Mamba BSM).
    ``cross``: row-major and column-major, each forward and reversed (VL-Mamba CSM).
    """

    def __init__(self, dim: int, scan: str = "bidirectional", expand: int = 2, device=None, dtype=None):
        super().__init__()
        if scan not in ("bidirectional", "cross"):
            raise ValueError(f"unknown scan {scan!r}; ScanConnector takes 'bidirectional' or 'cross'")
        self.scan = scan
        self.norm = nn.LayerNorm(dim, device=device, dtype=dtype)
        n_dirs = 2 if scan == "bidirectional" else 4
        self.mixers = nn.ModuleList(MambaMixer(dim, expand=expand, device=device, dtype=dtype)
                                    for _ in range(n_dirs))

    def _orders(self, n: int, device) -> list[torch.Tensor]:
        raster = torch.arange(n, device=device)
        orders = [raster, raster.flip(0)]
        if self.scan == "cross":
            s = _grid(n)
            column = raster.view(s, s).t().reshape(-1)  # column-major visit order
            orders += [column, column.flip(0)]
        return orders

    def forward(self, x):  # x (B, N, D)
        h = self.norm(x)
        out = x
        for mixer, order in zip(self.mixers, self._orders(x.shape[1], x.device)):
            y = mixer(h[:, order])  # (B, N, D) in scan order
            out = out + y[:, torch.argsort(order)]  # back to raster order
        return out


def local_attention_mask(num_queries: int, num_tokens: int, device=None) -> torch.Tensor:
    """(M, N) bool, True where query i may attend: its contiguous chunk of the N raster tokens.

    Chunks are as equal as possible; the first ``N mod M`` queries get one extra token.
    """
    if num_queries > num_tokens:
        raise ValueError(f"local attention needs num_queries <= visual tokens ({num_queries} > {num_tokens})")
    base, extra = divmod(num_tokens, num_queries)
    sizes = torch.full((num_queries,), base, dtype=torch.long)
    sizes[:extra] += 1
    owner = torch.repeat_interleave(torch.arange(num_queries), sizes)  # (N,) query that owns token j
    return (owner.unsqueeze(0) == torch.arange(num_queries).unsqueeze(1)).to(device)


class CrossAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int = 16, kv_dim: Optional[int] = None, device=None, dtype=None):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        fk = {"device": device, "dtype": dtype}
        kv_dim = kv_dim or dim
        self.num_heads = num_heads
        self.q_proj = nn.Linear(dim, dim, **fk)
        self.k_proj = nn.Linear(kv_dim, dim, **fk)
        self.v_proj = nn.Linear(kv_dim, dim, **fk)
        self.out_proj = nn.Linear(dim, dim, **fk)

    def forward(self, q, kv, mask: Optional[torch.Tensor] = None):
        """q (B, M, D), kv (B, N, Dkv), mask (M, N) bool (True = attend) -> (B, M, D)."""
        b, m, d = q.shape
        h = self.num_heads
        qh = self.q_proj(q).view(b, m, h, d // h).transpose(1, 2)  # (B, h, M, d/h)
        kh = self.k_proj(kv).view(b, kv.shape[1], h, d // h).transpose(1, 2)  # (B, h, N, d/h)
        vh = self.v_proj(kv).view(b, kv.shape[1], h, d // h).transpose(1, 2)
        out = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=mask)  # (B, h, M, d/h)
        return self.out_proj(out.transpose(1, 2).reshape(b, m, d))


class QueryBlock(nn.Module):
    """q = Mix(LN(q)) + LN(q); z = CrossAttn(q, visual) + q; z = MLP(LN(z)) + z.

    ``mixer="mamba"`` is the Q-Mamba block; ``mixer="attention"`` the Q-Former block.
    """

    def __init__(self, dim: int, num_heads: int = 16, mixer: str = "mamba", mlp_ratio: float = 4.0,
                 local_attention: bool = False, device=None, dtype=None):
        super().__init__()
        fk = {"device": device, "dtype": dtype}
        self.local_attention = local_attention
        self.mixer_kind = mixer
        self.norm_q = nn.LayerNorm(dim, **fk)
        if mixer == "mamba":
            self.mixer = MambaMixer(dim, **fk)
        elif mixer == "attention":
            self.mixer = nn.MultiheadAttention(dim, num_heads, batch_first=True, **fk)
        else:
            raise ValueError(f"unknown query mixer {mixer!r}; use 'mamba' or 'attention'")
        self.cross = CrossAttention(dim, num_heads, **fk)
        self.norm_mlp = nn.LayerNorm(dim, **fk)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden, **fk), nn.GELU(), nn.Linear(hidden, dim, **fk))

    def forward(self, q, visual):  # q (B, M, D), visual (B, N, D)
        qn = self.norm_q(q)
        if self.mixer_kind == "mamba":
            q = self.mixer(qn) + qn
        else:
            q = self.mixer(qn, qn, qn, need_weights=False)[0] + qn
        mask = local_attention_mask(q.shape[1], visual.shape[1], q.device) if self.local_attention else None
        z = self.cross(q, visual, mask) + q
        return self.mlp(self.norm_mlp(z)) + z


class _QueryProjector(nn.Module):
    mixer_kind = "mamba"

    def __init__(self, vision_dim: int, llm_dim: int, num_queries: int, num_blocks: int = 1,
                 local_attention: bool = False, num_heads: int = 16, hidden_dim: Optional[int] = None,
                 connector: Optional[str] = None, mlp_ratio: float = 4.0, device=None, dtype=None):
        super().__init__()
        fk = {"device": device, "dtype": dtype}
        hidden_dim = hidden_dim or llm_dim
        self.num_queries = num_queries
        self.connector = ScanConnector(vision_dim, connector, **fk) if connector else None
        self.visual_norm = nn.LayerNorm(vision_dim, **fk)
        self.visual_proj = nn.Linear(vision_dim, hidden_dim, **fk)
        self.queries = nn.Parameter(torch.randn(num_queries, hidden_dim, **fk) * 0.02)
        self.blocks = nn.ModuleList(
            QueryBlock(hidden_dim, num_heads, self.mixer_kind, mlp_ratio, local_attention, **fk)
            for _ in range(num_blocks))
        self.out_proj = nn.Linear(hidden_dim, llm_dim, **fk) if hidden_dim != llm_dim else nn.Identity()

    def forward(self, visual):  # visual (B, N, vision_dim)
        if self.connector is not None:
            visual = self.connector(visual)
        v = self.visual_proj(self.visual_norm(visual))  # (B, N, hidden)
        q = self.queries.unsqueeze(0).expand(visual.shape[0], -1, -1)  # (B, M, hidden)
        for block in self.blocks:
            q = block(q, v)
        return self.out_proj(q)  # (B, M, llm_dim)


class QMambaProjector(_QueryProjector):
    """Q-Mamba: learned queries mixed by Mamba, cross-attending to the (unordered) image tokens."""

    mixer_kind = "mamba"


class QFormerProjector(_QueryProjector):
    """Q-Former twin of Q-Mamba: the same block with self-attention over the queries."""

    mixer_kind = "attention"


def pool_grid(x, pool: int):
    """Average-pool a raster-ordered square patch grid: (B, N, C) -> (B, N / pool^2, C), raster order kept (how
    fixed-scan systems are cut to fewer visual tokens: 6 x 6 patches, pool 2 -> 9 tokens, pool 3 -> 4)."""
    if pool == 1:
        return x
    b, n, c = x.shape
    side = _grid(n)
    if side % pool:
        raise ValueError(f"a {side} x {side} patch grid cannot be pooled {pool} x {pool}")
    grid = x.transpose(1, 2).reshape(b, c, side, side)  # (B, C, S, S)
    return F.avg_pool2d(grid, pool).flatten(2).transpose(1, 2)  # (B, N / pool^2, C)


class MLPProjector(nn.Module):
    """Cobra ``fused-gelu-mlp``: Linear(v, 4v) GELU Linear(4v, d) GELU Linear(d, d); M = N / pool^2, raster order.

    Parameter names ``projector.0/2/4`` match Cobra's released checkpoints. ``pool`` (1: none) averages pool x pool
    patches into one token before the MLP: the LLM sees fewer visual tokens (the token-count study).
    """

    def __init__(self, vision_dim: int, llm_dim: int, mlp_ratio: int = 4, pool: int = 1, device=None, dtype=None):
        super().__init__()
        if isinstance(pool, bool) or not isinstance(pool, int) or pool < 1:
            raise ValueError(f"pool must be a whole number >= 1, got {pool!r}")
        fk = {"device": device, "dtype": dtype}
        self.pool = pool
        self.projector = nn.Sequential(
            nn.Linear(vision_dim, mlp_ratio * vision_dim, **fk), nn.GELU(),
            nn.Linear(mlp_ratio * vision_dim, llm_dim, **fk), nn.GELU(),
            nn.Linear(llm_dim, llm_dim, **fk))

    def forward(self, visual):  # visual (B, N, vision_dim) -> (B, N / pool^2, llm_dim)
        return self.projector(pool_grid(visual, self.pool))


class FixedScanProjector(MLPProjector):
    """VL-Mamba: a fixed-order Mamba scan connector (``bidirectional`` / ``cross``), then the MLP; M = N.

    ``scan="raster"`` (no connector) is accepted for configs written before ``mlp`` had its own name.
    """

    def __init__(self, vision_dim: int, llm_dim: int, scan: str = "bidirectional", mlp_ratio: int = 4, pool: int = 1,
                 device=None, dtype=None):
        if scan not in SCANS:
            raise ValueError(f"unknown scan {scan!r}; choose from {SCANS}")
        super().__init__(vision_dim, llm_dim, mlp_ratio, pool, device=device, dtype=dtype)
        self.scan = scan
        self.connector = ScanConnector(vision_dim, scan, device=device, dtype=dtype) if scan != "raster" else None

    def forward(self, visual):  # visual (B, N, vision_dim) -> (B, N / pool^2, llm_dim)
        if self.connector is not None:  # the scan sees every patch; the pooling cuts what reaches the LLM
            visual = self.connector(visual)
        return self.projector(pool_grid(visual, self.pool))


PROJECTORS = {"qmamba": QMambaProjector, "qformer": QFormerProjector, "mlp": MLPProjector,
              "fixed_scan": FixedScanProjector}


def build_projector(kind: str, vision_dim: int, llm_dim: int, device=None, dtype=None, **kwargs) -> nn.Module:
    from ..registry import lookup

    cls = lookup(PROJECTORS, kind, "projector")
    return cls(vision_dim, llm_dim, device=device, dtype=dtype, **kwargs)

