"""Bad input, part 1: re-scoring, concurrent runs, stale resumes, samples files -- each a one-line error (exit 2)
naming the file, row or option, and nothing lost."""

import json
from pathlib import Path

import pytest

from qmamba_eval.cli import main
from qmamba_eval.results import read_samples, run_lock
from qmamba_eval.runner import Runner

from .helpers import cli, err, rows_for, run, write_data


# -- re-scoring -------------------------------------------------------------------------------------------------


def test_rescore_keeps_error_samples_wrong(tmp_path):
    """8 POPE questions, 4 undecodable images: re-scoring gives the run's numbers (not 4 more "yes" answers)."""
    from qmamba_eval.rescore import rescore

    rows = rows_for("pope")
    for i, r in enumerate(rows):
        r["image"] = f"bad{i}.png" if i % 2 else r["image"]
    path = write_data(tmp_path / "d", "pope", rows)
    for i in range(1, 8, 2):
        (path.parent / f"bad{i}.png").write_bytes(b"\x89PNG garbage")
    r, res = run(tmp_path, ["pope"], data=str(path), max_image_errors=1.0)  # half the images: allowed here
    assert res["tasks"]["pope"]["n_errors"] == 4
    samples = r.run_dir / "samples_pope.jsonl"
    for parser in ("llava", "strict"):
        again = rescore("pope", samples, options={"pope_parser": parser})
        if parser == "llava":
            assert again["metrics"] == res["tasks"]["pope"]["metrics"]
        assert again["n_errors"] == 4
        assert again["metrics"]["mean/yes_ratio"] <= 50.0  # the 4 error samples are not "yes"


def test_rescore_refuses_non_text_answers_and_odd_files(tmp_path, capsys):
    rows = [{"key": str(i), "question_id": str(i), "split": "random", "prompt": "q", "answer": "yes",
             "parsed": "yes", "score": 1.0, "references": "yes"} for i in range(4)]
    for bad in (3, ["yes"], True, None):
        rows[2]["answer"] = bad
        p = write_data(tmp_path / "p", "pope", rows, "answers.jsonl")
        assert main(["score", "--task", "pope", "--predictions", str(p)]) == 2
        e = err(capsys)
        assert f"{p}: row 3 (question 2): field 'answer'" in e
    assert main(["score", "--task", "pope", "--predictions", str(tmp_path / "p")]) == 2  # a folder
    assert "is a folder" in err(capsys)
    p.write_text('{"key": "0", "answer": "yes", "references": "yes"}\n[1, 2]\n')
    assert main(["score", "--task", "pope", "--predictions", str(p)]) == 2
    assert f"{p}:2: expected a JSON object" in err(capsys)
    p.write_bytes(b'{"key": "0", "answer": "yes", "references": "yes"}\n{"key": "1", "answer": "\xff"}\n')
    assert main(["score", "--task", "pope", "--predictions", str(p)]) == 2
    assert f"{p}:2: not UTF-8" in err(capsys)


def test_rescore_refuses_another_tasks_samples(tmp_path, capsys):
    r, _ = run(tmp_path, ["pope"], data=str(write_data(tmp_path / "d", "pope", rows_for("pope"))))
    samples = str(r.run_dir / "samples_pope.jsonl")
    for other in ("mme", "gqa"):
        assert main(["score", "--task", other, "--predictions", samples]) == 2
        assert "a samples file of task 'pope'" in err(capsys)
    renamed = tmp_path / "mine.jsonl"
    renamed.write_text(Path(samples).read_text())
    assert main(["score", "--task", "mme", "--predictions", str(renamed)]) == 2
    assert "references are not mme's" in err(capsys)
    assert main(["score", "--task", "gqa", "--predictions", str(renamed)]) == 2
    assert "but task 'gqa' has no splits" in err(capsys)


