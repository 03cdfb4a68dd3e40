"""LLaVA-1.5-13B's published answer files re-scored: POPE F1 and MME totals must match the published numbers."""

import pytest

from qmamba_eval.rescore import rescore
from tests.conftest import shared_path


def test_pope_llava_replay():
    res = rescore("pope", shared_path("data/llava_replay/pope_answers_llava-v1.5-13b.jsonl"),
                  shared_path("data/pope"), shared_path("data/llava_replay/llava_pope_test.jsonl"))
    m = res["metrics"]
    assert [round(m[f"{s}/f1"], 2) for s in ("adversarial", "popular", "random")] == [84.46, 86.25, 87.14]
    assert round(m["mean/f1"], 2) == 85.95
    assert m["random/n"] == 2910 and res["options"]["pope_parser"] == "llava"
    strict = rescore("pope", shared_path("data/llava_replay/pope_answers_llava-v1.5-13b.jsonl"),
                     shared_path("data/pope"), shared_path("data/llava_replay/llava_pope_test.jsonl"),
                     {"pope_parser": "strict"})
    assert strict["options"]["pope_parser"] == "strict"
    assert strict["metrics"]["mean/f1"] <= m["mean/f1"] + 1e-9


def test_mme_llava_replay():
    res = rescore("mme", shared_path("data/llava_replay/mme_answers_llava-v1.5-13b.jsonl"),
                  shared_path("data/llava_replay/mme_ground_truth"))
    assert round(res["metrics"]["perception"], 1) == 1531.3
    assert round(res["metrics"]["cognition"], 1) == 295.4
    assert res["n_samples"] == 2374


def test_pope_label_count_mismatch_is_reported(tmp_path):
    import json

    src = shared_path("data/pope")
    for s in ("adversarial", "popular", "random"):
        lines = (src / f"coco_pope_{s}.json").read_text().splitlines()
        if s == "random":
            lines = lines[:-5]
        (tmp_path / f"coco_pope_{s}.json").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match="2,910"):
        rescore("pope", shared_path("data/llava_replay/pope_answers_llava-v1.5-13b.jsonl"), tmp_path,
                shared_path("data/llava_replay/llava_pope_test.jsonl"))
    assert json.loads((tmp_path / "coco_pope_random.json").read_text().splitlines()[0])["question_id"] == 1
