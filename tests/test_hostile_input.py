"""Hostile input on the newer commands (issue 20): no false pass, no poisoned model, no silent override, no
traceback, no allocation beyond the model that will load -- each case a one-line ``error:`` (exit 2) or a loud
warning."""

import copy
import json
import shutil
from pathlib import Path

import pytest

from qmamba_eval.cli import main

from .helpers import err, rows_for, write_data

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "results" / "baselines" / "sample_tiny-qmamba.json"
SHIPPED = ROOT / "qmamba_eval" / "assets" / "checkpoints" / "tiny-qmamba"


def doc(task, metrics, **extra):
    return {"tasks": {task: {"version": "1.0", "n_samples": 10, "prompt_variant": "default", "options": {},
                             "data": {"fingerprint": "f"}, "metrics": metrics, **extra}}}


def scorecard(tmp_path, base, cur, *args) -> int:
    b, c = tmp_path / "b.json", tmp_path / "c.json"
    b.write_text(base if isinstance(base, str) else json.dumps(base))
    c.write_text(cur if isinstance(cur, str) else json.dumps(cur))
    return main(["scorecard", "--baseline", str(b), "--current", str(c), *args])


# -- a regression gate that only passes what it compared --------------------------------------------------------


def test_the_gate_refuses_documents_that_share_no_metric(tmp_path, capsys):
    assert scorecard(tmp_path, doc("pope", {"mean/f1": 80.0}), doc("gqa", {"accuracy": 50.0})) == 2
    assert "nothing compared" in err(capsys)
    profile = {"profile": {"reference": "r", "figures": {"r": {"value": 1.0, "better": "lower"}}}}
    assert scorecard(tmp_path, profile, json.loads(BASE.read_text())) == 2
    e = err(capsys)
    assert "the baseline is a profile and the current document an evaluation" in e


def test_non_finite_values_are_never_an_improvement(tmp_path, capsys):
    base = doc("gqa", {"accuracy": 50.0})
    assert scorecard(tmp_path, base, '{"tasks": {"gqa": {"version": "1.0", "n_samples": 10, "prompt_variant": '
                     '"default", "options": {}, "data": {"fingerprint": "f"}, "metrics": {"accuracy": Infinity}}}}') == 1
    assert "regressed" in capsys.readouterr().out
    nan = json.dumps(base).replace("50.0", "NaN")
    assert scorecard(tmp_path, nan, nan) == 2  # a baseline holds finite numbers
    assert "baseline metric gqa/accuracy is nan" in err(capsys)
    prof = {"tasks": {}, "profile": {"reference": "ref/ttft_ms", "figures": {
        "ref/ttft_ms": {"value": 10.0, "better": "lower"}, "q/ttft_ms": {"value": 5.0, "better": "lower"}}}}
    worse = copy.deepcopy(prof)
    worse["profile"]["figures"]["q/ttft_ms"]["value"] = float("nan")
    assert scorecard(tmp_path, prof, json.dumps(worse)) == 1  # a NaN latency is a regression, not an improvement


@pytest.mark.parametrize("tol, expected", [("*=nan", "finite number >= 0"), ("*=-1", "finite number >= 0"),
                                           ("pope/f1=1", "matches no compared metric"), ("x", "METRIC_GLOB=NUMBER")])
def test_tolerances_are_finite_non_negative_and_match_a_metric(tmp_path, capsys, tol, expected):
    d = doc("pope", {"mean/f1": 80.0})
    assert scorecard(tmp_path, d, d, "--tolerance", tol) == 2
    assert expected in err(capsys)


def test_a_huge_integer_is_bad_input_not_a_traceback(tmp_path, capsys):
    d = doc("gqa", {"accuracy": 50.0})
    huge = json.dumps(d).replace("50.0", "1" + "0" * 400)
    assert scorecard(tmp_path, d, huge) == 2
    assert "too large" in err(capsys)


# -- a trainer that never exports poisoned weights --------------------------------------------------------------


def train(tmp_path, *args) -> int:
    return main(["train", "--out", str(tmp_path / "t"), "--no-progress", "--data-scale", "8,2,1",
                 "--max-per-task", "20", "--stage0", "max_steps=2", "--stage1", "max_steps=2", *args])


@pytest.mark.parametrize("args, expected", [
    (["--stage2", "lr=inf"], "lr must be a finite number > 0"), (["--stage2", "max_steps=-5"], "max_steps must be"),
    (["--stage2", "max_steps=0"], "max_steps must be"), (["--stage2", "bogus=1"], "unknown option(s) ['bogus']"),
    (["--stage2", "batch_size=abc"], "batch_size must be"), (["--stage2", "betas=0.9"], "betas must be two"),
    (["--data-scale", "0,0,0"], "not all 0"), (["--data-scale", "bogus"], "a scale name"),
    (["--llm", "d_model=abc"], "d_model = 'abc'"), (["--projector", "num_queries=0"], "num_queries = 0"),
    (["--llm", "d_model=600000,n_layer=64"], "GiB free"),
])
def test_bad_training_options_exit_2_before_any_step(tmp_path, capsys, args, expected):
    assert train(tmp_path, *args) == 2
    assert expected in err(capsys)
    assert not (tmp_path / "t" / "model").exists()