def test_rescore_repeated_rows_are_counted_once_or_refused(tmp_path):
    from qmamba_eval.rescore import rescore

    r, res = run(tmp_path, ["gqa"], data=str(write_data(tmp_path / "d", "gqa", rows_for("gqa"))))
    p = r.run_dir / "samples_gqa.jsonl"
    lines = p.read_text().splitlines(keepends=True)
    p.write_text("".join(lines + lines[:3]))
    with pytest.warns(UserWarning, match="3 repeated row"):
        again = rescore("gqa", p)
    assert again["n_samples"] == 8 and again["metrics"] == res["tasks"]["gqa"]["metrics"]
    other = json.loads(lines[0])
    other["answer"] = other["answer"] + " not"
    p.write_text("".join(lines) + json.dumps(other) + "\n")
    with pytest.raises(ValueError, match="appears twice with different answers"):
        rescore("gqa", p)


# -- concurrent runs --------------------------------------------------------------------------------------------


def test_second_run_into_a_busy_folder_is_refused(tmp_path, capsys):
    data = str(write_data(tmp_path / "d", "gqa", rows_for("gqa")))
    folder = tmp_path / "out" / "same"
    folder.mkdir(parents=True)
    with run_lock(folder):  # another run holds the folder
        assert cli(tmp_path, "--tasks", "gqa", "--data", data, "--run-name", "same") == 2
        assert "is in use by another run (pid" in err(capsys)
    assert not (folder / "samples_gqa.jsonl").exists()
    assert cli(tmp_path, "--tasks", "gqa", "--data", data, "--run-name", "same") == 0  # released


