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


def iqr(values) -> float:
    """The interquartile range (the spread of the middle half): how far a median can be trusted."""
    q = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else [values[0]] * 3
    return q[2] - q[0]


def kernel_ms(fn, device) -> float | None:
    """The GPU kernels' own time in one call of ``fn`` (torch.profiler, summed over kernels), beside its wall
    time: what launch overhead and host gaps add. None on the CPU."""
    if torch.device(device).type != "cuda":
        return None
    from torch.profiler import ProfilerActivity, profile

    fn()
    sync(device)
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        sync(device)
    total = sum(e.device_time for e in prof.events() if e.device_type.name == "CUDA")
    return total / 1e3


def time_stages(stages, device, warmup: int = 1, repeats: int = 3) -> tuple[list[float], float, list[float], float]:
    """Run ``stages`` as a chain (the first takes no argument, each next one the previous output) and time every
    stage and the whole chain in the same runs (CUDA events between stages on CUDA): medians in ms and their IQRs,
    (per stage, total, per-stage IQR, total IQR). One pass gives the stage figures and the end-to-end one."""
    cuda = torch.device(device).type == "cuda"

    def once():
        if cuda:
            marks = [torch.cuda.Event(enable_timing=True) for _ in range(len(stages) + 1)]
            marks[0].record()
        else:
            marks = [time.perf_counter()]
        x = None
        for i, stage in enumerate(stages):
            x = stage() if i == 0 else stage(x)
            if cuda:
                marks[i + 1].record()
            else:
                marks.append(time.perf_counter())
        if cuda:
            marks[-1].synchronize()
            return [marks[i].elapsed_time(marks[i + 1]) for i in range(len(stages))]
        return [(marks[i + 1] - marks[i]) * 1e3 for i in range(len(stages))]

    for _ in range(warmup):
        once()
    runs = [once() for _ in range(repeats)]
    per_stage = [statistics.median(r[i] for r in runs) for i in range(len(stages))]
    spreads = [iqr([r[i] for r in runs]) for i in range(len(stages))]
    totals = [sum(r) for r in runs]
    return per_stage, statistics.median(totals), spreads, iqr(totals)


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
