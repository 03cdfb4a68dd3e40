"""Prefill under CUDA graphs: at batch 1 and small batches a prefill is mostly kernel-launch time (measured on an
H100: 17.8 ms of GPU work in 70 ms of wall time at batch 1 x 768 tokens), so it is captured once per (batch
bucket, length bucket, cache) and replayed.

The input is left-padded to a multiple of ``LEN_BUCKET`` tokens -- exact, since padded positions change nothing
for the real tokens (``mamba.py``, ``llama.py``) -- and copied into static buffers before each replay. Only prefills
of at most ``MAX_TOKENS`` (batch bucket x length bucket) are captured; larger ones are compute-bound and run eagerly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

LEN_BUCKET = 64
MAX_TOKENS = 8192


def padded_length(length: int) -> int:
    return LEN_BUCKET * math.ceil(length / LEN_BUCKET)


@dataclass
class _Captured:
    graph: torch.cuda.CUDAGraph
    cache: object  # the cache it writes: held, so its memory (and its id) cannot be reused while the graph lives
    embeds: torch.Tensor  # (b, L, d) static input
    mask: torch.Tensor  # (b, L)
    logits: torch.Tensor  # (b, V) static output


class PrefillGraphs:
    def __init__(self, lm, max_tokens: int = MAX_TOKENS):
        self.lm, self.max_tokens = lm, max_tokens
        self.entries: dict = {}
        self.pool = torch.cuda.graph_pool_handle()  # apart from the decode graphs' pool
        self.captures = 0

    def forget(self, cache) -> None:
        """Drop the graphs that write ``cache`` (the decoder replaced its slot)."""
        for key in [k for k, e in self.entries.items() if e.cache is cache]:
            del self.entries[key]

    def fits(self, batch: int, length: int) -> bool:
        return batch * padded_length(length) <= self.max_tokens

    def __call__(self, embeds, mask, cache, batch: int):
        """embeds (n, L, d), mask (n, L) already left-padded to ``padded_length``; ``batch`` = the cache's rows
        (the batch bucket) -> last logits (n, V). Rows n..batch of the cache receive padding-only rows."""
        n, length, d = embeds.shape
        key = (batch, length, id(cache))  # the entry holds the cache: its id stays its own
        entry = self.entries.get(key)
        if entry is None:
            entry = self.entries[key] = self._capture(batch, length, d, embeds.dtype, mask.dtype, cache)
        entry.embeds[:n].copy_(embeds)
        entry.embeds[n:].zero_()
        entry.mask[:n].copy_(mask)
        entry.mask[n:].zero_()
        entry.graph.replay()
        return entry.logits[:n]

    def _capture(self, batch, length, d, dtype, mask_dtype, cache) -> _Captured:
        device = next(self.lm.parameters()).device
        embeds = torch.zeros(batch, length, d, device=device, dtype=dtype)
        mask = torch.zeros(batch, length, device=device, dtype=mask_dtype)
        mask[:, -1] = 1  # warm-up on a sequence of one token
        with torch.cuda.device(device):  # the model's GPU, whichever is current
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):  # warm-up: Triton compilation, cuBLAS handles, cached constants
                for _ in range(2):
                    self.lm.prefill(embeds, mask, cache)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            # thread-local: the data loader's pin-memory thread may call CUDA while this captures
            with torch.cuda.graph(graph, pool=self.pool, capture_error_mode="thread_local"):
                logits = self.lm.prefill(embeds, mask, cache)
        self.captures += 1
        return _Captured(graph, cache, embeds, mask, logits)


def left_pad(embeds, mask, length: int):
    """(n, l, d), (n, l) -> (n, length, d), (n, length): zeros and mask 0 added on the left."""
    n, l, d = embeds.shape
    if l == length:
        return embeds, mask
    out = embeds.new_zeros(n, length, d)
    out[:, length - l:] = embeds
    m = mask.new_zeros(n, length)
    m[:, length - l:] = mask
    return out, m
