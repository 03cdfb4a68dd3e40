"""Timing and memory: CUDA events (host clock on the CPU), warm-up, medians; allocator and NVML memory."""

from __future__ import annotations

import statistics
import time

import torch


def sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def time_ms(fn, device, warmup: int = 1, repeats: int = 3) -> float:
    """Median wall time of ``fn()`` in milliseconds, measured with CUDA events on CUDA."""
    for _ in range(warmup):
        fn()
    cuda = torch.device(device).type == "cuda"
    times = []
    for _ in range(repeats):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def reset_peak(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device) -> float | None:
    if torch.device(device).type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2 ** 30


def nvml_used_gib(device) -> float | None:
    """Device memory in use as NVML sees it (all processes; the allocator's cache included), or None."""
    if torch.device(device).type != "cuda":
        return None
    try:
        import pynvml

        pynvml.nvmlInit()
        index = torch.device(device).index or 0
        info = pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(index))
        return info.used / 2 ** 30
    except Exception:  # pynvml absent or no NVML in this container
        return None


def is_oom(error: BaseException) -> bool:
    return isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in str(error).lower()
