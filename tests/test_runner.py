"""End-to-end runs on the embedded sample: files written, resume, crash safety, bad input."""

import json

import pytest

from qmamba_eval.cli import main
from qmamba_eval.results import read_samples
from qmamba_eval.runner import RunConfig, Runner

ALL = ["vqav2", "gqa", "textvqa", "pope", "mme"]


def run(tmp_path, tasks=ALL, **kw):
    cfg = RunConfig(tasks=tasks, output_dir=str(tmp_path), progress=False, **{"plot": False, **kw})
    r = Runner(cfg)
    return r, r.run()


def test_full_sample_run_writes_files_and_resumes(tmp_path):
    r, res = run(tmp_path, plot=True)
    d = r.run_dir
    assert (d / "results.json").is_file() and (d / "run.json").is_file()
    assert (d / "summary.png").stat().st_size > 5000
    saved = json.loads((d / "results.json").read_text())
    for t in ALL:
        info = saved["tasks"][t]
        assert info["version"] == "1.0" and info["data"]["is_sample"] and info["data"]["fingerprint"]
        assert info["prompt_variant"] == "default" and info["n_samples"] > 0
        rows = read_samples(d / f"samples_{t}.jsonl")
        assert len(rows) == info["n_samples"]
        assert {"question_id", "prompt", "answer", "parsed", "score", "references", "split"} <= set(rows[0])
    assert saved["tasks"]["pope"]["options"]["pope_parser"] == "llava"
    assert saved["tasks"]["vqav2"]["options"]["vqa_rule"] == "lmms"
    assert saved["model"]["name"] == "tiny-qmamba" and not saved["model"]["random_init"]  # shipped weights
    assert saved["environment"]["versions"]["torch"]
    assert set(saved["tasks"]["pope"]["metrics"]) >= {"mean/f1", "adversarial/f1", "random/yes_ratio"}
    assert set(saved["tasks"]["mme"]["metrics"]) >= {"perception", "cognition"}
    # second run: nothing recomputed, same metrics
    r2, res2 = run(tmp_path, plot=True)
    assert r2.run_dir == d and r2._model is None  # the model was never even built
    for t in ALL:
        assert res2["tasks"][t]["n_resumed"] == res["tasks"][t]["n_samples"]
        assert res2["tasks"][t]["metrics"] == res["tasks"][t]["metrics"]


def test_interrupted_run_resumes_and_torn_line_is_dropped(tmp_path):
    r, full = run(tmp_path, tasks=["mme"], batch_size=4)
    path = r.run_dir / "samples_mme.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:10]) + lines[10][:17])  # crash in the middle of line 11
    r2, res = run(tmp_path, tasks=["mme"], batch_size=4)
    assert res["tasks"]["mme"]["n_resumed"] == 10
    assert res["tasks"]["mme"]["metrics"] == full["tasks"]["mme"]["metrics"]
    assert len(read_samples(path)) == len(lines)


def test_deterministic_across_runs(tmp_path):
    _, a = run(tmp_path / "a", tasks=["pope", "vqav2"], limit=24)
    _, b = run(tmp_path / "b", tasks=["pope", "vqav2"], limit=24)
    ra = read_samples(next((tmp_path / "a").iterdir()) / "samples_vqav2.jsonl")
    rb = read_samples(next((tmp_path / "b").iterdir()) / "samples_vqav2.jsonl")
    assert [x["answer"] for x in ra] == [x["answer"] for x in rb]
    assert a["tasks"]["pope"]["metrics"] == b["tasks"]["pope"]["metrics"]


def test_batch_size_does_not_change_answers(tmp_path):
    r1, _ = run(tmp_path, tasks=["gqa"], batch_size=1, run_name="b1")
    r5, _ = run(tmp_path, tasks=["gqa"], batch_size=5, run_name="b5")
    a = [x["answer"] for x in read_samples(r1.run_dir / "samples_gqa.jsonl")]
    b = [x["answer"] for x in read_samples(r5.run_dir / "samples_gqa.jsonl")]
    assert a == b


