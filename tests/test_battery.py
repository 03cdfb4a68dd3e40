"""Cases a hostile-input battery found (349 commands, 70 answered wrongly before these fixes): tracebacks, runaway
allocations, wrong exit codes, late or unclear errors, numbers that were silently wrong. Each case is now a one-line
``error:`` naming the option or file (exit 2), or a warning where a reader must see one."""

import json
from pathlib import Path

import pytest

from qmamba_eval.cli import main

from .helpers import err, rows_for, write_data
from .test_hostile_input import doc, scorecard

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "qmamba_eval" / "assets" / "checkpoints" / "tiny-qmamba"
POPE_TOML = (ROOT / "tasks" / "pope.toml").read_text()


def run_cli(tmp_path, *args) -> int:
    return main([*args, "--output-dir", str(tmp_path / "out"), "--no-progress", "--no-plot"])


@pytest.fixture
def no_model(monkeypatch):
    """Checks that must come before any model is built: building one fails the test."""
    import qmamba_eval.models

    def refuse(*a, **k):
        raise AssertionError("a model was built before the input was checked")

    monkeypatch.setattr(qmamba_eval.models, "build_model", refuse)


# -- run options -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("args, expected", [
    (["--device", "tpu"], "--device 'tpu': not a device"),
    (["--backend", "fused"], "--backend fused runs on CUDA only"),
    (["--backend", "mamba_ssm"], "--backend mamba_ssm runs on CUDA only"),
    (["--run-name", "../elsewhere"], "--run-name '../elsewhere': a folder name"),
    (["--prompt", "bare", "--prompt", "default"], "every task already has --prompt 'bare'"),
    (["--model-args", "num_queries=4,num_queries=8", "--allow-random"], "num_queries is given twice"),
    (["--model-args", "mlp_ratio=-2", "--allow-random"], "projector mlp_ratio = -2: a number > 0"),
    (["--model-args", "local_attention=maybe", "--allow-random"], "local_attention = 'maybe': true or false"),
    (["--model-args", "num_queries=16"], "its shipped weights are for its own projector"),
    (["--data", "synthetic:train:999999999,1,1"], "whole numbers from 0 to 20,000"),
])
def test_bad_run_options_exit_2_before_a_model_is_built(tmp_path, capsys, no_model, args, expected):
    assert run_cli(tmp_path, "--tasks", "pope", "--limit", "2", *args) == 2
    assert expected in err(capsys)


def test_output_paths_blocked_by_a_file_are_named_before_any_work(tmp_path, capsys, no_model):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    assert main(["--tasks", "pope", "--output-dir", str(blocker / "sub")]) == 2
    assert f"--output-dir {blocker / 'sub'}: {blocker} is a file" in err(capsys)
    assert main(["train", "--out", str(blocker)]) == 2
    assert f"--out {blocker}: a file, not a folder" in err(capsys)
    assert main(["scorecard", "--baseline", str(blocker / "b.json"), "--current", str(blocker),
                 "--update-baseline"]) == 2
    assert "--baseline" in err(capsys)
    assert main(["table", "--models", str(SHIPPED), "--out", str(blocker)]) == 2
    assert f"--out {blocker}: a file" in err(capsys)


def test_a_huge_text_value_is_refused_before_it_is_tokenised(tmp_path, capsys, no_model):
    rows = rows_for("pope", 4)
    rows[1]["question"] = "Is there " + "a" * 70_000 + "?"
    path = write_data(tmp_path / "d", "pope", rows)
    assert run_cli(tmp_path, "--tasks", "pope", "--data", str(path)) == 2
    assert "row 2 (question 101): column 'question' holds 70,010 characters" in err(capsys)


def test_a_prompt_placeholder_a_row_lacks_is_found_before_the_model(tmp_path, capsys, monkeypatch, no_model):
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "p2.toml").write_text(POPE_TOML.replace('name = "pope"', 'name = "p2"')
                                            .replace('default = "{question}', 'default = "{qestion}'))
    monkeypatch.setenv("QMAMBA_TASKS_PATH", str(tmp_path / "t"))
    path = write_data(tmp_path / "d", "pope", rows_for("pope", 4), "p2.jsonl")
    assert run_cli(tmp_path, "--tasks", "p2", "--data", str(path)) == 2
    assert "row 1: task p2: prompt 'default' uses 'qestion'" in err(capsys)


def test_the_same_run_whatever_the_spelling(tmp_path, capsys):
    """An explicit default option, a trailing slash and a repeated task are the same run, resumed."""
    common = ["--limit", "2", "--run-name", "r"]
    assert run_cli(tmp_path, "--tasks", "pope", "--model", str(SHIPPED), *common) == 0
    assert run_cli(tmp_path, "--tasks", "pope,pope", "--model", str(SHIPPED) + "/", "--pope-parser", "llava",
                   *common) == 0
    assert "pope more than once" in capsys.readouterr().err
    res = json.loads((tmp_path / "out" / "r" / "results.json").read_text())
    assert res["tasks"]["pope"]["n_resumed"] == 2
    assert run_cli(tmp_path, "--tasks", "pope", "--model", str(SHIPPED), "--pope-parser", "strict", *common) == 2
    assert "holds a different run: options ({} -> {'pope_parser': 'strict'})" in err(capsys)


