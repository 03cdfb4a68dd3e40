"""The tree's shape: layered imports without cycles, no benchmark names in generic code, every package shipped."""

import ast
import importlib.util
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("import_graph", ROOT / "scripts" / "import_graph.py")
import_graph = importlib.util.module_from_spec(spec)
spec.loader.exec_module(import_graph)

# per-benchmark code lives in these modules (and in tasks/*.toml); everything else, hooks/__init__.py and
# hooks/common.py included, is generic and names no benchmark
GENERIC_THERE = ("__init__.py", "common.py")


def test_no_import_cycles_and_no_upward_imports():
    g = import_graph.graph()
    assert "qmamba_eval.runner" in g and g["qmamba_eval.runner"]  # the graph is really drawn
    assert import_graph.problems(g) == []


def test_layering_check_catches_a_cycle_and_an_upward_import():
    g = {"qmamba_eval.results": {"qmamba_eval.runner"}, "qmamba_eval.runner": {"qmamba_eval.results"}}
    bad = import_graph.problems(g)
    assert any(b.startswith("cycle:") for b in bad) and any("upward import" in b for b in bad)


def test_generic_code_names_no_benchmark():
    names = {tomllib.loads(p.read_text())["name"] for p in (ROOT / "tasks").glob("*.toml")}
    assert names >= {"vqav2", "gqa", "textvqa", "pope", "mme"}
    hits = []
    for f in sorted((ROOT / "qmamba_eval").rglob("*.py")):
        rel = f.relative_to(ROOT).as_posix()
        if rel.startswith(("qmamba_eval/hooks/", "qmamba_eval/scoring/")) and f.name not in GENERIC_THERE:
            continue
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names:
                hits.append(f"{rel}:{node.lineno}: {node.value!r}")
    assert hits == []


def test_every_package_is_shipped():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "qmamba_eval").rglob("__init__.py")}
    assert found - listed == set(), "add these packages to [tool.setuptools] packages in pyproject.toml"
    assert "qmamba_eval.task_files" in listed


def test_small_files_and_classes():
    """Files of at most 400 lines, classes of at most 150 (package, scripts, tests)."""
    big = []
    for f in sorted([*(ROOT / "qmamba_eval").rglob("*.py"), *(ROOT / "scripts").rglob("*.py"),
                     *(ROOT / "tests").rglob("*.py")]):
        text = f.read_text()
        rel = f.relative_to(ROOT).as_posix()
        if text.count("\n") > 400:
            big.append(f"{rel}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > 150:
                big.append(f"{rel}: class {node.name} {node.end_lineno - node.lineno + 1} lines")
    assert big == []


def test_no_package_code_outside_the_package():
    """Scripts and result folders hold no importable copies of package logic: nothing outside qmamba_eval/ puts the
    checkout on sys.path to import it, and no script imports another."""
    hits = []
    for f in sorted([*(ROOT / "scripts").rglob("*.py"), *(ROOT / "results").rglob("*.py")]):
        text = f.read_text()
        rel = f.relative_to(ROOT).as_posix()
        if rel.startswith("results/"):
            hits.append(f"{rel}: code under results/ (put it in the package)")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                hits += [f"{rel}: imports the script {n}" for n in names if (ROOT / "scripts" / f"{n}.py").is_file()]
    assert hits == []
