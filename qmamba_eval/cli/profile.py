"""``run_eval.py profile``: sweep image-token counts and batch sizes over every system against a reference."""

from __future__ import annotations

from pathlib import Path

from .options import DTYPES, check_output

DESCRIPTION = ("Profile latency, throughput and memory of qmamba / qformer / cobra / vlmamba / llava-style "
               "against a reference pipeline (mamba-ssm's MambaLMHeadModel + transformers encoders) while the "
               "number of image tokens grows. Writes CSV, JSON (with a scorecard 'profile' section), PNG plots "
               "and a markdown report. On the CPU it runs the tiny presets.")


def _ints(text: str) -> list[int]:
    import argparse

    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of whole numbers") from None


def add_arguments(p) -> None:
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    p.add_argument("--dtype", choices=DTYPES, help="default: bfloat16 on CUDA, float32 on the CPU")
    p.add_argument("--systems", help="comma-separated (default: reference,qmamba,qformer,cobra,vlmamba,llava-style)")
    p.add_argument("--tokens", type=_ints, help="image-token counts N, square numbers (default: 64,256,729,2304,"
                                                "9216 on CUDA; 16,64 on the CPU)")
    p.add_argument("--batches", type=_ints, help="batch sizes (default: 1,8 on CUDA; 1,2 on the CPU)")
    p.add_argument("--queries", type=_ints, help="Q-Mamba query counts for the trade-off plot ('' for none)")
    p.add_argument("--tiny", action="store_true", help="tiny presets even on CUDA")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats per figure (median)")
    p.add_argument("--no-long", action="store_true", help="skip the 256-token answers at batch 1")
    p.add_argument("--output-dir", help="where the report goes (default: a new results/runs/profile-<device>-<time> "
                                        "folder; the committed results/profile is never overwritten by default)")


def _check(a) -> None:
    """Every option before any model is built, each error naming the option."""
    for flag, values, low, high in (("--tokens", a.tokens, 1, 65536), ("--batches", a.batches, 1, 4096),
                                    ("--queries", a.queries, 1, 65536)):
        for v in values or []:
            if not low <= v <= high:
                raise ValueError(f"{flag} {v}: must be between {low} and {high}")
    for n in a.tokens or []:
        if int(n ** 0.5) ** 2 != n:
            raise ValueError(f"--tokens {n}: image-token counts are square grids (16, 64, 256, 729, ...)")
    if a.repeats < 1:
        raise ValueError(f"--repeats {a.repeats}: must be >= 1")
    if a.systems is not None:
        from ..profiler.systems import GPU_SYSTEMS
        from ..registry import suggest

        names = [s.strip() for s in a.systems.split(",") if s.strip()]
        known = ["reference", *GPU_SYSTEMS]
        for s in names:
            if s not in known:
                raise ValueError(f"--systems {s!r}: unknown system.{suggest(s, known)}")
        if not names:
            raise ValueError("--systems names no system")
    if a.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ValueError(f"--device {a.device}: CUDA is not available here; use --device cpu")


def run(a) -> int:
    import time

    from ..profiler import profile

    _check(a)
    check_output(a.output_dir, "--output-dir", folder=True)
    if a.output_dir is None:
        a.output_dir = f"results/runs/profile-{a.device.replace(':', '')}-{time.strftime('%Y%m%d-%H%M%S')}"
    cuda = a.device.startswith("cuda")
    dtype = a.dtype or ("bfloat16" if cuda else None)
    systems = [s.strip() for s in a.systems.split(",")] if a.systems else None
    res = profile(a.output_dir, device=a.device, dtype=dtype, systems=systems, n_tokens=a.tokens,
                  batches=a.batches, query_counts=a.queries, tiny=True if a.tiny else None, repeats=a.repeats,
                  long=not a.no_long)
    report = Path(a.output_dir) / "report.md"
    if res["doc"] is not None and report.is_file():  # rank 0 of a torchrun run, or the one process
        print(report.read_text())
        print(f"profile: {Path(a.output_dir) / 'profile.json'}")
    return 0
