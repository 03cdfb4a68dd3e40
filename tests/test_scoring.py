"""Normalisation rules and metrics, with cases written from the rules (not from other tools' outputs)."""

import pytest

from qmamba_eval.scoring import gqa, mme, pope, vqa


@pytest.mark.parametrize("text,expected", [
    ("Two", "2"), ("the dog", "dog"), ("A Red Car.", "red car"), ("an apple", "apple"),
    ("none", "0"), ("ten", "10"), ("eleven", "eleven"),
    ("dont", "don't"), ("isnt it", "isn't it"), ("Im", "im"),  # lower-cased before the table: "Im" never hits
    ("yes.", "yes"), ("3.5", "3.5"), ("1.", "1"),  # period dropped unless a digit follows
    ("1,000", "1000"),  # a comma between digits: punctuation deleted, not spaced
    ("red,blue", "red blue"), ("red, blue", "red blue"),  # spaced / deleted when touching a space
    ("black/white", "black white"), ("t-shirt", "t shirt"), ("(left)", "left"),
    ("well-done, yes", "well done yes"),  # decided per mark: "," touches a space, "-" does not
    ("1,000-piece", "1000piece"),  # a digit comma anywhere: every mark is deleted
    ("  multiple   spaces ", "multiple spaces"),
])
def test_vqa_normalize(text, expected):
    assert vqa.normalize(vqa.clean_whitespace(text)) == expected


def test_period_count_quirk():
    # the official tool drops at most 32 periods (re.UNICODE passed as the count)
    assert vqa.process_punctuation("." * 40) == "." * 8


def test_soft_accuracy_leave_one_out():
    answers = ["2"] * 3 + ["3"] * 7
    # each of the 3 "2"s leaves 2 matches (2/3); each of the 7 others leaves 3 (1.0): (3*2/3 + 7)/10
    assert vqa.soft_accuracy("two", answers) == pytest.approx((3 * 2 / 3 + 7) / 10)
    assert vqa.soft_accuracy("3", answers) == pytest.approx(1.0)
    assert vqa.soft_accuracy("4", answers) == 0.0
    one = ["cat"] + ["dog"] * 9
    assert vqa.soft_accuracy("cat", one) == pytest.approx(9 * (1 / 3) / 10)


def test_identical_answers_official_vs_lmms_rule():
    answers = ["2"] * 10
    assert vqa.soft_accuracy("two", answers, rule="lmms") == 1.0
    assert vqa.soft_accuracy("two", answers, rule="official") == 0.0  # no normalisation when all agree
    assert vqa.soft_accuracy("2", answers, rule="official") == 1.0
    with pytest.raises(ValueError, match="rule"):
        vqa.soft_accuracy("2", answers, rule="x")


def test_textvqa_full_processor():
    assert vqa.full_processor("Coca-Cola's") == "coca cola 's"
    assert vqa.full_processor("What, 1,000?") == "what 1000"
    assert vqa.soft_accuracy("STOP", ["stop"] * 10, textvqa=True) == 1.0


@pytest.mark.parametrize("answer", ["", None, "x" * 5000, "\n\t"])
def test_empty_or_absurd_answers_score_zero(answer):
    assert vqa.soft_accuracy(answer, ["yes"] * 10) == 0.0
    assert gqa.exact_match(answer, "yes") == 0.0
    assert pope.parse(answer, "strict") == "other"
    assert mme.parse(answer) == "other"


def test_gqa_exact_match():
    assert gqa.exact_match("Yes.", "yes") == 1.0
    assert gqa.exact_match("the left", "left") == 0.0  # no article removal in GQA
    assert gqa.exact_match("T-shirt", "tshirt") == 1.0


@pytest.mark.parametrize("text,llava,strict", [
    ("Yes", "yes", "yes"), ("No", "no", "no"), ("yes.", "yes", "other"), ("no", "no", "no"),
    ("No, there is not.", "no", "other"), ("There is not a dog.", "no", "other"),
    ("I see no dog", "no", "other"), ("Nope", "yes", "other"), ("", "yes", "other"),
    ("Yes. But no.", "yes", "other"),  # first sentence only
    ("Yes, no", "no", "other"),  # commas dropped, then "no" is a word
])
def test_pope_parsers(text, llava, strict):
    assert pope.parse(text, "llava") == llava
    assert pope.parse(text, "strict") == strict


def test_pope_metrics_and_yes_ratio_is_predicted():
    pairs = [("yes", "yes"), ("yes", "no"), ("no", "no"), ("no", "yes"), ("yes", "yes"), ("other", "yes")]
    m = pope.metrics(pairs)
    assert m["accuracy"] == pytest.approx(3 / 6)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 4)  # "other" on a yes is a miss
    assert m["f1"] == pytest.approx(2 * (2 / 3) * (1 / 2) / (2 / 3 + 1 / 2))
    assert m["yes_ratio"] == pytest.approx(3 / 6)  # predicted yes, not ground-truth yes (4/6)
    assert pope.metrics([("no", "yes")])["f1"] == 0.0
    with pytest.raises(ValueError, match="yes/no"):
        pope.metrics([("yes", "maybe")])
    with pytest.raises(ValueError, match="parser"):
        pope.parse("yes", "loose")


@pytest.mark.parametrize("text,expected", [
    ("Yes", "yes"), ("NO", "no"), ("yes, it is", "yes"), ("No.", "no"), ("Nope", "no"),
    ("I think yes", "other"), ("not sure", "no"), ("maybe", "other"), ("y", "other"),
])
def test_mme_parse(text, expected):
    assert mme.parse(text) == expected


def test_mme_scores_acc_plus_by_image():
    rows = [("color", "1.jpg", "yes", "Yes"), ("color", "1.jpg", "no", "No"),  # image 1 both right
            ("color", "2.jpg", "yes", "Yes"), ("color", "2.jpg", "yes", "No"),  # image 2 one right
            ("code_reasoning", "a.png", "other", "Yes"), ("code_reasoning", "a.png", "no", "No")]
    s = mme.scores(rows)
    assert s["categories"]["color"]["score"] == pytest.approx(100 * 3 / 4 + 100 * 1 / 2)
    assert s["perception"] == pytest.approx(125.0)
    assert s["cognition"] == pytest.approx(100 * 1 / 2 + 0)
    assert "existence" in s["missing_categories"]
    with pytest.raises(ValueError, match="unknown MME categories"):
        mme.scores([("colour", "1.jpg", "yes", "yes")])