def test_concurrent_processes_one_refused_and_nothing_doubled(tmp_path):
    """The same command started twice at once: one runs, the other exits 2; no duplicate rows."""
    import subprocess
    import sys

    data = str(write_data(tmp_path / "d", "pope", rows_for("pope")))
    cmd = [sys.executable, str(Path(__file__).resolve().parents[1] / "run_eval.py"), "--tasks", "pope", "--data",
           data, "--output-dir", str(tmp_path / "out"), "--run-name", "x", "--no-progress", "--no-plot"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(c for c, _ in outs)
    assert codes in ([0, 0], [0, 2]), outs  # 0, 0 only when the second started after the first had finished
    if codes == [0, 2]:
        assert any("in use by another run" in e for c, e in outs if c == 2)
    keys = [s["key"] for s in read_samples(tmp_path / "out" / "x" / "samples_pope.jsonl")]
    assert len(keys) == len(set(keys)) == 8


def test_results_json_entries_written_meanwhile_are_kept(tmp_path, monkeypatch):
    """results.json is merged when written: an entry that appeared while a task ran is not lost."""
    g = str(write_data(tmp_path / "d", "gqa", rows_for("gqa")))
    results = tmp_path / "out" / "both" / "results.json"
    real = Runner.run_task

    def run_task_while_another_writes(self, task):
        out = real(self, task)
        doc = json.loads(results.read_text()) if results.is_file() else {"tasks": {}}
        doc["tasks"]["elsewhere"] = {"metrics": {"accuracy": 1.0}}
        results.write_text(json.dumps(doc))
        return out

    monkeypatch.setattr(Runner, "run_task", run_task_while_another_writes)
    run(tmp_path, ["gqa"], data=g, run_name="both")
    assert set(json.loads(results.read_text())["tasks"]) == {"gqa", "elsewhere"}


def test_a_folder_written_twice_is_read_without_duplicates(tmp_path):
    """Folders corrupted before the lock existed: repeated keys count once (n and the submission file)."""
    v = str(write_data(tmp_path / "d", "vqav2", rows_for("vqav2")))
    r, res = run(tmp_path, ["vqav2"], data=v, run_name="dup")
    p = r.run_dir / "samples_vqav2.jsonl"
    p.write_text(p.read_text() * 2)
    _, again = run(tmp_path, ["vqav2"], data=v, run_name="dup")
    assert again["tasks"]["vqav2"]["n_samples"] == 8
    assert again["tasks"]["vqav2"]["metrics"] == res["tasks"]["vqav2"]["metrics"]
    assert len(json.loads((r.run_dir / "submission_vqav2.json").read_text())) == 8


def test_torn_run_and_results_files_are_named(tmp_path, capsys):
    g = str(write_data(tmp_path / "d", "gqa", rows_for("gqa")))
    assert cli(tmp_path, "--tasks", "gqa", "--data", g, "--run-name", "t") == 0
    folder = tmp_path / "out" / "t"
    for name in ("results.json", "run.json"):
        good = (folder / name).read_text()
        (folder / name).write_text(good[: len(good) // 2])
        assert cli(tmp_path, "--tasks", "gqa", "--data", g, "--run-name", "t") == 2
        e = err(capsys)
        assert f"{folder / name}:" in e and "not valid JSON" in e and "delete" in e
        (folder / name).write_text(good)


# -- stale resumes ----------------------------------------------------------------------------------------------


def test_resume_refuses_data_edited_in_place(tmp_path, capsys):
    rows = rows_for("gqa")
    g = write_data(tmp_path / "d", "gqa", rows)
    assert cli(tmp_path, "--tasks", "gqa", "--data", str(g), "--run-name", "e") == 0
    rows[0]["answer"] = "blue"
    write_data(tmp_path / "d", "gqa", rows)
    assert cli(tmp_path, "--tasks", "gqa", "--data", str(g), "--run-name", "e") == 2
    e = err(capsys)
    assert "task gqa changed since its samples were written: data fingerprint" in e
    assert "another --run-name or delete" in e


def test_resume_refuses_a_checkpoint_overwritten_in_place(tmp_path, capsys):
    from qmamba_eval.models import build_model
    from qmamba_eval.models.checkpoints import save_model

    ck = tmp_path / "ck"
    save_model(build_model("tiny-qmamba", checkpoint="random", seed=0), ck)
    g = str(write_data(tmp_path / "d", "gqa", rows_for("gqa", 4)))
    args = ("--tasks", "gqa", "--data", g, "--checkpoint", str(ck), "--run-name", "w")
    assert cli(tmp_path, *args) == 0
    save_model(build_model("tiny-qmamba", checkpoint="random", seed=1), ck)  # other weights, same path
    assert cli(tmp_path, *args) == 2
    e = err(capsys)
    assert "the weights changed since its samples were written: checkpoint" in e and "delete the folder" in e
    assert json.loads((tmp_path / "out" / "w" / "run.json").read_text())["weights"]["checkpoint"]


def test_resume_refuses_another_prompt_template(tmp_path, capsys, monkeypatch):
    from qmamba_eval.tasks import TASKS_DIR

    g = str(write_data(tmp_path / "d", "gqa", rows_for("gqa", 4)))
    assert cli(tmp_path, "--tasks", "gqa", "--data", g, "--run-name", "p") == 0
    override = tmp_path / "tasks"
    override.mkdir()
    text = (TASKS_DIR / "gqa.toml").read_text().replace('default = "{question}\\n', 'default = "Q: {question}\\n')
    assert "Q: {question}" in text
    (override / "gqa.toml").write_text(text)  # same name, same version, another prompt
    monkeypatch.setenv("QMAMBA_TASKS_PATH", str(override))
    assert cli(tmp_path, "--tasks", "gqa", "--data", g, "--run-name", "p") == 2
    assert "defines task 'gqa', which" in err(capsys)  # refused: a built-in task is never replaced silently
    monkeypatch.setenv("QMAMBA_TASKS_OVERRIDE", "1")
    with pytest.warns(UserWarning, match="replacing"):
        assert cli(tmp_path, "--tasks", "gqa", "--data", g, "--run-name", "p") == 2
    assert "prompt template" in err(capsys)


# -- samples files ----------------------------------------------------------------------------------------------


def test_corrupt_middle_line_is_reported_and_nothing_dropped(tmp_path, capsys):
    g = str(write_data(tmp_path / "d", "gqa", rows_for("gqa")))
    assert cli(tmp_path, "--tasks", "gqa", "--data", g, "--run-name", "c") == 0
    p = tmp_path / "out" / "c" / "samples_gqa.jsonl"
    lines = p.read_text().splitlines(keepends=True)
    broken = "".join(lines[:3]) + lines[3][:20] + "\n" + "".join(lines[4:])
    p.write_text(broken)
    assert cli(tmp_path, "--tasks", "gqa", "--data", g, "--run-name", "c") == 2
    assert f"{p}:4: not valid JSON" in err(capsys)
    assert p.read_text() == broken  # nothing cut
    p.write_text("".join(lines) + lines[0][:15])  # a torn last line: cut, the run resumes
    assert cli(tmp_path, "--tasks", "gqa", "--data", g, "--run-name", "c") == 0
    assert p.read_text() == "".join(lines)
