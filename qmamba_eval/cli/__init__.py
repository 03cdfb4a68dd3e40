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
    "list": ("list", "tasks, prompt variants and model presets"),
    "train": ("train", "training (vision, align, instruct stages) on the synthetic visual-QA data (resumable)"),
    "profile": ("profile", "latency / throughput / memory sweeps over image tokens and batch sizes"),
    "table": ("table", "trained models on a synthetic split, with the scan-order probe"),
    "train-many": ("train_many", "many trainings at once, each followed by its table"),
}
BAD_INPUT = (ValueError, FileNotFoundError, ConnectionError, RuntimeError, KeyError)


def parser_for(command: str) -> argparse.ArgumentParser:
    module_name, help_text = COMMANDS[command]
    module = importlib.import_module(f"{__name__}.{module_name}")
    prog = "run_eval.py" if command == "run" else f"run_eval.py {command}"
    p = argparse.ArgumentParser(prog=prog, description=getattr(module, "DESCRIPTION", help_text))
    module.add_arguments(p)
    p.set_defaults(_run=module.run)
    return p


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    warnings.filterwarnings("once")
    command = argv.pop(0) if argv and argv[0] in COMMANDS else "run"
    try:
        args = parser_for(command).parse_args(argv)  # the flags of scoring options come from the task files
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
