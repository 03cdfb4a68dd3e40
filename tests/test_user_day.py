"""A real user's day (issue 19): runs that never clobber each other, real checkpoints from the command line, outputs a
script can use, no silent zeros, no long silences, the conveniences lmms-eval users expect."""

import json
import os
import time
from pathlib import Path

import pytest

from qmamba_eval.cli import main

from .helpers import err, rows_for, write_data

ROOT = Path(__file__).resolve().parents[1]


def cli(tmp_path, *args) -> int:
    return main([*args, "--output-dir", str(tmp_path / "out"), "--no-progress", "--no-plot"])


def results(folder: Path) -> dict:
    return json.loads((folder / "results.json").read_text())


# -- 1. a smoke test never touches a finished run ------------------------------------------------------------


def test_a_smoke_test_goes_to_its_own_folder_and_never_mixes(tmp_path, capsys):
    assert cli(tmp_path, "--tasks", "gqa,pope") == 0
    full = [d for d in (tmp_path / "out").iterdir()]
    assert len(full) == 1
    before = (full[0] / "results.json").read_bytes()
    assert cli(tmp_path, "--tasks", "pope, gqa", "--limit", "1") == 0
    folders = sorted(d.name for d in (tmp_path / "out").iterdir())
    assert len(folders) == 2 and any("-n1-" in f for f in folders)  # the limit is in the name
    assert (full[0] / "results.json").read_bytes() == before  # the finished run is untouched
    # an explicit folder holding a run with another limit is refused, naming the limit
    assert cli(tmp_path, "--tasks", "gqa", "--run-name", full[0].name, "--limit", "2") == 2
    e = err(capsys)
    assert "holds a different run: limit (None -> 2)" in e and "{" not in e  # what changed, not a dump


def test_a_trained_models_run_is_named_after_its_training_folder(tmp_path):
    from qmamba_eval.models import build_model
    from qmamba_eval.models.checkpoints import save_model
    from qmamba_eval.runner import RunConfig

    save_model(build_model("tiny-qmamba"), tmp_path / "my-run" / "model")
    assert RunConfig(tasks=["gqa"], model=str(tmp_path / "my-run" / "model")).default_run_name().startswith("my-run-")


def test_the_training_folder_itself_points_at_its_model(tmp_path, capsys):
    (tmp_path / "tr" / "model").mkdir(parents=True)
    (tmp_path / "tr" / "model" / "config.json").write_text("{}")
    assert cli(tmp_path, "--tasks", "gqa", "--model", str(tmp_path / "tr")) == 2
    assert f"its model is {tmp_path / 'tr' / 'model'}" in err(capsys)


# -- 2. real checkpoints from the command line; random weights refused ---------------------------------------


def test_a_real_scale_preset_without_weights_is_refused_before_it_is_built(tmp_path, capsys):
    t = time.perf_counter()
    assert cli(tmp_path, "--tasks", "pope", "--model", "cobra-3.5b") == 2
    assert time.perf_counter() - t < 10  # a 3.5B model was not allocated first
    e = err(capsys)
    assert "no weights" in e and "--allow-random" in e and "--vision-weights" in e


def test_random_parts_are_refused_or_marked_random(tmp_path, capsys):
    args = ("--tasks", "gqa", "--limit", "2", "--model-args", "num_queries=9")  # no shipped weights for 9 queries
    assert cli(tmp_path, *args) == 2
    assert "its shipped weights are for its own projector" in err(capsys)
    assert cli(tmp_path, *args, "--allow-random") == 0
    out = capsys.readouterr().out
    assert out.startswith("WARNING: RANDOM weights for vision, projector, llm")
    run = next((tmp_path / "out").iterdir())
    doc = results(run)
    assert doc["warnings"] and doc["run"]["config"]["model_args"] == {"num_queries": 9}
    assert doc["model"]["random_init"]


