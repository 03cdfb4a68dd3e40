"""lmms-eval 0.7.3's own evaluator (``simple_evaluate``: task YAML, requests, filters, process_results,
aggregation, its samples writer) driving ``--model qmamba`` on local tasks over the embedded sample, compared with
our runner and ``rescore`` on the same answers.

- generation: a task YAML that ``include``s lmms-eval's own ``pope.yaml`` and points it at a local parquet file
  (the README's offline recipe);
- multiple choice: ``tests/lmms_tasks/qmamba_sample_pope_mc.yaml`` (Yes / No by likelihood).

Runs where lmms-eval's evaluator imports (CI installs its small extra dependencies, see .ci/run); skipped
elsewhere, or failing under QMAMBA_REQUIRE_LMMS_EVAL.
"""

import json
import os
from pathlib import Path

import pytest

if os.environ.get("QMAMBA_REQUIRE_LMMS_EVAL"):  # CI: a broken lmms-eval install must fail, not skip
    import filelock._api  # noqa: F401  (lmms-eval 0.7.3's evaluator patches it: filelock<4)
    import lmms_eval.evaluator as lmms_evaluator
else:
    lmms_evaluator = pytest.importorskip("lmms_eval.evaluator", reason="lmms-eval's evaluator does not import")
    pytest.importorskip("filelock._api", reason="lmms-eval 0.7.3's evaluator needs filelock<4")
from lmms_eval.loggers.evaluation_tracker import EvaluationTracker  # noqa: E402
from lmms_eval.tasks import TaskManager  # noqa: E402

from qmamba_eval.cli import main  # noqa: E402
from qmamba_eval.models.presets import shipped_checkpoint  # noqa: E402
from qmamba_eval.rescore import rescore  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "qmamba_eval" / "assets" / "sample"
LIMIT = 6  # the sample's rows cycle adversarial, adversarial, popular, popular, random, random: 2 per split
MODEL_ARGS = "pretrained=tiny-qmamba,device=cpu"


