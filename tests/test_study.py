"""The accuracy-vs-visual-tokens study's plumbing: the jobs it plans, and its report from what train-many writes
(made-up accuracies here: the numbers are the point of a GPU session, the files and their shape are tested)."""

import json

from qmamba_eval.cli import main
from qmamba_eval.study import tokens


def test_the_plan_covers_every_entry_and_seed_with_one_recipe(tmp_path, capsys):
    assert main(["study", "plan", "--seeds", "0,1,2", "--jobs", str(tmp_path / "jobs.json"),
                 "--train-args", "--device cuda"]) == 0
    jobs = json.loads((tmp_path / "jobs.json").read_text())
    assert len(jobs) == 3 * len(tokens.ENTRIES) == 3 * 17
    by = {j["name"]: j["args"] for j in jobs}
    assert by["qmamba-q9-seed1"][:4] == ["--model", "tiny-qmamba", "--seed", "1"] and "num_queries=9" in by["qmamba-q9-seed1"]
    assert "pool=3" in by["cobra-t4-seed0"] and "--projector" not in by["cobra-t36-seed0"]
    assert "train=vision+connector" in by["qmamba-conn36-pre-seed2"] and "--stage0" not in by["qmamba-conn36-seed2"]
    assert all(j["args"][-2:] == ["--device", "cuda"] for j in jobs)
    assert main(["study", "plan"]) == 2 and "--jobs" in capsys.readouterr().err


def _table(folder, acc, pope):
    rows = [{"model": "majority", "order": "-", "tasks": {}}]
    for order, shift in (("raster", 0), ("permuted", -5)):
        rows.append({"model": folder.name, "system": "x", "order": order,
                     "tasks": {"gqa": {"accuracy": acc + shift}, "pope": {"accuracy": pope + shift}}})
    (folder / "table").mkdir(parents=True)
    (folder / "table" / "table.json").write_text(json.dumps({"meta": {}, "rows": rows}))


def test_the_report_reads_train_many_output_and_a_profile(tmp_path, capsys):
    runs = tmp_path / "runs"
    for seed, delta in ((0, 0.0), (1, 4.0)):
        _table(runs / f"qmamba-q9-seed{seed}", 70 + delta, 90 + delta)
        _table(runs / f"cobra-t9-seed{seed}", 60 + delta, 80 + delta)
    _table(runs / "not-a-study-job-seed0", 1, 1)  # ignored
    profile = {"environment": {"device_name": "made-up"}, "rows": [
        {"system": "qmamba-q9", "batch": 1, "status": "ok", "visual_tokens_to_llm": 9, "ttft_ms": 10.0},
        {"system": "cobra", "batch": 1, "status": "ok", "visual_tokens_to_llm": 64, "ttft_ms": 20.0},
        {"system": "qmamba", "batch": 1, "status": "ok", "visual_tokens_to_llm": 36, "ttft_ms": 9.0}]}
    (tmp_path / "profile.json").write_text(json.dumps(profile))
    assert main(["study", "report", "--runs", str(runs), "--profile", str(tmp_path / "profile.json"), "--out",
                 str(tmp_path / "out")]) == 0
    doc = json.loads((tmp_path / "out" / "study.json").read_text())
    assert len(doc["rows"]) == 8 and {r["entry"] for r in doc["rows"]} == {"qmamba-q9", "cobra-t9"}
    q = next(s for s in doc["summary"] if s["entry"] == "qmamba-q9" and s["order"] == "raster")
    assert q["seeds"] == 2 and q["mean"] == {"mean": 82.0, "min": 80.0, "max": 84.0} and q["spotlight"]["max"] == 94.0 and q["spotlight_task"] == "pope"
    assert [r["system"] for r in doc["latency"]] == ["qmamba-q9", "cobra"]  # the query sweep, not qmamba's N sweep
    md = (tmp_path / "out" / "study.md").read_text()
    assert "| Q-Mamba | 9 | 2 | 82.0 [80.0..84.0] | 92.0 [90.0..94.0] | 77.0 [75.0..79.0] |" in md
    assert (tmp_path / "out" / "study.png").stat().st_size > 10000
    assert main(["study", "report", "--runs", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")]) == 2
