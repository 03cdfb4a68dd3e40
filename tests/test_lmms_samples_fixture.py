"""A samples file exactly as lmms-eval 0.7.3 writes it (tests/fixtures/lmms_eval_0.7.3_samples_pope.jsonl, made
by its own evaluator and save_results_samples, see tests/fixtures/make_lmms_eval_samples.py), re-scored. Needs no
lmms-eval."""

import json
from pathlib import Path

import pytest

from qmamba_eval.cli import main
from qmamba_eval.rescore import detect, rescore

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SAMPLES = FIXTURES / "lmms_eval_0.7.3_samples_pope.jsonl"
REFS = FIXTURES / "lmms_eval_0.7.3_pope_refs.jsonl"
# answers (stub model): Yes, No, yes, "No.", "There is a circle.", no, Yes, "Yes, there is."
# labels:               yes, no, yes, no,    yes,                  no, yes, no


def lines():
    return [json.loads(line) for line in SAMPLES.read_text().splitlines()]


def test_fixture_has_lmms_eval_0_7_3_saved_shape():
    rows = lines()
    assert len(rows) == 8 and detect(rows) == "lmms_eval_saved"
    assert {"doc_id", "doc_hash", "target", "filtered_resps", "input", "pope_accuracy"} <= set(rows[0])
    assert "doc" not in rows[0] and "arguments" not in rows[0] and "resps" not in rows[0]


def test_fixture_rescored_per_split_and_pooled():
    m = rescore("pope", SAMPLES, REFS)["metrics"]
    # llava parser: "No." -> no, "There is a circle." -> yes, "Yes, there is." -> yes (wrong): 7 of 8
    assert m["pooled/accuracy"] == 87.5 and m["pooled/n"] == 8
    assert m["adversarial/accuracy"] == 75.0 and m["popular/accuracy"] == 100.0 and m["random/accuracy"] == 100.0
    assert m["mean/accuracy"] == pytest.approx((75.0 + 100.0 + 100.0) / 3)  # per-split mean != pooled
    assert m["pooled/yes_ratio"] == 62.5 and m["adversarial/n"] == 4


def test_fixture_strict_pooled_equals_lmms_eval_except_documented_recall():
    rows = lines()
    strict = rescore("pope", SAMPLES, REFS, options={"pope_parser": "strict"})["metrics"]
    # lmms-eval's own accuracy, from the per-sample scores it saved: exact match, 5 of 8
    assert strict["pooled/accuracy"] == pytest.approx(100 * sum(r["pope_accuracy"]["score"] for r in rows) / 8)
    assert strict["pooled/precision"] == 100.0
    # "There is a circle." (label yes) is neither yes nor no: a miss for us (3 of 4), left out by lmms-eval (3 of 3)
    assert strict["pooled/recall"] == 75.0


def test_fixture_without_references_and_through_the_cli(capsys):
    alone = rescore("pope", SAMPLES)
    assert alone["metrics"]["all/accuracy"] == alone["metrics"]["pooled/accuracy"] == 87.5
    assert main(["score", "--task", "pope", "--predictions", str(SAMPLES), "--references", str(REFS),
                 "--pope-parser", "strict", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["metrics"]["pooled/accuracy"] == 62.5  # stdout is one JSON document