def test_model_args_and_vision_weights_are_checked_and_recorded(tmp_path, capsys):
    from qmamba_eval.models import build_model

    assert cli(tmp_path, "--tasks", "gqa", "--model-args", "num_querys=9") == 2
    e = err(capsys)
    assert "no argument 'num_querys'" in e and "Did you mean 'num_queries'" in e
    assert cli(tmp_path, "--tasks", "gqa", "--vision-weights", "tiny-siglp=/x") == 2
    assert "unknown backbone 'tiny-siglp'" in err(capsys)
    assert cli(tmp_path, "--tasks", "gqa", "--vision-weights", f"tiny-siglip={tmp_path}") == 2
    assert "not a Hugging Face model folder" in err(capsys)
    m = build_model("tiny-qmamba")
    folders = {}
    for name, backbone in zip(("tiny-dinov2", "tiny-siglip"), m.vision.backbones):
        backbone.save_pretrained(tmp_path / name)
        folders[name] = str(tmp_path / name)
    assert cli(tmp_path, "--tasks", "gqa", "--limit", "2", "--run-name", "vw",
               *[x for k, v in folders.items() for x in ("--vision-weights", f"{k}={v}")]) == 0
    run_json = json.loads((tmp_path / "out" / "vw" / "run.json").read_text())
    assert run_json["config"]["vision_weights"] == folders


# -- 3. lmms-eval multiple-choice samples ---------------------------------------------------------------------


def _mc_lines(tmp_path, losses, targets):
    path = tmp_path / "samples_mc.jsonl"
    path.write_text("".join(json.dumps({"doc_id": i, "target": t, "filtered_resps": [[a, False], [b, False]],
                                        "acc": 1.0}) + "\n" for i, ((a, b), t) in enumerate(zip(losses, targets))))
    return path