def test_a_diverging_run_exports_nothing(tmp_path, capsys, monkeypatch):
    from qmamba_eval.train import loop

    real, calls = loop.batch_loss, []

    def diverging(*a, **k):
        calls.append(1)
        out = real(*a, **k)
        return out * float("nan") if len(calls) >= 2 else out

    monkeypatch.setattr(loop, "batch_loss", diverging)
    assert train(tmp_path, "--stage2", "max_steps=3") == 2
    assert "the loss is nan" in err(capsys)
    assert not (tmp_path / "t" / "model").exists()


def test_ctrl_c_before_the_first_checkpoint_keeps_the_steps_done(tmp_path, capsys, monkeypatch):
    from qmamba_eval.train import loop

    real, calls = loop.batch_loss, []

    def interrupted(*a, **k):
        calls.append(1)
        if len(calls) == 5:  # a few steps into stage 2, before its first checkpoint
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(loop, "batch_loss", interrupted)
    assert train(tmp_path, "--stage2", "max_steps=10") == 130
    e = capsys.readouterr().err
    assert f"resume from {tmp_path / 't' / 'checkpoint'}" in e
    state = __import__("torch").load(tmp_path / "t" / "checkpoint" / "trainer_state.pt", weights_only=False)
    assert state["stage"] == 2 and state["step"] == state["history"][-1]["step"] >= 2  # the steps done, kept


def test_a_killed_runs_leftovers_still_refuse_another_configuration(tmp_path, capsys):
    assert train(tmp_path, "--stage2", "max_steps=2") == 0
    t = tmp_path / "t"
    shutil.rmtree(t / "model")
    (t / "checkpoint").rename(t / "checkpoint.old")  # killed between the renames of a checkpoint swap
    (t / "checkpoint.tmp").mkdir()
    before = (t / "train_config.json").read_text()
    assert train(tmp_path, "--stage2", "max_steps=2,lr=5e-3") == 2
    assert "holds a different training run" in err(capsys)
    assert (t / "train_config.json").read_text() == before  # its record is not rewritten


def test_a_truncated_trainer_state_is_named(tmp_path, capsys):
    assert train(tmp_path, "--stage2", "max_steps=2") == 0
    state = tmp_path / "t" / "checkpoint" / "trainer_state.pt"
    state.write_bytes(state.read_bytes()[:100])
    assert train(tmp_path, "--stage2", "max_steps=2") == 2
    assert f"{state}: cannot be read" in err(capsys)


# -- a model folder that would eat the machine or answer nonsense -----------------------------------------------


def _folder(tmp_path, edit=None, weights=None) -> Path:
    d = tmp_path / "m"
    shutil.copytree(SHIPPED, d)
    if edit:
        c = json.loads((d / "config.json").read_text())
        edit(c)
        (d / "config.json").write_text(json.dumps(c))
    if weights:
        from safetensors.torch import load_file, save_file

        save_file(weights(load_file(str(d / "model.safetensors"))), str(d / "model.safetensors"))
    return d


@pytest.mark.parametrize("edit, weights, expected", [
    (lambda c: c.update(llm="llama"), None, "llm_config key 'd_model' is not a llama config key"),
    (lambda c: c["llm_config"].update(d_model=8000, n_layer=16), None, "GiB free"),
    (lambda c: c["llm_config"].update(d_model=10 ** 9), None, "config.json"),
    (None, lambda s: {k: v * float("nan") if k.startswith("llm.") else v for k, v in s.items()}, "NaN or inf"),
    (None, lambda s: {k: v.int() for k, v in s.items()}, "is I32; model weights are floating point"),
    (lambda c: c["projector_kwargs"].update(num_queries=9), None, "has shape"),
])
def test_model_folders_are_checked_before_allocation(tmp_path, capsys, edit, weights, expected):
    d = _folder(tmp_path, edit, weights)
    assert main(["--tasks", "gqa", "--limit", "1", "--model", str(d), "--output-dir", str(tmp_path / "o"),
                 "--no-progress", "--no-plot"]) == 2
    e = err(capsys)
    assert expected in e


def test_a_model_that_says_nothing_is_flagged(tmp_path, monkeypatch):
    from qmamba_eval.models.mllm import MLLM
    from qmamba_eval.runner import RunConfig, Runner

    monkeypatch.setattr(MLLM, "generate", lambda self, images, prompts, **k: [""] * len(prompts))
    res = Runner(RunConfig(tasks=["pope"], output_dir=str(tmp_path), progress=False, plot=False)).run()
    assert any("every answer is empty" in w for w in res["tasks"]["pope"]["warnings"])


# -- overrides and inputs that would change results silently ----------------------------------------------------


