"""``run_eval.py [run] --tasks ...``: evaluate a model, writing predictions, scores and a summary."""

from __future__ import annotations

import json
import sys

from .options import (add_model_options, check_output, add_scoring_options, nonnegative_int, parse_assignments, parse_key_values,
                      parse_vision_weights, positive_int, scoring_options)

DESCRIPTION = ("Evaluate a Mamba MLLM on VQAv2, GQA, TextVQA, POPE, MME or any task of tasks/ "
               "(run_eval.py list). Writes predictions, scores and a summary into a resumable run folder.")


def add_arguments(p) -> None:
    p.add_argument("--tasks", help="comma-separated task names, or 'all' (run_eval.py list shows them)")
    add_model_options(p)
    p.add_argument("--data", default="sample",
                   help="sample (embedded, offline) | hub | a local path | synthetic:SPLIT[:SCALE[:SEED]]")
    p.add_argument("--limit", type=positive_int, help="first N questions per task")
    p.add_argument("--batch-size", type=positive_int, default=8)
    p.add_argument("--output-dir", default="results/runs")
    p.add_argument("--run-name", help="run folder name (default: derived from the options; re-running resumes)")
    p.add_argument("--prompt", action="append", help="prompt variant: VARIANT or TASK=VARIANT (repeatable)")
    p.add_argument("--split", action="append", help="TASK=SPLIT for --data hub (e.g. vqav2=testdev)")
    add_scoring_options(p)
    p.add_argument("--max-new-tokens", type=positive_int)
    p.add_argument("--answer-mode", choices=["generate", "likelihood"], default="generate",
                   help="likelihood: pick the likelier of the task's answers (POPE, MME: Yes / No)")
    p.add_argument("--workers", type=nonnegative_int,
                   help="image-decoding DataLoader workers (default: 0 on the CPU, up to 8 on CUDA)")
    p.add_argument("--max-image-errors", type=float, default=0.1, metavar="SHARE",
                   help="a task with more unreadable images than this share of its questions fails the run "
                        "(exit 2; missing files are found before the model is built); default 0.1")
    p.add_argument("--token-order", choices=["raster", "transposed", "permuted"], default="raster",
                   help="the scan-order probe: the image's patches reach the projector in this order")
    p.add_argument("--cache-dir", help="Hugging Face datasets cache dir")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--no-plot", action="store_true", help="skip summary.png")
    p.add_argument("--json", action="store_true", help="print results.json instead of the table")


def run(a) -> int:
    from ..report.tables import format_table
    from ..runner import RunConfig, Runner

    if a.tasks is None:
        raise ValueError("--tasks is required: e.g. --tasks gqa,pope, or --tasks all (run_eval.py list shows them)")
    tasks = [t.strip() for t in a.tasks.split(",") if t.strip()]
    if tasks == ["all"]:
        from ..tasks import all_tasks

        tasks = sorted(all_tasks())
    repeated = sorted({t for t in tasks if tasks.count(t) > 1})
    if repeated:
        print(f"note: --tasks names {', '.join(repeated)} more than once; each runs once", file=sys.stderr)
        tasks = list(dict.fromkeys(tasks))
    if not tasks:
        raise ValueError("--tasks names no task; e.g. --tasks gqa,pope (run_eval.py list shows them all)")
    check_output(a.output_dir, "--output-dir", folder=True)
    cfg = RunConfig(tasks=tasks, model=a.model, checkpoint=a.checkpoint, tokenizer=a.tokenizer, data=a.data,
                    limit=a.limit, batch_size=a.batch_size, device=a.device, dtype=a.dtype, backend=a.backend,
                    output_dir=a.output_dir, run_name=a.run_name, seed=a.seed,
                    prompt=parse_assignments(a.prompt, "--prompt"), splits=parse_assignments(a.split, "--split"),
                    options=scoring_options(a), cache_dir=a.cache_dir, max_new_tokens=a.max_new_tokens,
                    answer_mode=a.answer_mode, progress=not a.no_progress, plot=not a.no_plot, workers=a.workers,
                    token_order=a.token_order, vision_weights=parse_vision_weights(a.vision_weights),
                    model_args=parse_key_values(a.model_args, "--model-args"), allow_random=a.allow_random,
                    max_image_errors=a.max_image_errors)
    runner = Runner(cfg)
    try:
        results = runner.run()
    except KeyboardInterrupt:
        print(f"\ninterrupted: finished samples are in {runner.run_dir}; run the same command again to resume",
              file=sys.stderr)
        return 130
    finally:
        if runner.world is not None:
            runner.world.close()
    if results is None:  # a rank other than 0 of a torchrun run: rank 0 reports
        return 0
    print(json.dumps(results, indent=1) if a.json else format_table(results))
    print(f"\nresults: {runner.run_dir / 'results.json'}", file=sys.stderr if a.json else sys.stdout)
    return 0