def test_all_images_missing_is_said_even_when_allowed(tmp_path):
    path = write_data(tmp_path / "d", "pope", rows_for("pope", 4))
    for f in path.parent.glob("*.png"):
        f.unlink()
    assert run_cli(tmp_path, "--tasks", "pope", "--data", str(path), "--max-image-errors", "1",
                   "--run-name", "r") == 0
    res = json.loads((tmp_path / "out" / "r" / "results.json").read_text())
    assert any("4 of 4 questions have no readable image" in w for w in res["tasks"]["pope"]["warnings"])


# -- task files ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("edit, expected", [
    (('name = "pope"', 'name = "x,1"'), "name 'x,1' must be letters, digits"),
    (("[options.pope_parser]", "[options.limit]"), "[options.limit] would be the flag --limit"),
    (('split_column = "category"', 'split_column = "nosuch"'), "split_column 'nosuch' is not one of its columns"),
    (("max_new_tokens = 16", "max_new_tokens = 0"), "max_new_tokens = 0: must be at least 1"),
    (('hooks = "pope"', 'hooks = "boompkg.hooks"'), "hook module 'boompkg.hooks' failed while importing: Runtime"),
])
def test_a_bad_task_file_is_named(tmp_path, capsys, monkeypatch, edit, expected):
    (tmp_path / "t").mkdir()
    text = POPE_TOML.replace('name = "pope"', 'name = "x1"') if "name" not in edit[0] else POPE_TOML
    (tmp_path / "t" / "x1.toml").write_text(text.replace(*edit))
    (tmp_path / "boompkg").mkdir()
    (tmp_path / "boompkg" / "__init__.py").write_text("")
    (tmp_path / "boompkg" / "hooks.py").write_text("raise RuntimeError('boom at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("QMAMBA_TASKS_PATH", str(tmp_path / "t"))
    assert main(["--tasks", "pope", "--limit", "1", "--output-dir", str(tmp_path / "o")]) == 2
    e = err(capsys)
    assert f"task file {tmp_path / 't' / 'x1.toml'}" in e and expected in e


# -- train-many and runs -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("jobs, expected", [
    ("", "the file is empty"),
    ("[]", "(the list is empty)"),
    ('[{"name": "a", "args": [1, 2]}]', "job a: args must be strings"),
    ('[{"name": "../escape", "args": []}]', "name '../escape' must be a folder name"),
    ('[{"name": "a", "args": ["--out", "/tmp/x"]}]', "job a: --out is set by train-many"),
    ('[{"name": "a", "args": ["--stage2", "max_stpes=2"]}]', "job a: stage instruct: unknown option(s) ['max_stpes']"),
    ('[{"name": "a", "args": [], "extra": 1}]', "unknown key(s) ['extra']"),
])
def test_train_many_checks_every_job_before_starting_any(tmp_path, capsys, jobs, expected):
    (tmp_path / "jobs.json").write_text(jobs)
    assert main(["train-many", "--jobs", str(tmp_path / "jobs.json"), "--out", str(tmp_path / "o")]) == 2
    assert expected in err(capsys)
    assert not (tmp_path / "o" / "a").exists()


def test_runs_skips_odd_documents_and_names_an_unknown_task(tmp_path, capsys):
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "results.json").write_text('{"tasks": "pope"}')
    assert main(["runs", str(tmp_path)]) == 2
    e = capsys.readouterr().err
    assert "is not an evaluation results document (skipped)" in e and "no evaluation runs there" in e
    (tmp_path / "good").mkdir()
    (tmp_path / "good" / "results.json").write_text(json.dumps(doc("pope", {"mean/f1": float("nan")})))
    assert main(["runs", str(tmp_path)]) == 0
    assert "mean/f1 is not finite" in capsys.readouterr().out
    assert main(["runs", str(tmp_path), "--task", "gqa"]) == 2
    assert "--task gqa: no run under" in err(capsys)


# -- scorecards ----------------------------------------------------------------------------------------------------


def _with_table(table):
    return doc("pope", {"mean/f1": 80.0}, report={"metrics": table})


@pytest.mark.parametrize("cur, expected", [
    (_with_table({"*": {"better": "sideways"}}), "better must be one of"),
    (_with_table({"*": {"better": "higher", "tolerance": -1}}), "tolerance must be a finite number >= 0"),
    (_with_table({"*": {"better": "lower"}}), "metric direction table differs"),
    (doc("pope", {}, answers_digest="abc"), "nothing compared"),
])
def test_a_current_document_cannot_rewrite_the_gate(tmp_path, capsys, cur, expected):
    base = _with_table({"*": {"better": "higher"}})
    base["tasks"]["pope"]["answers_digest"] = "abc"
    assert scorecard(tmp_path, base, cur) == 2
    assert expected in err(capsys)


def _profile(ref=10.0, fig=5.0, better="lower"):
    return {"tasks": {}, "profile": {"reference": "r/ttft_ms", "figures": {
        "r/ttft_ms": {"value": ref, "better": "lower"}, "q/ttft_ms": {"value": fig, "better": better}}}}