@pytest.fixture(autouse=True)
def offline_cache(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_datasets")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


def evaluate(task, include_path, model_args=MODEL_ARGS, batch_size=4):
    tm = TaskManager(include_path=str(include_path), include_defaults=False)
    return lmms_evaluator.simple_evaluate(model="qmamba", model_args=model_args, tasks=[task], task_manager=tm,
                                         limit=LIMIT, batch_size=batch_size, log_samples=True)


def our_run(tmp_path, *args):
    out = tmp_path / "ours"
    assert main(["--tasks", "pope", "--limit", str(LIMIT), "--output-dir", str(out), "--run-name", "r",
                 "--no-progress", "--no-plot", *args]) == 0
    samples = [json.loads(line) for line in (out / "r" / "samples_pope.jsonl").read_text().splitlines()]
    return json.loads((out / "r" / "results.json").read_text())["tasks"]["pope"]["metrics"], samples


def offline_pope_task(tmp_path):
    """README's offline recipe: include lmms-eval's pope.yaml, local parquet data, a task name of our own."""
    import datasets
    import lmms_eval

    rows = [json.loads(line) for line in (SAMPLE / "pope.jsonl").read_text().splitlines()]
    for r in rows:
        r["image"] = str(SAMPLE / "images" / r["image"])
    data = tmp_path / "data" / "pope_test.parquet"
    data.parent.mkdir()
    datasets.Dataset.from_list(rows).cast_column("image", datasets.Image()).to_parquet(str(data))
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    pope_yaml = Path(lmms_eval.__file__).parent / "tasks" / "pope" / "pope.yaml"
    (tasks / "qmamba_pope_local.yaml").write_text(
        f"include: {pope_yaml}\ntask: qmamba_pope_local\ndataset_path: parquet\n"
        f"dataset_kwargs:\n  data_files:\n    test: ../data/{data.name}\n")
    return tasks


def test_lmms_eval_generation_task_matches_our_run_and_rescore(tmp_path, lmms_log):
    tasks = offline_pope_task(tmp_path)
    res = evaluate("qmamba_pope_local", tasks, MODEL_ARGS + ",max_new_tokens=4")
    theirs = res["results"]["qmamba_pope_local"]
    samples = res["samples"]["qmamba_pope_local"]
    assert len(samples) == LIMIT

    # the bridge's log lines reach lmms-eval's logger; pope.yaml's temperature 0 / top_p 1 / num_beams 1 /
    # do_sample false are greedy already, so no ignored-kwarg warning
    text = [m for _, m in lmms_log]
    assert any("max_new_tokens=4 from --model_args, overriding the task's 128" in m for m in text)
    assert not any("is ignored" in m for m in text)
    # random weights (tiny-qmamba without shipped weights): said in lmms-eval's log and its results' model_backend
    random = shipped_checkpoint("tiny-qmamba") is None
    assert any("RANDOM weights" in m for lvl, m in lmms_log if lvl == "WARNING") == random
    assert ("random_init=True" in res["config"]["model_backend"]) == random

    # same model, prompts and token budget: our runner gives the very same answers
    ours, our_samples = our_run(tmp_path, "--max-new-tokens", "4")
    lmms_answers = {s["doc"]["question_id"]: s["filtered_resps"][0] for s in samples}
    assert lmms_answers == {s["question_id"]: s["answer"] for s in our_samples}

    # lmms-eval's samples file as its CLI writes it, re-scored: our default options reproduce our own run ...
    tracker = EvaluationTracker(output_path=str(tmp_path / "lmms_out"))
    tracker.general_config_tracker.model_name_sanitized = "tiny-qmamba"
    tracker.date_id = "e2e"
    tracker.save_results_samples("qmamba_pope_local", samples)
    saved = tmp_path / "lmms_out" / "tiny-qmamba" / "e2e_samples_qmamba_pope_local.jsonl"
    again = rescore("pope", saved, SAMPLE / "pope.jsonl")
    assert again["metrics"] == pytest.approx(ours)
    # ... and the strict parser (exact yes/no, as lmms-eval) pooled over all questions gives lmms-eval's numbers
    strict = rescore("pope", saved, SAMPLE / "pope.jsonl", options={"pope_parser": "strict"})["metrics"]
    for ours_key, their_key in (("accuracy", "pope_accuracy"), ("precision", "pope_precision")):
        assert strict[f"pooled/{ours_key}"] == pytest.approx(100 * theirs[f"{their_key},none"]), ours_key
    # recall and F1 too, unless an answer to a "yes" question is neither yes nor no (a miss for us, left out of
    # the recall denominator by lmms-eval: the documented difference)
    labels = {r["question_id"]: r["answer"] for r in map(json.loads, (SAMPLE / "pope.jsonl").read_text().splitlines())}
    if all(a.strip().lower() in ("yes", "no") for q, a in lmms_answers.items() if labels[q] == "yes"):
        assert strict["pooled/recall"] == pytest.approx(100 * theirs["pope_recall,none"])
        assert strict["pooled/f1"] == pytest.approx(100 * theirs["pope_f1_score,none"])
    else:
        assert strict["pooled/recall"] <= 100 * theirs["pope_recall,none"]
    # intended difference: lmms-eval's yes-ratio is the ground truth's (the sample is balanced)
    assert theirs["pope_yes_ratio,none"] == pytest.approx(0.5)


def test_lmms_eval_multiple_choice_task_matches_our_likelihood_mode(tmp_path, lmms_log):
    res = evaluate("qmamba_sample_pope_mc", ROOT / "tests" / "lmms_tasks", batch_size=8)
    acc = res["results"]["qmamba_sample_pope_mc"]["acc,none"]
    samples = res["samples"]["qmamba_sample_pope_mc"]
    assert len(samples) == LIMIT

    ours, our_samples = our_run(tmp_path, "--answer-mode", "likelihood")
    assert ours["pooled/accuracy"] == pytest.approx(100 * acc)
    by_id = {s["question_id"]: s for s in our_samples}
    from PIL import Image

    from qmamba_eval.models import build_model

    model = build_model("tiny-qmamba")
    images = [Image.open(SAMPLE / "images" / s["doc"]["image"]).convert("RGB") for s in samples]
    logp = model.score_options(images, [s["arguments"][0] for s in samples], ["Yes", "No"])  # the context
    for s, (yes, no) in zip(samples, logp.tolist()):
        (loss_yes, _), (loss_no, _) = s["filtered_resps"]
        # the losses lmms-eval took argmin over are our summed log-probabilities of "Yes" / "No", negated ...
        assert (-loss_yes, -loss_no) == pytest.approx((yes, no), abs=1e-4)
        # ... so lmms-eval's per-question verdict is our likelihood mode's
        assert s["acc"] == by_id[s["doc"]["question_id"]]["score"], s["doc"]["question_id"]
