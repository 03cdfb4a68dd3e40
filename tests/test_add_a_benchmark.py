"""docs/benchmarks.md's recipe, executed block by block: a benchmark added inside the package and one added from
outside it, both run end to end (the documented recipe and this test cannot drift apart)."""

import importlib
import json
import re
import shlex
import sys
from pathlib import Path

from qmamba_eval.cli import main

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"```(\w+) (file=\S+|run)\n(.*?)```", re.S)


def recipe():
    text = (ROOT / "docs" / "benchmarks.md").read_text()
    return [(kind, target, body) for kind, target, body in BLOCK.findall(text)]


def test_the_documented_recipe_adds_two_benchmarks(tmp_path, monkeypatch, capsys):
    places = {"$MYTASKS": tmp_path / "mytasks", "$MYCODE": tmp_path / "mycode"}
    written, runs = [], []
    steps = recipe()
    assert [t for _, t, _ in steps].count("run") == 2 and len(steps) == 7
    monkeypatch.chdir(ROOT)
    try:
        for kind, target, body in steps:
            if target.startswith("file="):
                path = target[len("file="):]
                for var, where in places.items():
                    path = path.replace(var, str(where))
                path = ROOT / path
                assert not path.exists() or path.is_relative_to(tmp_path), f"the recipe would overwrite {path}"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(body)
                written.append(path)
                continue
            words = shlex.split(body.strip())
            env = {}
            while "=" in words[0]:
                k, v = words.pop(0).split("=", 1)
                for var, where in places.items():
                    v = v.replace(var, str(where))
                env[k] = v
            assert words[:2] == ["python", "run_eval.py"]
            for k, v in env.items():
                monkeypatch.setenv(k, v)
            if "PYTHONPATH" in env:
                monkeypatch.syspath_prepend(env["PYTHONPATH"])
            importlib.invalidate_caches()
            out = tmp_path / f"out{len(runs)}"
            assert main(words[2:] + ["--output-dir", str(out), "--no-progress", "--no-plot"]) == 0
            name = words[words.index("--tasks") + 1]
            res = json.loads(next(out.glob("*/results.json")).read_text())["tasks"][name]
            runs.append((name, res))
    finally:
        for path in written:
            if not path.is_relative_to(tmp_path):
                path.unlink()
        sys.modules.pop("qmamba_eval.hooks.yesno", None)
    assert [n for n, _ in runs] == ["yesno", "yesno_ext"]
    for name, res in runs:
        assert res["n_samples"] == 72 and 0 <= res["metrics"]["accuracy"] <= 100
        assert res["report"]["task_file"]["digest"]  # the task definition is recorded with the result
    # the two hook modules score alike; the inside task's declared tolerance reached results.json
    assert runs[0][1]["metrics"] == runs[1][1]["metrics"]
    assert runs[0][1]["report"]["metrics"] == {"*": {"better": "higher", "tolerance": 1.0}}
    assert not (ROOT / "tasks" / "yesno.toml").exists() and not (ROOT / "qmamba_eval" / "hooks" / "yesno.py").exists()
