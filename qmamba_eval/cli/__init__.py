"""Command line: ``run_eval.py [COMMAND] ...``; one module per command, each with ``add_arguments(parser)`` and
``run(args) -> int``. Exit codes: 0 done, 1 a regression (scorecard), 2 bad input, 3 an internal error (a bug),
130 interrupted."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import warnings

# command -> (module, one-line help); "run" is the default when the first argument is not a command
COMMANDS = {
    "run": ("run", "evaluate a model on tasks (the default command)"),
    "score": ("score", "re-score a predictions file (ours, lmms-eval's, LLaVA's)"),
    "scorecard": ("scorecard", "compare a run or profile with a baseline; exit 1 on a regression"),
    "list": ("listing", "tasks, prompt variants and model presets"),
    "train": ("train", "training (vision, align, instruct stages) on the synthetic visual-QA data (resumable)"),
    "profile": ("profile", "latency / throughput / memory sweeps over image tokens and batch sizes"),
    "table": ("table", "trained models on a synthetic split, with the scan-order probe"),
    "train-many": ("train_many", "many trainings at once, each followed by its table"),
    "runs": ("runs", "the runs under a folder with their headline metrics (markdown, CSV, JSON)"),
    "study": ("study", "the accuracy-vs-visual-tokens study: plan its trainings, report them beside latencies"),
}
BAD_INPUT = (ValueError, FileNotFoundError, ConnectionError, RuntimeError, KeyError)


def commands_help() -> str:
    width = max(len(c) for c in COMMANDS)
    lines = [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    return ("commands (run_eval.py COMMAND --help; 'run' is the default):\n" + "\n".join(lines)
            + "\n\nInstalled as the 'qmamba-eval' command too. Docs: README.md and docs/.")


def parser_for(command: str) -> argparse.ArgumentParser:
    module_name, help_text = COMMANDS[command]
    module = importlib.import_module(f"{__name__}.{module_name}")
    prog = "run_eval.py" if command == "run" else f"run_eval.py {command}"
    p = argparse.ArgumentParser(prog=prog, description=getattr(module, "DESCRIPTION", help_text),
                                epilog=commands_help() if command == "run" else None,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    module.add_arguments(p)
    p.add_argument("--verbosity", default="WARNING", choices=["ERROR", "WARNING", "INFO", "DEBUG"],
                   help="how much the log says (default WARNING)")
    p.set_defaults(_run=module.run)
    return p


def version() -> str:
    from importlib import metadata

    out = []
    for pkg in ("qmamba-eval", "torch", "transformers", "mamba-ssm", "lmms-eval"):
        try:
            out.append(f"{pkg} {metadata.version(pkg)}")
        except metadata.PackageNotFoundError:
            out.append(f"{pkg} -")
    return ", ".join(out)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    warnings.filterwarnings("once")
    if argv[:1] == ["--version"]:
        print(version())
        return 0
    if not argv:  # what there is to do, instead of "--tasks is required"
        print(f"usage: run_eval.py [COMMAND] ...\n\n{commands_help()}\n\ne.g. run_eval.py --tasks gqa,pope "
              "(the embedded sample, the shipped tiny-qmamba)", file=sys.stderr)
        return 2
    command = argv.pop(0) if argv and argv[0] in COMMANDS else "run"
    try:
        args = parser_for(command).parse_args(argv)  # the flags of scoring options come from the task files
        logging.getLogger("qmamba_eval").setLevel(args.verbosity)
        for handler in logging.getLogger().handlers:  # the console says what --verbosity asks (run.log says more)
            handler.setLevel(args.verbosity)
        return args._run(args)
    except BAD_INPUT as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # an unreadable or unwritable path: the message names it
        where = f"{e.filename}: " if e.filename and str(e.filename) not in str(e) else ""
        print(f"error: {where}{e}", file=sys.stderr)
        return 2
    except Exception as e:  # a bug, not bad input: never exit 1, which means "regression" to a scorecard
        import traceback

        traceback.print_exc()
        print(f"internal error (please report it): {type(e).__name__}: {e}", file=sys.stderr)
        return 3