@pytest.mark.parametrize("cur, expected", [
    (_profile(ref=0.0), "reference figure r/ttft_ms is 0.0"),
    (_profile(ref=-1.0), "reference figure r/ttft_ms is -1.0"),
    (_profile(fig=-5.0), "figure q/ttft_ms is -5.0"),
    (_profile(better="sideways"), "better is 'sideways'"),
])
def test_profile_figures_are_checked(tmp_path, capsys, cur, expected):
    assert scorecard(tmp_path, _profile(), cur) == 2
    assert expected in err(capsys)


def test_update_baseline_refuses_what_would_lose_the_baseline(tmp_path, capsys):
    base = tmp_path / "base.json"
    base.write_text(json.dumps(doc("pope", {"mean/f1": 80.0})))
    before = base.read_text()
    for cur, expected in ((doc("pope", {"mean/f1": float("nan")}), "non-finite values"),
                          (_profile(), "holds an evaluation and the current document is a profile")):
        (tmp_path / "cur.json").write_text(json.dumps(cur))
        assert main(["scorecard", "--baseline", str(base), "--current", str(tmp_path / "cur.json"),
                     "--update-baseline"]) == 2
        assert expected in err(capsys)
    assert base.read_text() == before


def test_random_weights_are_shouted_and_profile_folders_accepted(tmp_path, capsys):
    cur = doc("pope", {"mean/f1": 80.0})
    cur["warnings"] = ["RANDOM weights for projector: scores are meaningless"]
    assert scorecard(tmp_path, doc("pope", {"mean/f1": 80.0}), cur) == 0
    assert "**WARNING (current):** RANDOM weights" in capsys.readouterr().out
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "profile.json").write_text(json.dumps(_profile()))
    assert main(["scorecard", "--baseline", str(tmp_path / "p"), "--current", str(tmp_path / "p")]) == 0


# -- re-scoring and tables -----------------------------------------------------------------------------------------


def _samples(tmp_path, task, answers, references) -> Path:
    path = tmp_path / "answers.jsonl"
    path.write_text("".join(json.dumps({"key": str(i), "question_id": str(i), "answer": a, "references": r,
                                        "split": "adversarial" if task == "pope" else "all"}) + "\n"
                            for i, (a, r) in enumerate(zip(answers, references))))
    return path


def test_rescoring_says_what_it_could_not_score(tmp_path, capsys):
    empty = _samples(tmp_path, "pope", ["", "", ""], ["yes", "no", "yes"])
    assert main(["score", "--task", "pope", "--predictions", str(empty)]) == 0
    assert "note: every answer is empty (3 questions)" in capsys.readouterr().out
    unscorable = _samples(tmp_path, "vqav2", ["red", "blue"], [None, None])
    assert main(["score", "--task", "vqav2", "--predictions", str(unscorable)]) == 2
    assert "none of its 2 answers could be scored as vqav2" in err(capsys)
    assert main(["score", "--task", "pope", "--predictions", str(empty), "--output", str(tmp_path)]) == 2
    assert f"--output {tmp_path}: a folder" in err(capsys)


def test_llava_pope_answers_need_the_label_folder_and_categories(tmp_path, capsys):
    answers = tmp_path / "answers.jsonl"
    answers.write_text('{"question_id": 1, "text": "Yes"}\n')
    labels = tmp_path / "labels"
    labels.mkdir()
    assert main(["score", "--task", "pope", "--predictions", str(answers), "--references", str(answers),
                 "--questions", str(answers)]) == 2
    assert f"--references {answers}: for LLaVA's POPE answers, the folder" in err(capsys)
    assert main(["score", "--task", "pope", "--predictions", str(answers), "--references", str(labels),
                 "--questions", str(answers)]) == 2
    assert "row 1: expected question_id and category" in err(capsys)
    assert main(["score", "--task", "gqa", "--predictions", str(answers), "--references",
                 str(tmp_path / "nope")]) == 2
    assert f"--references {tmp_path / 'nope'}: no such file" in err(capsys)


@pytest.mark.parametrize("args, expected", [
    (["--orders", "raster,raster"], "an order is named twice"),
    (["--models", f"{SHIPPED},{SHIPPED}/"], "is named twice"),
    (["--scale", "huge"], "--scale 'huge': unknown scale"),
    (["--scale", "0,0,0"], "--scale '0,0,0': three scene counts"),
])
def test_table_options_are_checked_first(tmp_path, capsys, no_model, args, expected):
    base = ["table", "--models", str(SHIPPED), "--out", str(tmp_path / "t")]
    assert main(base + args) == 2
    assert expected in err(capsys)


def test_table_merge_takes_tables_only(tmp_path, capsys):
    (tmp_path / "x.json").write_text(json.dumps(doc("pope", {"mean/f1": 1.0})))
    assert main(["table", "--merge", str(tmp_path / "x.json"), "--out", str(tmp_path / "t")]) == 2
    assert "not a table.json written by run_eval.py table" in err(capsys)
