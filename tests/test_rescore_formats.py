"""Re-scoring files in other tools' formats: lmms-eval 0.7.3 samples as its own writer saves them, references
without images, official files given directly."""

import json
import os

import pytest

from qmamba_eval.cli import main
from qmamba_eval.rescore import detect, rescore

POPE_DOCS = [  # hub schema, no image column: re-scoring needs none
    {"question_id": "a1", "question": "Is there a cat?", "answer": "yes", "category": "adversarial"},
    {"question_id": "a2", "question": "Is there a dog?", "answer": "no", "category": "adversarial"},
    {"question_id": "r1", "question": "Is there a car?", "answer": "yes", "category": "random"},
    {"question_id": "r2", "question": "Is there a bus?", "answer": "no", "category": "random"},
]
ANSWERS = ["Yes", "Yes", "No, there is not.", "No"]


def lmms_saved_samples(tmp_path, task_name, docs, answers, metric_dict):
    """Samples written by lmms-eval 0.7.3's own EvaluationTracker.save_results_samples (doc and arguments dropped)."""
    tracker_mod = pytest.importorskip("lmms_eval.loggers.evaluation_tracker")
    tracker = tracker_mod.EvaluationTracker(output_path=str(tmp_path / "lmms_out"))
    tracker.general_config_tracker.model_name_sanitized = "qmamba"
    tracker.date_id = "20261128"
    samples = [{"doc_id": i, "doc": d, "target": d["answer"], "arguments": [(d["question"], {"max_new_tokens": 16})],
                "resps": [[a]], "filtered_resps": [a], "doc_hash": f"h{i}", **metric_dict(d, a)}
               for i, (d, a) in enumerate(zip(docs, answers))]
    tracker.save_results_samples(task_name, samples)
    path = tmp_path / "lmms_out" / "qmamba" / f"20261128_samples_{task_name}.jsonl"
    assert path.is_file()
    return path


def pope_metrics(d, a):
    return {f"pope_{m}": {"question_id": d["question_id"], "score": 1.0, "prediction": a, "ground_truth": d["answer"]}
            for m in ("accuracy", "f1_score")}


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_lmms_eval_saved_samples_with_and_without_references(tmp_path):
    path = lmms_saved_samples(tmp_path, "pope", POPE_DOCS, ANSWERS, pope_metrics)
    first = json.loads(path.read_text().splitlines()[0])
    assert "doc" not in first and "arguments" not in first and detect([first]) == "lmms_eval_saved"
    refs = write_jsonl(tmp_path / "pope_refs.jsonl", POPE_DOCS)
    ours = rescore("pope", path, refs)
    m = ours["metrics"]
    # adversarial: yes/yes vs yes/no -> accuracy 50; random: no/no vs yes/no -> accuracy 50, recall 0
    assert m["adversarial/accuracy"] == 50.0 and m["random/accuracy"] == 50.0 and m["random/recall"] == 0.0
    assert m["mean/yes_ratio"] == 50.0 and ours["n_samples"] == 4
    alone = rescore("pope", path)  # no references: lmms-eval's target, one split, and a note saying so
    assert alone["metrics"]["all/accuracy"] == 50.0 and "adversarial/accuracy" not in alone["metrics"]
    assert any("per-split" in n for n in alone["notes"])


def test_lmms_eval_saved_samples_join_by_doc_id_when_no_question_id(tmp_path):
    docs = [{"id": "q1", "question": "What colour?", "answer": "red"},
            {"id": "q2", "question": "Where?", "answer": "left"}]
    path = lmms_saved_samples(tmp_path, "gqa", docs, ["Red", "right"], lambda d, a: {"exact_match": 0.0})
    assert rescore("gqa", path, write_jsonl(tmp_path / "gqa.jsonl", docs))["metrics"]["accuracy"] == 50.0
    assert rescore("gqa", path)["metrics"]["accuracy"] == 50.0  # lmms-eval's target is GQA's answer


def test_lmms_eval_saved_samples_need_references_where_target_is_not_enough(tmp_path):
    docs = [{"question_id": 1, "question": "What?", "answer": "x", "answers": ["a"] * 10}]
    path = lmms_saved_samples(tmp_path, "textvqa", docs, ["a"], lambda d, a: {"exact_match": 1.0})
    with pytest.raises(ValueError, match="pass --references"):
        rescore("textvqa", path)
    refs = write_jsonl(tmp_path / "tv.jsonl", [{k: v for k, v in docs[0].items() if k != "answer"}])
    assert rescore("textvqa", path, refs)["metrics"]["accuracy"] == 100.0


def test_missing_reference_names_the_line(tmp_path):
    path = lmms_saved_samples(tmp_path, "pope", POPE_DOCS, ANSWERS, pope_metrics)
    refs = write_jsonl(tmp_path / "pope_refs.jsonl", POPE_DOCS[:3])
    with pytest.raises(ValueError, match="line 4 .*r2.* no reference"):
        rescore("pope", path, refs)


def test_score_cli_reads_official_json_file_directly(tmp_path, capsys):
    qf = tmp_path / "testdev_balanced_questions.json"
    qf.write_text(json.dumps({"7": {"imageId": "n1", "question": "Colour?", "answer": "red"},
                              "8": {"imageId": "n2", "question": "Side?", "answer": "left"}}))
    answers = write_jsonl(tmp_path / "answers.jsonl", [{"question_id": "7", "prompt": "Colour?", "text": "Red."},
                                                      {"question_id": "8", "prompt": "Side?", "text": "left"}])
    assert main(["score", "--task", "gqa", "--predictions", str(answers), "--references", str(qf),
                 "--gqa-rule", "llava"]) == 0
    assert "gqa      accuracy" in capsys.readouterr().out  # the table
    assert main(["score", "--task", "gqa", "--predictions", str(answers), "--references", str(qf),
                 "--gqa-rule", "official", "--json", "--output", str(tmp_path / "r.json")]) == 0
    assert json.loads(capsys.readouterr().out)["metrics"]["accuracy"] == 50.0
    assert json.loads((tmp_path / "r.json").read_text())["metrics"]["accuracy"] == 50.0
    assert not os.path.exists(tmp_path / "images")  # no images were needed
