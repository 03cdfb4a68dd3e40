"""``run_eval.py profile``: sweep image-token counts and batch sizes over every system against a reference."""

from __future__ import annotations

from .options import DTYPES

DESCRIPTION = ("Profile latency, throughput and memory of qmamba / qformer / cobra / vlmamba / llava-style "
               "against a reference pipeline (mamba-ssm's MambaLMHeadModel + transformers encoders) while the "
               "number of image tokens grows. Writes CSV, JSON (with a scorecard 'profile' section), PNG plots "
               "and a markdown report. On the CPU it runs the tiny presets.")


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


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
    p.add_argument("--output-dir", default="results/profile")


def run(a) -> int:
    from ..profiler import profile

    cuda = a.device.startswith("cuda")
    dtype = a.dtype or ("bfloat16" if cuda else None)
    systems = [s.strip() for s in a.systems.split(",")] if a.systems else None
    res = profile(a.output_dir, device=a.device, dtype=dtype, systems=systems, n_tokens=a.tokens,
                  batches=a.batches, query_counts=a.queries, tiny=True if a.tiny else None, repeats=a.repeats,
                  long=not a.no_long)
    print((res["plots"][0].parent / "report.md").read_text() if res["plots"] else "")
    return 0
