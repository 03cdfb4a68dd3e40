#!/usr/bin/env python
"""Draw the package's import graph (every import, including those inside functions) and check its layering.

    python scripts/import_graph.py            # text: module -> imported modules, then the check
    python scripts/import_graph.py --dot      # Graphviz DOT (dot -Tpng) with one rank per layer
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "qmamba_eval"
# A module may import modules of its own layer or below, never above; cycles are refused at any layer.
LAYERS = [
    ("qmamba_eval.registry", "qmamba_eval.results", "qmamba_eval.distributed", "qmamba_eval.scoring",
     "qmamba_eval.readers"),
    ("qmamba_eval.hooks", "qmamba_eval.models"),
    ("qmamba_eval.tasks",),
    ("qmamba_eval.synthetic",),
    ("qmamba_eval.data",),
    ("qmamba_eval.scorecard",),
    ("qmamba_eval.report",),
    ("qmamba_eval.runner", "qmamba_eval.rescore", "qmamba_eval.profiler", "qmamba_eval.train",
     "qmamba_eval.study"),
    ("qmamba_eval.lmms_bridge", "qmamba_eval.cli"),
    ("qmamba_eval",),  # the package's own __init__
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def layer_of(module: str) -> int | None:
    best, best_len = None, -1
    for i, prefixes in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best_len:
                best, best_len = i, len(p)
    return best


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """Package modules imported by ``path`` (absolute or relative, at any depth of the code)."""
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            subs = [f"{prefix}.{a.name}" for a in node.names]
            # "from pkg import submodule" imports the submodule; "from pkg import name" the package itself
            names = subs + ([prefix] if any(s not in modules for s in subs) else [])
        for n in names:
            while n and n not in modules:
                n = n.rpartition(".")[0]
            if n and n != me:
                out.add(n)
    return out


def graph() -> dict[str, set[str]]:
    files = sorted((ROOT / PACKAGE).rglob("*.py"))
    modules = {module_name(f) for f in files}
    return {module_name(f): imports_of(f, modules) for f in files}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    found, state, stack = [], {}, []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for n in sorted(g.get(m, ())):
            if state.get(n) == 1:
                found.append(stack[stack.index(n):] + [n])
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(g):
        if m not in state:
            visit(m)
    return found


def problems(g: dict[str, set[str]]) -> list[str]:
    out = [f"cycle: {' -> '.join(c)}" for c in cycles(g)]
    named = [p for layer in LAYERS for p in layer]
    out += [f"layers split a package: {a} and {b} (a folder sits in one layer)" for a in named for b in named
            if b.startswith(a + ".") and a != "qmamba_eval"]
    for m, deps in sorted(g.items()):
        lm = layer_of(m)
        if lm is None:
            out.append(f"{m}: no layer (add it to LAYERS in scripts/import_graph.py)")
            continue
        for d in sorted(deps):
            ld = layer_of(d)
            if ld is not None and ld > lm and not d.startswith(m + "."):  # a package may import its own parts
                out.append(f"upward import: {m} (layer {lm}) imports {d} (layer {ld})")
    return out


def main() -> int:
    g = graph()
    if "--dot" in sys.argv:
        print("digraph imports {\n  rankdir=BT; node [shape=box, fontsize=10];")
        for i, _ in enumerate(LAYERS):
            members = [m for m in g if layer_of(m) == i]
            print("  { rank=same; " + " ".join(f'"{m}";' for m in members) + " }")
        for m, deps in sorted(g.items()):
            for d in sorted(deps):
                print(f'  "{m}" -> "{d}";')
        print("}")
        return 0
    for m, deps in sorted(g.items()):
        print(f"[{layer_of(m)}] {m} -> {', '.join(sorted(deps)) or '-'}")
    bad = problems(g)
    print("\n" + ("\n".join(bad) if bad else "layering OK: no cycles, no upward imports"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