def test_lmms_multiple_choice_samples_are_scored_as_the_likeliest_choice(tmp_path, capsys):
    from qmamba_eval.rescore import rescore

    losses = [(0.1, 2.0), (3.0, 0.2), (0.5, 0.4), (0.1, 0.9)]  # Yes, No, No, Yes
    path = _mc_lines(tmp_path, losses, [0, 1, 0, 1])  # right, right, wrong, wrong
    res = rescore("pope", path)
    assert res["metrics"]["pooled/accuracy"] == 50.0 and res["metrics"]["pooled/yes_ratio"] == 50.0
    assert any("likeliest choice" in n for n in res["notes"])
    assert main(["score", "--task", "pope", "--predictions", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["metrics"]["pooled/accuracy"] == 50.0
    with pytest.raises(ValueError, match="answer options"):
        rescore("gqa", path)  # no closed answer set to name the choices by


@pytest.mark.parametrize("resp, what", [([None], "NoneType"), ([42], "int 42"), ([[0.5, True]], "log-likelihood pair")])
def test_lmms_answers_that_are_not_text_are_refused(tmp_path, capsys, resp, what):
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps({"doc_id": 0, "target": "yes", "filtered_resps": resp}) + "\n")
    assert main(["score", "--task", "pope", "--predictions", str(path)]) == 2
    e = err(capsys)
    assert f"{path}: line 1: filtered_resps is" in e and what in e


# -- 4, 10. profile: its own folder, options checked first, a CPU report that says CPU -------------------------


def test_profile_writes_a_run_folder_of_its_own_and_checks_options(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for bad, expected in ((["--tokens", "0"], "--tokens 0"), (["--tokens", "20"], "square grids"),
                          (["--batches", "0"], "--batches 0"), (["--repeats", "0"], "--repeats 0"),
                          (["--systems", "qmamb"], "Did you mean 'qmamba'")):
        assert main(["profile", *bad]) == 2
        assert expected in err(capsys)
    assert main(["profile", "--systems", "qmamba", "--tokens", "16", "--batches", "1", "--queries", "",
                 "--repeats", "1", "--no-long"]) == 0
    made = list((tmp_path / "results" / "runs").glob("profile-cpu-*"))
    assert len(made) == 1 and (made[0] / "profile.json").is_file()
    assert not (tmp_path / "results" / "profile").exists()
    report = (made[0] / "report.md").read_text()
    assert "dtype float32" in report and "None" not in report
    assert not any("CUDA-graph" in n for n in json.loads((made[0] / "profile.json").read_text())["notes"])


# -- 6. no silent zero -----------------------------------------------------------------------------------------


def test_missing_images_fail_before_the_model_is_built(tmp_path, capsys, monkeypatch):
    from qmamba_eval import runner

    rows = rows_for("pope", 4)
    path = write_data(tmp_path / "d", "pope", rows)
    for f in path.parent.glob("im*.png"):
        f.unlink()
    monkeypatch.setattr(runner, "build_run_model", lambda *a: pytest.fail("the model was built"))
    assert cli(tmp_path, "--tasks", "pope", "--data", str(path)) == 2
    e = err(capsys)
    assert "4 of 4 pope images do not exist" in e and "row 1" in e and "--max-image-errors" in e


def test_undecodable_images_beyond_the_threshold_fail_the_run_and_keep_its_files(tmp_path, capsys):
    rows = rows_for("pope", 4)
    path = write_data(tmp_path / "d", "pope", rows)
    for f in path.parent.glob("im*.png"):
        f.write_bytes(b"\x89PNG garbage")
    assert cli(tmp_path, "--tasks", "pope", "--data", str(path), "--run-name", "bad") == 2
    assert "4 of 4 questions have no readable image" in err(capsys)
    doc = results(tmp_path / "out" / "bad")  # written, marked
    assert doc["tasks"]["pope"]["failures"] and doc["tasks"]["pope"]["n_errors"] == 4
    assert cli(tmp_path, "--tasks", "pope", "--data", str(path), "--run-name", "ok", "--max-image-errors", "1") == 0


# -- 8. no long silences ---------------------------------------------------------------------------------------


def test_the_model_build_is_announced_and_a_resume_is_said(tmp_path, capsys):
    args = ["--tasks", "gqa", "--limit", "2", "--output-dir", str(tmp_path), "--no-plot", "--run-name", "r"]
    assert main(args) == 0
    assert "building tiny-qmamba on cpu" in capsys.readouterr().err
    assert main(args + ["--no-progress"]) == 0
    assert "all answers resumed from the run folder" in capsys.readouterr().out
    assert (tmp_path / "r" / "summary.md").is_file() and "run started" in (tmp_path / "r" / "run.log").read_text()


# -- 9. an unreachable hub fails in seconds, saying what to do ---------------------------------------------------


def test_an_unreachable_hub_fails_fast_and_names_offline_mode(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    t = time.perf_counter()
    assert cli(tmp_path, "--tasks", "pope", "--data", "hub") == 2
    assert time.perf_counter() - t < 10
    e = err(capsys)
    assert "unreachable" in e and "HF_HUB_OFFLINE=1" in e


# -- 10. help and habits ----------------------------------------------------------------------------------------


def test_help_version_bare_call_and_tasks_all(tmp_path, capsys):
    assert main([]) == 2
    bare = capsys.readouterr().err
    assert all(c in bare for c in ("profile", "train", "table", "runs", "scorecard"))
    assert main(["--version"]) == 0 and capsys.readouterr().out.startswith("qmamba-eval ")
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "profile" in capsys.readouterr().out and "qmamba-eval" in capsys.readouterr().out + bare
    assert cli(tmp_path, "--tasks", "all", "--limit", "1", "--run-name", "all") == 0
    assert set(results(tmp_path / "out" / "all")["tasks"]) >= {"vqav2", "gqa", "textvqa", "pope", "mme"}


# -- 11. a view across runs -------------------------------------------------------------------------------------


def test_runs_tabulates_many_runs_as_markdown_csv_and_json(tmp_path, capsys):
    assert cli(tmp_path, "--tasks", "gqa,pope", "--limit", "2", "--run-name", "a") == 0
    assert cli(tmp_path, "--tasks", "gqa", "--limit", "3", "--run-name", "b") == 0
    capsys.readouterr()
    assert main(["runs", str(tmp_path / "out")]) == 0
    md = capsys.readouterr().out
    assert md.startswith("| run | task |") and md.count("\n| a | ") == 2 and "| b | gqa |" in md
    assert main(["runs", str(tmp_path / "out"), "--csv", str(tmp_path / "r.csv")]) == 0
    import pandas as pd

    df = pd.read_csv(tmp_path / "r.csv")
    assert len(df) == 3 and set(df.task) == {"gqa", "pope"} and "accuracy" in df.columns
    assert main(["runs", str(tmp_path / "out"), "--json", "--task", "gqa"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert sorted(x["n"] for x in lines) == [2, 3]
    assert main(["runs", str(tmp_path / "nowhere")]) == 2


# -- 12. recipes leave nothing in the checkout --------------------------------------------------------------------


def test_the_lmms_eval_recipe_writes_outside_the_checkout_or_ignored():
    text = (ROOT / "docs" / "lmms-eval.md").read_text()
    ignored = (ROOT / ".gitignore").read_text().split()
    for name in ("torch-pin.txt", "lmms_out"):
        for use in [w for w in text.replace("`", " ").split() if name in w]:
            assert use.startswith("/tmp/") or f"{name}/" in ignored or name in ignored, use
    assert os.path.basename("lmms_out") + "/" in ignored and "torch-pin.txt" in ignored
