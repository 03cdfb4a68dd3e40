"""``run_eval.py list``: tasks with their versions and prompt variants, and model presets."""

from __future__ import annotations

DESCRIPTION = "List tasks (version, prompt variants) and model presets."


def add_arguments(p) -> None:
    pass


def run(a) -> int:
    from ..models import PRESETS
    from ..tasks import all_tasks

    for name, t in all_tasks().items():
        print(f"task   {name:<10} v{t.version:<5} prompts: {', '.join(t.prompts)}  -- {t.description}")
    for name, c in PRESETS.items():
        print(f"model  {name:<18} {c.projector} {c.projector_kwargs} llm={c.llm} vision={c.vision}")
    return 0
