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


R = "data/llava_replay"


@pytest.mark.parametrize("references", ["gqa", "gqa/testdev_balanced_questions.json"])
def test_gqa_llava_replay(references):
    """Published 63.3: LLaVA's rule (strip a final period, lower-case, then GQA's exact match) gives 7,963 / 12,578;
    lmms-eval's rule (our default) gives the same on these answers; GQA's eval.py as is gives 0 (LLaVA's answers
    are capitalised and the conversion script lower-cases them before eval.py sees them)."""
    answers = shared_path(R, "gqa/gqa_answers_llava-v1.5-13b.jsonl")
    refs = shared_path(R, references)
    llava = rescore("gqa", answers, refs, options={"gqa_rule": "llava"})
    assert llava["n_samples"] == 12578 and llava["options"]["gqa_rule"] == "llava"
    assert round(llava["metrics"]["accuracy"], 3) == 63.309
    default = rescore("gqa", answers, refs)
    assert default["options"]["gqa_rule"] == "lmms" and round(default["metrics"]["accuracy"], 2) == 63.31
    assert rescore("gqa", answers, refs, options={"gqa_rule": "official"})["metrics"]["accuracy"] < 1.0


@pytest.mark.parametrize("references", ["textvqa", "textvqa/TextVQA_0.5.1_val.json"])
def test_textvqa_llava_replay(references):
    """Published 61.3: answers keyed by image id, joined on (image id, question from the prompt) as LLaVA does."""
    res = rescore("textvqa", shared_path(R, "textvqa/textvqa_answers_llava-v1.5-13b.jsonl"), shared_path(R, references))
    assert res["n_samples"] == 5000 and round(res["metrics"]["accuracy"], 3) == 61.254
    assert "n_nonstandard_answer_lists" not in res["metrics"]
