"""Command line: ``run_eval.py [run] --tasks ...``, ``run_eval.py score ...``, ``run_eval.py scorecard ...``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings

SUBCOMMANDS = ("run", "score", "scorecard", "list")


def _kv(items) -> dict:
    out = {}
    for item in items or []:
        if "=" in item:
            k, v = item.split("=", 1)
        else:  # a bare variant applies to every task
            k, v = "*", item
        out[k.strip()] = v.strip()
    return out


def run_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="run_eval.py", description="Evaluate a Mamba MLLM on VQAv2, GQA, TextVQA, "
                                "POPE and MME. Subcommands: run (default), score, scorecard, list.")
    p.add_argument("--tasks", required=True, help="comma-separated: vqav2,gqa,textvqa,pope,mme")
    p.add_argument("--model", default="tiny-qmamba", help="preset name or checkpoint folder (default: tiny-qmamba)")
    p.add_argument("--checkpoint", help="weights for a preset: our folder, Cobra .pt, or a mamba-ssm LM state dict")
    p.add_argument("--tokenizer", help="tokenizer.json (GPT-NeoX for Mamba LLMs)")
    p.add_argument("--data", default="sample", help="sample (embedded, offline) | hub | a local path")
    p.add_argument("--limit", type=int, help="first N questions per task")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", help="float32 | bfloat16 | float16")
    p.add_argument("--backend", default="auto", help="Mamba kernels: auto | reference | mamba_ssm")
    p.add_argument("--output-dir", default="results/runs")
    p.add_argument("--run-name", help="run folder name (default: derived from the options; re-running resumes)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--prompt", action="append", help="prompt variant: VARIANT or TASK=VARIANT (repeatable)")
    p.add_argument("--split", action="append", help="TASK=SPLIT for --data hub (e.g. vqav2=testdev)")
    p.add_argument("--pope-parser", choices=["llava", "strict"])
    p.add_argument("--vqa-rule", choices=["lmms", "official"])
    p.add_argument("--max-new-tokens", type=int)
    p.add_argument("--answer-mode", choices=["generate", "likelihood"], default="generate",
                   help="likelihood: pick the likelier of the task's answers (POPE, MME: Yes / No)")
    p.add_argument("--cache-dir", help="Hugging Face datasets cache dir")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--no-plot", action="store_true", help="skip summary.png")
    p.add_argument("--json", action="store_true", help="print results.json instead of the table")
    return p


def cmd_run(argv) -> int:
    from .runner import RunConfig, Runner, format_table

    a = run_parser().parse_args(argv)
    if a.batch_size < 1:
        raise SystemExit("--batch-size must be >= 1")
    cfg = RunConfig(tasks=[t.strip() for t in a.tasks.split(",") if t.strip()], model=a.model,
                    checkpoint=a.checkpoint, tokenizer=a.tokenizer, data=a.data, limit=a.limit,
                    batch_size=a.batch_size, device=a.device, dtype=a.dtype, backend=a.backend,
                    output_dir=a.output_dir, run_name=a.run_name, seed=a.seed,
                    prompt=_kv(a.prompt), splits=_kv(a.split),
                    options={"pope_parser": a.pope_parser, "vqa_rule": a.vqa_rule},
                    cache_dir=a.cache_dir, max_new_tokens=a.max_new_tokens, answer_mode=a.answer_mode,
                    progress=not a.no_progress, plot=not a.no_plot)
    runner = Runner(cfg)
    try:
        results = runner.run()
    except KeyboardInterrupt:
        print(f"\ninterrupted: finished samples are in {runner.run_dir}; run the same command again to resume",
              file=sys.stderr)
        return 130
    print(json.dumps(results, indent=1) if a.json else format_table(results))
    print(f"\nresults: {runner.run_dir / 'results.json'}", file=sys.stderr if a.json else sys.stdout)
    return 0


def cmd_list(argv) -> int:
    from .models import PRESETS
    from .tasks import all_tasks

    for name, t in all_tasks().items():
        print(f"task   {name:<10} v{t.version:<5} prompts: {', '.join(t.prompts)}  -- {t.description}")
    for name, c in PRESETS.items():
        print(f"model  {name:<18} {c.projector} {c.projector_kwargs} llm={c.llm} vision={c.vision}")
    return 0


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    warnings.filterwarnings("once")
    cmd = argv.pop(0) if argv and argv[0] in SUBCOMMANDS else "run"
    try:
        if cmd == "run":
            return cmd_run(argv)
        if cmd == "list":
            return cmd_list(argv)
        if cmd == "score":
            from .rescore import cmd_score

            return cmd_score(argv)
        from .scorecard import cmd_scorecard

        return cmd_scorecard(argv)
    except (ValueError, FileNotFoundError, ConnectionError, RuntimeError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