def _hub_schema_copy(tmp_path, task, mutate):
    from qmamba_eval.data.sources import SAMPLE_DIR

    rows = [json.loads(l) for l in (SAMPLE_DIR / f"{task}.jsonl").read_text().splitlines()]
    folder = tmp_path / "data"
    (folder / "images").mkdir(parents=True)
    for r in rows:
        (folder / "images" / r["image"]).write_bytes((SAMPLE_DIR / "images" / r["image"]).read_bytes())
    rows = mutate(rows, folder)
    (folder / f"{task}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder / f"{task}.jsonl"


def test_corrupt_image_is_an_error_sample_and_the_run_goes_on(tmp_path):
    def corrupt(rows, folder):
        (folder / "images" / rows[0]["image"]).write_bytes(b"\x89PNG garbage")
        rows[1]["image"] = "missing.png"
        return rows

    path = _hub_schema_copy(tmp_path, "pope", corrupt)
    r, res = run(tmp_path / "out", tasks=["pope"], data=str(path))
    t = res["tasks"]["pope"]
    assert t["n_errors"] >= 2 and t["n_samples"] == len(path.read_text().splitlines())
    errs = [s for s in read_samples(r.run_dir / "samples_pope.jsonl") if s.get("error")]
    assert any("cannot decode" in e["error"] for e in errs) and any("does not exist" in e["error"] for e in errs)
    assert all(e["score"] == 0.0 for e in errs)


def _without(column):
    def drop(rows, folder):
        for r in rows:
            r.pop(column)
        return rows

    return drop


def test_missing_column_is_named(tmp_path):
    path = _hub_schema_copy(tmp_path, "pope", _without("category"))
    with pytest.raises(ValueError, match=r"needs column\(s\) \['category'\]"):
        run(tmp_path / "out", tasks=["pope"], data=str(path))


def test_cli_errors_and_limits(tmp_path, capsys):
    assert main(["--tasks", "popee", "--output-dir", str(tmp_path), "--no-progress"]) == 2
    assert "Did you mean 'pope'" in capsys.readouterr().err
    assert main(["--tasks", "pope", "--prompt", "pope=fancy", "--output-dir", str(tmp_path), "--no-progress"]) == 2
    assert "no prompt variant 'fancy'" in capsys.readouterr().err
    assert main(["--tasks", "gqa", "--data", str(tmp_path / "nope"), "--output-dir", str(tmp_path)]) == 2
    assert main(["--tasks", "gqa,textvqa", "--limit", "3", "--prompt", "textvqa=ocr_before",
                 "--output-dir", str(tmp_path), "--no-progress", "--run-name", "lim"]) == 0
    out = capsys.readouterr().out
    assert "SAMPLE - not a benchmark score" in out
    res = json.loads((tmp_path / "lim" / "results.json").read_text())
    assert res["tasks"]["gqa"]["n_samples"] == 3
    assert res["tasks"]["textvqa"]["prompt_variant"] == "ocr_before"
    rows = read_samples(tmp_path / "lim" / "samples_textvqa.jsonl")
    assert rows[0]["prompt"].startswith("Reference OCR token: STOP\nWhat word")


def test_resume_refuses_a_different_run(tmp_path):
    run(tmp_path, tasks=["gqa"], limit=2, run_name="x")
    with pytest.raises(RuntimeError, match="different run"):
        run(tmp_path, tasks=["gqa"], limit=2, run_name="x", seed=1)


def test_rescoring_our_samples_file_gives_the_same_metrics(tmp_path):
    from qmamba_eval.rescore import rescore

    r, res = run(tmp_path, tasks=["pope", "mme", "vqav2"])
    for t in ("pope", "mme", "vqav2"):
        again = rescore(t, r.run_dir / f"samples_{t}.jsonl")
        assert again["metrics"] == res["tasks"][t]["metrics"] and again["format"] == "qmamba"
    strict = rescore("pope", r.run_dir / "samples_pope.jsonl", options={"pope_parser": "strict"})
    assert strict["options"]["pope_parser"] == "strict"


def test_lmms_eval_samples_format(tmp_path):
    from qmamba_eval.rescore import rescore

    rows = [{"doc_id": 0, "doc": {"question_id": "1", "question": "q", "answer": "yes", "category": "random"},
             "target": "yes", "resps": [["Yes"]], "filtered_resps": ["Yes"]},
            {"doc_id": 1, "doc": {"question_id": "2", "question": "q", "answer": "no", "category": "random"},
             "target": "no", "resps": [["Yes"]], "filtered_resps": ["Yes"]}]
    p = tmp_path / "samples_pope.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = rescore("pope", p)
    assert res["format"] == "lmms_eval"
    assert res["metrics"]["random/accuracy"] == 50.0 and res["metrics"]["random/yes_ratio"] == 100.0


def test_vqav2_without_answers_writes_a_submission(tmp_path):
    path = _hub_schema_copy(tmp_path, "vqav2", _without("answers"))
    r, res = run(tmp_path / "out", tasks=["vqav2"], data=str(path))
    t = res["tasks"]["vqav2"]
    n = len(path.read_text().splitlines())
    assert t["metrics"] == {"unscored": n}
    sub = json.loads((r.run_dir / t["submission_file"]).read_text())
    assert len(sub) == n and isinstance(sub[0]["question_id"], int) and "answer" in sub[0]


def test_split_needs_hub(tmp_path):
    with pytest.raises(ValueError, match="only be chosen for --data hub"):
        run(tmp_path, tasks=["vqav2"], splits={"vqav2": "testdev"})


def test_llava_style_answers_rescored_against_local_data(tmp_path):
    from qmamba_eval.data.sources import SAMPLE_DIR
    from qmamba_eval.rescore import rescore

    rows = [json.loads(l) for l in (SAMPLE_DIR / "textvqa.jsonl").read_text().splitlines()]
    answers = [{"question_id": r["question_id"], "prompt": r["question"], "text": r["answers"][0].upper()}
               for r in rows]
    answers[0]["text"] = "wrong"
    p = tmp_path / "answers.jsonl"
    p.write_text("".join(json.dumps(a) + "\n" for a in answers))
    res = rescore("textvqa", p, SAMPLE_DIR / "textvqa.jsonl")
    assert res["format"] == "llava" and res["n_samples"] == 8
    assert res["metrics"]["accuracy"] == pytest.approx(100 * 7 / 8)
    with pytest.raises(ValueError, match="pass --references"):
        rescore("textvqa", p)


def test_task_registry_errors(monkeypatch, tmp_path):
    from qmamba_eval import tasks

    (tmp_path / "bad.toml").write_text('name = "bad"\nhooks = "pope"\nrequired_columns = []\n[prompts]\ndefault="x"\n')
    monkeypatch.setenv("QMAMBA_TASKS_PATH", str(tmp_path))
    with pytest.raises(ValueError, match="lacks 'metadata'"):
        tasks.all_tasks()
    (tmp_path / "bad.toml").write_text('name = "extra"\nhooks = "pope"\nrequired_columns = []\n'
                                       '[metadata]\nversion = "0.1"\n[prompts]\ndefault="{question}?"\n')
    assert tasks.get_task("extra").version == "0.1"


def test_likelihood_answer_mode(tmp_path):
    r, res = run(tmp_path, tasks=["pope", "mme"], answer_mode="likelihood")
    for t in ("pope", "mme"):
        assert res["tasks"][t]["answer_mode"] == "likelihood"
        answers = {s["answer"] for s in read_samples(r.run_dir / f"samples_{t}.jsonl")}
        assert answers <= {"Yes", "No"}
    with pytest.raises(ValueError, match="no closed answer set"):
        run(tmp_path, tasks=["gqa"], answer_mode="likelihood")
