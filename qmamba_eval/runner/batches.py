"""Images decoded off the critical path: DataLoader workers turn image values into what the model takes.

``image_batches(values, load, batch_size, workers)`` yields, in order, lists of ``(index, image, error)``:
``image`` what ``load`` returned (or None) and ``error`` the message of a failed ``load`` (or None). With
``workers=0`` everything runs in the calling thread (the CPU default, and what the tests use).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch.utils.data import DataLoader, Dataset


class _Images(Dataset):
    def __init__(self, get_value: Callable[[int], object], indices: Sequence[int], load: Callable,
                 errors: tuple):
        self.get_value, self.indices, self.load, self.errors = get_value, list(indices), load, errors

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, k):
        i = self.indices[k]
        try:
            return i, self.load(self.get_value(i)), None
        except self.errors as e:
            return i, None, str(e)


def _as_list(batch):
    return list(batch)


def image_batches(get_value: Callable[[int], object], indices: Sequence[int], load: Callable, batch_size: int,
                  workers: int = 0, errors: tuple = (ValueError, OSError)):
    """Batches of ``(index, image | None, error | None)`` for ``indices``, in order.

    ``get_value(i)`` gives the raw image value of item ``i`` (runs in the worker, so lazy rows stay lazy);
    ``load(value)`` decodes (and prepares) it; exceptions in ``errors`` become error entries.
    """
    ds = _Images(get_value, indices, load, errors)
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=_as_list,
                        pin_memory=workers > 0 and torch.cuda.is_available(),
                        prefetch_factor=4 if workers > 0 else None, persistent_workers=False)
    yield from loader