def test_an_image_replaced_between_a_run_and_its_resume_is_refused(tmp_path, capsys):
    path = write_data(tmp_path / "d", "gqa", rows_for("gqa", 4))
    args = ["--tasks", "gqa", "--data", str(path), "--output-dir", str(tmp_path / "o"), "--run-name", "r",
            "--no-progress", "--no-plot"]
    assert main(args) == 0
    import os

    img = tmp_path / "d" / "im0.png"
    img.write_bytes(img.read_bytes())  # same path, new content (and time)
    os.utime(img, ns=(img.stat().st_atime_ns, img.stat().st_mtime_ns + 10 ** 9))
    assert main(args) == 2
    assert "image files (modification times)" in err(capsys)


def test_duplicate_ids_empty_questions_and_long_prompts(tmp_path, capsys):
    rows = rows_for("vqav2", 4)
    rows[3]["question_id"] = rows[1]["question_id"]
    path = write_data(tmp_path / "d", "vqav2", rows)
    assert main(["--tasks", "vqav2", "--data", str(path), "--output-dir", str(tmp_path / "o"), "--no-progress"]) == 2
    assert "row 4 (question 11): column 'question_id' is 11, as in row 2" in err(capsys)
    rows = rows_for("gqa", 3)
    rows[2]["question"] = "   "
    path = write_data(tmp_path / "e", "gqa", rows)
    assert main(["--tasks", "gqa", "--data", str(path), "--output-dir", str(tmp_path / "o"), "--no-progress"]) == 2
    assert "row 3 (question g2): column 'question' is empty" in err(capsys)
    rows = rows_for("gqa", 2)
    rows[0]["question"] = "is it " * 300  # > 512 positions of tiny-llava-style
    path = write_data(tmp_path / "f", "gqa", rows)
    assert main(["--tasks", "gqa", "--data", str(path), "--model", "tiny-llava-style", "--output-dir",
                 str(tmp_path / "o"), "--no-progress", "--no-plot", "--run-name", "long"]) == 0
    res = json.loads((tmp_path / "o" / "long" / "results.json").read_text())["tasks"]["gqa"]
    assert any("1 prompt(s) longer than the model's positions" in w for w in res["warnings"])


def test_a_broken_task_file_or_config_is_named(tmp_path, capsys, monkeypatch):
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "broken.toml").write_text("name = 'x\n")
    monkeypatch.setenv("QMAMBA_TASKS_PATH", str(tmp_path / "t"))
    assert main(["list"]) == 2
    assert f"task file {tmp_path / 't' / 'broken.toml'} is not valid TOML" in err(capsys)
    monkeypatch.delenv("QMAMBA_TASKS_PATH")
    (tmp_path / "c.json").write_text("{nope")
    assert main(["train", "--out", str(tmp_path / "x"), "--config", str(tmp_path / "c.json")]) == 2
    assert f"--config {tmp_path / 'c.json'}: not valid JSON" in err(capsys)


# -- found in review: old run folders, copied data, profiles without a reference, over-large synthetic splits ----


def test_a_run_folder_of_an_earlier_version_still_resumes(tmp_path):
    from qmamba_eval.runner import RunConfig, Runner

    cfg = RunConfig(tasks=["gqa"], limit=2, output_dir=str(tmp_path), run_name="old", progress=False, plot=False)
    Runner(cfg).run()
    run_json = tmp_path / "old" / "run.json"
    meta = json.loads(run_json.read_text())
    del meta["config"]["limit"]  # what an earlier version wrote
    meta["config"]["options"] = {"gqa_rule": None, "pope_parser": None}
    run_json.write_text(json.dumps(meta))
    cfg.limit = None
    res = Runner(cfg).run()  # the same run: resumed, not refused with an empty list of changes
    assert res["tasks"]["gqa"]["n_resumed"] == 2


def test_copied_data_keeps_its_fingerprint(tmp_path):
    from qmamba_eval.data.sources import load_docs
    from qmamba_eval.tasks import get_task

    a = write_data(tmp_path / "a", "gqa", rows_for("gqa", 4))
    b = tmp_path / "b"
    b.mkdir()
    for f in a.parent.iterdir():
        (b / f.name).write_bytes(f.read_bytes())  # a copy without its timestamps
    ia, ib = load_docs(get_task("gqa"), str(a))[1], load_docs(get_task("gqa"), str(b / a.name))[1]
    assert ia.fingerprint == ib.fingerprint and ia.stamp != ib.stamp  # compared equal; a resume still notices


def test_a_profile_without_its_reference_is_refused(tmp_path, capsys):
    with_ref = {"tasks": {}, "profile": {"reference": "r/ttft_ms", "figures": {
        "r/ttft_ms": {"value": 10.0, "better": "lower"}, "q/tokens_per_s": {"value": 15.0, "better": "higher"}}}}
    without = {"tasks": {}, "profile": {"reference": None, "figures": {
        "q/tokens_per_s": {"value": 20.0, "better": "higher"}}}}
    assert scorecard(tmp_path, with_ref, without) == 2
    assert "in-run reference" in err(capsys)


def test_a_synthetic_test_split_larger_than_its_default_is_refused(tmp_path, capsys):
    assert main(["--tasks", "gqa", "--data", "synthetic:test:train", "--output-dir", str(tmp_path),
                 "--no-progress"]) == 2
    assert "would share scenes" in err(capsys)
