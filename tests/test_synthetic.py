"""The synthetic visual-QA generator: deterministic, each benchmark's schema, disjoint splits, the shipped sample."""

import json

import pytest

from qmamba_eval import synthetic
from qmamba_eval.data.sources import SAMPLE_DIR, load_docs
from qmamba_eval.tasks import all_tasks, get_task


@pytest.fixture(scope="module")
def small():
    return synthetic.generate("test", seed=0, scale="small")


def test_generation_is_deterministic_rows_and_pixels(small):
    again = synthetic.generate("test", seed=0, scale="small")
    assert again.rows == small.rows and again.targets == small.targets
    assert [s.image.tobytes() for s in again.scenes] == [s.image.tobytes() for s in small.scenes]
    other = synthetic.generate("test", seed=1, scale="small")
    assert other.rows != small.rows


def test_every_task_has_its_schema_and_prompt(small):
    tasks = all_tasks()
    styles = synthetic.task_styles()
    assert set(styles) == set(small.rows) >= {"vqav2", "gqa", "textvqa", "pope", "mme"}
    assert set(styles.values()) == set(synthetic.STYLES)  # every style used, every task's style known
    for name, rows in small.rows.items():
        task = tasks[name]
        assert rows and len(rows) == len(small.targets[name])
        task.check_columns(set(rows[0]), f"synthetic {name}")
        for r in rows:
            assert set(task.required_columns) <= set(r)
            assert task.prompt(r) and r["image"] in small.images()
        for r, target in zip(rows, small.targets[name]):  # the training target scores full marks
            refs = task.hooks.references(r)
            assert task.hooks.score_one(target, refs, task_opts(task))[1] == 1.0


def task_opts(task):
    return {k: spec["default"] for k, spec in task.options.items()}


def test_style_specifics(small):
    pope = small.rows["pope"]
    assert {r["category"] for r in pope} == set(synthetic.NEGATIVE_SAMPLING)
    assert sum(r["answer"] == "yes" for r in pope) == sum(r["answer"] == "no" for r in pope)
    adversarial = [r for r in pope if r["category"] == "adversarial" and r["answer"] == "no"]
    rand = [r for r in pope if r["category"] == "random" and r["answer"] == "no"]
    assert [r["question"] for r in adversarial] != [r["question"] for r in rand]
    assert all(len(r["answers"]) == 10 for r in small.rows["vqav2"])
    assert {r["answer_type"] for r in small.rows["vqav2"]} == {"other", "number", "yes/no"}
    assert all(len(r["answer"].split()) == 1 for r in small.rows["gqa"])
    assert all(r["ocr_tokens"] and len(r["answers"]) == 10 for r in small.rows["textvqa"])
    mme = small.rows["mme"]
    per_image = {}
    for r in mme:
        per_image.setdefault(r["question_id"], []).append(r["answer"])
    assert all(sorted(a) == ["No", "Yes"] for a in per_image.values())
    assert {r["category"] for r in mme} >= {"existence", "count", "position", "color", "OCR",
                                            "numerical_calculation"}
    assert all(cap for _, cap in small.captions())


def test_splits_never_share_a_scene():
    test = synthetic.signatures("test")
    val = synthetic.signatures("val")
    train = synthetic.signatures("train", scale=(400, 120, 40))
    assert test and val and train
    assert not (test & val) and not (test & train) and not (val & train)
    assert synthetic.signatures("test", scale="sample") <= test  # the sample is the test split's head


def test_the_shipped_sample_is_the_generator_output(tmp_path):
    data = synthetic.generate("test", seed=0, scale="sample")
    data.write(tmp_path)
    meta = json.loads((SAMPLE_DIR / "synthetic.json").read_text())
    assert meta["seed"] == 0 and "NOT benchmark" in meta["note"]
    for name in data.rows:
        assert (SAMPLE_DIR / f"{name}.jsonl").read_text() == (tmp_path / f"{name}.jsonl").read_text()
        rows, info = load_docs(get_task(name), "sample")
        assert info.is_sample and len(rows) == len(data.rows[name])
