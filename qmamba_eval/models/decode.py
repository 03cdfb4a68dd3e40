"""Greedy decoding on static buffers: argmax, per-sequence EOS and the step counter all stay on the device.

The LLM interface it drives (``mamba.MambaLM``, ``llama.LlamaLM``): ``allocate_inference_cache(batch, max_seqlen)``,
``cache_key(max_seqlen)``, ``prefill(embeds, mask, cache) -> last logits`` and ``step(ids, cache) -> logits``.
One ``Slot`` per batch-size bucket (and per cache key, e.g. a KV-cache length bucket) holds the LM's cache,
the current token, the output tokens and the done flags. On CUDA each slot's step is captured once in a CUDA
graph and replayed per token; there is no host sync inside the loop except an optional early-exit check
every ``check_every`` steps (one sync per check). On the CPU the same step runs eagerly.
"""

from __future__ import annotations

import torch

BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def bucket(n: int) -> int:
    for b in BUCKETS:
        if n <= b:
            return b
    return n


class Slot:
    def __init__(self, lm, batch: int, total_len: int, capacity: int, eos_id: int, device, graphs: bool, pool=None):
        self.lm, self.batch, self.capacity, self.eos = lm, batch, capacity, eos_id
        self.cache = lm.allocate_inference_cache(batch, total_len)
        self.ids = torch.zeros(batch, dtype=torch.long, device=device)  # token fed to the next step
        self.out = torch.full((batch, capacity), eos_id, dtype=torch.long, device=device)
        self.done = torch.ones(batch, dtype=torch.bool, device=device)
        self.t = torch.zeros(1, dtype=torch.long, device=device)  # next column of ``out``
        self.graph = None
        if graphs:
            self._capture(pool)

    def _body(self):
        logits = self.lm.step(self.ids, self.cache)  # (b, V)
        nxt = logits.float().argmax(-1)
        nxt = torch.where(self.done, torch.full_like(nxt, self.eos), nxt)
        self.done.logical_or_(nxt == self.eos)
        self.out.scatter_(1, self.t.view(1, 1).expand(self.batch, 1).clamp(max=self.capacity - 1), nxt[:, None])
        self.ids.copy_(nxt.clamp(min=0))  # a finished row feeds a valid id (eos may be -1: "never stop")
        self.t.add_(1)

    def _capture(self, pool):
        with torch.cuda.device(self.ids.device):  # the model's GPU, whichever is current
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):  # warm-up: Triton compilation, cuBLAS handles
                for _ in range(2):
                    self._body()
            torch.cuda.current_stream().wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            # thread-local: the data loader's pin-memory thread may call CUDA while this captures
            with torch.cuda.graph(self.graph, pool=pool, capture_error_mode="thread_local"):
                self._body()

    def step(self):
        if self.graph is not None:
            self.graph.replay()
        else:
            self._body()


class GreedyDecoder:
    def __init__(self, lm, eos_id: int, device, graphs: bool, check_every: int = 16, prefill_graphs: bool = True):
        self.lm, self.eos, self.device, self.graphs = lm, eos_id, torch.device(device), graphs
        self.check_every = check_every
        self.slots: dict = {}
        self.pool = torch.cuda.graph_pool_handle() if graphs else None
        self.graph_captures = 0
        self.prefill_graphs = None
        if graphs and prefill_graphs:
            from .prefill_graphs import PrefillGraphs

            self.prefill_graphs = PrefillGraphs(lm)

    def _slot(self, n: int, total_len: int, max_new: int) -> Slot:
        b = bucket(n)
        key = (b, self.lm.cache_key(total_len))
        slot = self.slots.get(key)
        if slot is None or slot.capacity < max_new:
            cap = max(max_new, 32, slot.capacity * 2 if slot else 0)
            if slot is not None and self.prefill_graphs is not None:
                self.prefill_graphs.forget(slot.cache)  # its graphs write the cache that is going away
            slot = Slot(self.lm, b, total_len, cap, self.eos, self.device, self.graphs, self.pool)
            self.slots[key] = slot
            self.graph_captures += int(self.graphs)
        return slot

    @torch.no_grad()
    def generate(self, embeds, mask, max_new_tokens: int) -> list[list[int]]:
        """embeds (n, l, d), mask (n, l) -> per row the greedy tokens before EOS (at most max_new_tokens)."""
        n, l = embeds.shape[:2]
        if mask is None:  # no padding
            mask = torch.ones(n, l, dtype=torch.long, device=embeds.device)
        if max_new_tokens <= 0:
            return [[] for _ in range(n)]
        graphed = self.prefill_graphs is not None and self.prefill_graphs.fits(bucket(n), l)
        if graphed:  # left-padded to the length bucket: one captured prefill serves many prompt lengths
            from .prefill_graphs import left_pad, padded_length

            embeds, mask = left_pad(embeds, mask, padded_length(l))
            l = embeds.shape[1]
        slot = self._slot(n, l + max_new_tokens, max_new_tokens)
        if graphed:
            first = self.prefill_graphs(embeds, mask, slot.cache, slot.batch).float().argmax(-1)  # (n,)
        else:
            first = self.lm.prefill(embeds, mask, slot.cache).float().argmax(-1)  # (n,)
        slot.ids.zero_()
        slot.ids[:n] = first
        slot.done.fill_(True)
        slot.done[:n] = first == self.eos
        slot.out.fill_(self.eos)
        slot.out[:n, 0] = first
        slot.t.fill_(1)
        for s in range(1, max_new_tokens):
            if self.check_every and s % self.check_every == 0 and bool(slot.done.all()):
                break
            slot.step()
        rows = slot.out[:n, :max_new_tokens].tolist()  # the one sync of the loop
        return [row[:row.index(self.eos)] if self.eos in row else row for row in rows]
