"""Several processes, one evaluation: ``torchrun --nproc-per-node N run_eval.py ...`` (PyTorch's own stack).

Each rank owns one device (``cuda:LOCAL_RANK`` with NCCL, or the CPU with gloo), takes every N-th *batch* of the
questions still to do -- whole batches, cut exactly as a single process cuts them, so every question sees the
same batch mates and the same arithmetic as in a one-process run -- and appends its answers to its own shard file
(``samples_<task>.shard<rank>.jsonl``, fsync-ed per batch). Rank 0 then merges the shards into
``samples_<task>.jsonl`` in question order, scores and writes the results. Shards are keyed by question, not by
rank: a killed rank or machine loses at most its batch in flight, and a re-run with any world size merges what
is there first and does the rest.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence


@dataclass
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str | None = None  # "nccl" | "gloo" | None (one process, no process group)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def all_ok(self, ok: bool) -> bool:
        """True on every rank when ``ok`` is true on every rank (a failure anywhere stops everyone cleanly)."""
        if not self.distributed:
            return ok
        import torch
        import torch.distributed as dist

        device = f"cuda:{self.local_rank}" if self.backend == "nccl" else "cpu"
        flag = torch.tensor([0 if ok else 1], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.SUM)
        return int(flag.item()) == 0

    def close(self) -> None:
        """Tear the process group down together: every rank waits for the others first (a rank that destroyed its
        group while another still held the connection open died with "terminate called without an active
        exception" after its results were complete, in 2 of 10 two-rank runs). A rank that is gone (killed) makes
        the wait fail after a minute at most instead of hanging."""
        if not self.distributed:
            return
        import datetime

        import torch.distributed as dist

        if not dist.is_initialized():
            return
        try:
            if self.backend == "gloo":
                dist.monitored_barrier(timeout=datetime.timedelta(seconds=60))
            else:
                dist.barrier(device_ids=[self.local_rank])
        except Exception:  # a rank died: nothing left to wait for
            pass
        dist.destroy_process_group()


def init_world(device: str = "cpu") -> World:
    """The world torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK), with its process group started: NCCL when the
    device is CUDA, gloo on the CPU. Without torchrun: a world of one, no process group."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    import datetime

    import torch
    import torch.distributed as dist

    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = str(device).startswith("cuda")
    if cuda:
        if torch.cuda.device_count() <= local_rank:
            raise ValueError(f"rank {rank}: LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} CUDA "
                             "device(s) here; use --nproc-per-node <= the number of GPUs")
        torch.cuda.set_device(local_rank)
    backend = "nccl" if cuda else "gloo"
    if not dist.is_initialized():
        kwargs = {"device_id": torch.device("cuda", local_rank)} if cuda else {}
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=60), **kwargs)
    return World(rank=rank, size=size, local_rank=local_rank, backend=backend)


def rank_device(device: str, world: World) -> str:
    """``cuda`` -> ``cuda:LOCAL_RANK`` for a rank of a distributed run; anything else unchanged."""
    if world.distributed and str(device) == "cuda":
        return f"cuda:{world.local_rank}"
    return device


def shard_batches(todo: Sequence[int], batch_size: int, world: World) -> list[int]:
    """This rank's share of ``todo``: batches ``rank, rank + size, ...`` of the single-process batching."""
    chunks = [list(todo[i:i + batch_size]) for i in range(0, len(todo), batch_size)]
    return [i for chunk in chunks[world.rank::world.size] for i in chunk]


def shard_path(samples_path, rank: int):
    from pathlib import Path

    p = Path(samples_path)
    return p.with_name(f"{p.stem}.shard{rank}{p.suffix}")


def shard_files(samples_path) -> list:
    """Every shard file of a samples file, whatever world size wrote it."""
    from pathlib import Path

    p = Path(samples_path)
    return sorted(p.parent.glob(f"{p.stem}.shard*{p.suffix}"))


def merge_shards(samples_path, key_order: Sequence[str], rows: list | None = None) -> list[dict]:
    """Fold every shard file into ``samples_path`` and rewrite it in ``key_order`` (rows of other keys -- e.g.
    from an earlier, larger --limit -- after them, in file order); the first row of a key wins. Written atomically,
    shards deleted only afterwards, so a crash in between loses nothing (rows are keyed). ``rows``: the file's rows
    when the caller holds them already (saves reading it). Returns the rows, in that order."""
    from pathlib import Path

    from .results import read_samples, write_lines_atomic

    path = Path(samples_path)
    shards = shard_files(path)
    merged, seen = [], set()
    for part in [read_samples(path) if rows is None else rows, *(read_samples(f) for f in shards)]:
        for r in part:
            if r.get("key") not in seen:
                seen.add(r.get("key"))
                merged.append(r)
    rank = {k: i for i, k in enumerate(key_order)}
    ordered = sorted(merged, key=lambda r: (0, rank[r["key"]]) if r.get("key") in rank else (1, 0))
    if shards or [r.get("key") for r in ordered] != [r.get("key") for r in merged]:
        write_lines_atomic(path, ordered)
    for f in shards:
        f.unlink()
    return ordered
