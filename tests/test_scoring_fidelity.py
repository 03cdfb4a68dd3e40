"""Fidelity to the official tools (issue 8, part 1): cases where the tools disagree, with hand-worked values.

Expected values are computed by hand from the tools' rules (the arithmetic is in the comments); where lmms-eval
0.7.3 is installed, its own functions are run on the same inputs as a second witness (those tests skip without it).
"""

import importlib
import os
import random
import re

import pytest

from qmamba_eval.scoring import gqa, mme, pope, vqa

# -- VQA: the digit-comma rule -------------------------------------------------------------------------


@pytest.mark.parametrize("text,official,lmms", [
    # vqaEval.py: (\d)(\,)(\d) finds no single comma between digits, and "," touches no space -> spaced
    ("98,,291", "98 291", "98291"),  # EvalAI's (?<=\d),+(?=\d) matches the run -> every mark deleted
    ("98,291", "98291", "98291"),  # one comma between digits: both delete
    ("1,000,,5", "10005", "10005"),  # "1,0" is enough for vqaEval's search
    ("x,,y 3,,4", "x y 3 4", "xy 34"),  # only a run between digits: spaced officially, deleted by EvalAI
    ("98,,291-piece", "98 291 piece", "98291piece"),  # the comma test decides every mark, "-" included
    ("4,,5, yes", "45 yes", "45 yes"),  # ", " touches a space: "," deleted under both rules
    ("3,,", "3", "3"),  # no digit after the run: spaced, then the trailing space goes in the split
    (",,7", "7", "7"),
    ("7,,,8", "7 8", "78"),
])
def test_digit_comma_rule(text, official, lmms):
    assert vqa.normalize(text, rule="official") == official
    assert vqa.normalize(text, rule="lmms") == lmms
    assert vqa.normalize(text) == lmms  # lmms stays the default


def test_issue_example_98_291():
    answers = ["98,291"] * 3 + ["98,,291"] * 7
    # official: answers differ, so all are normalised: 3 x "98291", 7 x "98 291"; prediction "98291".
    #   each "98291" left out leaves 2 matches -> min(1, 2/3); each "98 291" left out leaves 3 -> 1
    #   (3 * 2/3 + 7 * 1) / 10 = 9/10
    assert vqa.soft_accuracy("98,291", answers, rule="official") == pytest.approx(0.9)
    # lmms: all ten become "98291"; each left out leaves 9 matches -> 1
    assert vqa.soft_accuracy("98,291", answers, rule="lmms") == 1.0
    # the prediction "98,,291" -> official "98 291": 7 matching answers, each leaves 6, the 3 others leave 7
    assert vqa.soft_accuracy("98,,291", answers, rule="official") == 1.0
    # one "98,,291" among nine "98291": official (9 * min(1, 8/3) + 1 * min(1, 9/3)) / 10 = 1 for "98291" ...
    assert vqa.soft_accuracy("98291", ["98,,291"] + ["98291"] * 9, rule="official") == 1.0
    # ... and the prediction "98,,291" matches only the lone one: 9 positions leave 1 -> 1/3, itself leaves 0
    #   (9 * 1/3 + 0) / 10 = 0.3 officially; lmms: everything is "98291" -> 1
    assert vqa.soft_accuracy("98,,291", ["98,,291"] + ["98291"] * 9, rule="official") == pytest.approx(0.3)
    assert vqa.soft_accuracy("98,,291", ["98,,291"] + ["98291"] * 9, rule="lmms") == 1.0


def test_official_identical_answers_compare_unnormalised():
    # vqaEval.py normalises neither side when the (whitespace-cleaned) answers are all identical
    assert vqa.soft_accuracy("98,,291", ["98,,291"] * 10, rule="official") == 1.0
    assert vqa.soft_accuracy("98,291", ["98,,291"] * 10, rule="official") == 0.0
    assert vqa.soft_accuracy(" 98,,291\n", ["98,,291\t"] * 10, rule="official") == 1.0  # whitespace still cleaned
    assert vqa.soft_accuracy("98,291", ["98,,291"] * 10, rule="lmms") == 1.0


def test_process_punctuation_rule_argument():
    assert vqa.process_punctuation("98,,291", "official") == "98  291"  # spaced per comma, joined later
    assert vqa.process_punctuation("98,,291") == "98291"
    assert vqa.process_punctuation("." * 40, "official") == "." * 8  # the 32-period cap holds under both
    with pytest.raises(ValueError, match="rule"):
        vqa.process_punctuation("x", "vqa")


# -- VQA: answer lists whose length is not 10 ----------------------------------------------------------


@pytest.mark.parametrize("rule", vqa.RULES)
@pytest.mark.parametrize("pred,answers,expected", [
    ("cat", ["cat"], 0.0),  # one answer: leaving it out leaves no others -> min(1, 0/3) = 0
    ("cat", ["cat", "cat"], 1 / 3),  # each leaves 1 match: (1/3 + 1/3) / 2
    ("cat", ["cat", "cat", "dog"], 4 / 9),  # (1/3 + 1/3 + 2/3) / 3
    ("cat", ["cat"] * 4, 1.0),  # each leaves 3 -> 1
    ("red", ["red"] * 3 + ["blue"] * 8, 10 / 11),  # (3 * 2/3 + 8 * 1) / 11
    ("dog", ["cat"] * 5, 0.0),
])
def test_any_length_uses_the_official_arithmetic(rule, pred, answers, expected):
    assert vqa.soft_accuracy(pred, answers, rule=rule) == pytest.approx(expected)


def test_textvqa_single_answer_scores_zero():
    assert vqa.soft_accuracy("stop", ["stop"], textvqa=True) == 0.0
    assert vqa.soft_accuracy("stop", ["STOP", "stop"], textvqa=True) == pytest.approx(1 / 3)


def test_nonstandard_answer_lists_are_counted():
    lists = [["a"] * 10, ["a"], None, ["a"] * 11, [], ["b"] * 10, ["a", "b"]]
    assert vqa.count_nonstandard_answer_lists(lists) == 4  # 1, 11, 0 and 2 answers; None is an unscored question
    assert vqa.answer_list_warnings(iter(lists)) == {"n_nonstandard_answer_lists": 4}
    assert vqa.answer_list_warnings([["a"] * 10, None]) == {}
    assert vqa.is_standard_answer_list(["x"] * 10) and not vqa.is_standard_answer_list(["x"] * 9)
    with pytest.raises(ValueError, match="at least one"):
        vqa.soft_accuracy("a", [])


# -- GQA: three rules -----------------------------------------------------------------------------------


@pytest.mark.parametrize("pred,answer,lmms,official,llava", [
    ("yes", "yes", 1, 1, 1),
    ("Yes", "yes", 1, 0, 1),  # official compares the string as it is
    ("Yes.", "yes", 1, 0, 1),
    ("yes...", "yes", 1, 0, 1),  # LLaVA: rstrip('.') removes every trailing period
    ("y.e.s", "yes", 1, 0, 0),  # only lmms removes inner punctuation
    ("yes!", "yes", 1, 0, 0),
    (" yes", "yes", 1, 0, 1),  # LLaVA's generations are stripped before conversion
    ("yes.\n", "yes", 1, 0, 1),
    ("T-Shirt", "t-shirt", 1, 0, 1),
    ("T-Shirt", "tshirt", 1, 0, 0),
    ("the  cat", "the cat", 1, 0, 0),  # lmms (ours) collapses whitespace; LLaVA keeps inner spaces
    ("left", "Left", 1, 0, 0),  # the gold answer is left as it is by eval.py and LLaVA
    ("", "", 1, 1, 1),
    (None, "yes", 0, 0, 0),
])
def test_gqa_rules(pred, answer, lmms, official, llava):
    assert gqa.exact_match(pred, answer) == lmms  # lmms is the default
    assert gqa.exact_match(pred, answer, rule="lmms") == lmms
    assert gqa.exact_match(pred, answer, rule="official") == official
    assert gqa.exact_match(pred, answer, rule="llava") == llava


def test_gqa_normalize_and_unknown_rule():
    assert gqa.normalize(" T-Shirt.. ", "official") == " T-Shirt.. "
    assert gqa.normalize(" T-Shirt.. ", "llava") == "t-shirt"
    assert gqa.normalize(" T-Shirt.. ") == "tshirt"
    assert gqa.RULES == ("lmms", "official", "llava")
    with pytest.raises(ValueError, match="GQA rule"):
        gqa.exact_match("yes", "yes", rule="vqa")


# -- MME: images with a number of questions other than two --------------------------------------------


def test_mme_irregular_images():
    rows = [("color", "1.jpg"), ("color", "1.jpg"), ("color", "2.jpg"),
            ("OCR", "1.jpg"), ("OCR", "1.jpg"), ("OCR", "1.jpg"), ("OCR", "3.jpg"), ("OCR", "3.jpg")]
    # the same file name in two categories is two images
    assert mme.irregular_images(rows) == {("OCR", "1.jpg"): 3, ("color", "2.jpg"): 1}
    assert mme.irregular_image_warnings(iter(rows)) == {"n_images_not_two_questions": 2}
    assert mme.irregular_image_warnings(rows[:2]) == {}


def test_mme_single_question_image_still_scores():
    # an image with one right answer counts for acc+ (calculation.py would refuse it; the warning says so)
    s = mme.scores([("color", "1.jpg", "yes", "yes"), ("color", "1.jpg", "no", "no"), ("color", "2.jpg", "yes", "yes")])
    assert s["categories"]["color"]["acc_plus"] == 1.0 and s["categories"]["color"]["images"] == 2


@pytest.mark.parametrize("text", ["  yes", "\n\nyes", "   no", "y.e.s", "...yes", "n.o"])
def test_mme_whitespace_and_periods_are_other(text):
    # the first 4 characters, lower-cased, hold neither "yes" nor "no"
    assert mme.parse(text) == "other"


@pytest.mark.parametrize("text,expected", [("Yes.", "yes"), ("No.", "no"), (" no", "no"), ("  no", "no")])
def test_mme_near_misses_that_parse(text, expected):
    assert mme.parse(text) == expected  # " no"[:4] and "  no"[:4] still hold "no"


# -- provenance ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("module,needles", [
    (vqa, ["vqaEval.py", "a013f0043c1e2cdc995922dfe257f7149aa9af06", "lmms-eval 0.7.3", "c46b3b3"]),
    (gqa, ["eval.py", "lmms-eval 0.7.3", "convert_gqa_for_eval.py", "a689fd8"]),
    (pope, ["eval_pope.py", "4241f08", "lmms-eval 0.7.3"]),
    (mme, ["calculation.py", "lmms-eval 0.7.3"]),
])
def test_each_module_names_its_tools(module, needles):
    for needle in needles:
        assert needle in module.__doc__, (module.__name__, needle)


# -- second witness: lmms-eval 0.7.3's own functions (skipped where it is not installed) ----------------

def _lmms(module):
    """lmms-eval's module; in CI (QMAMBA_REQUIRE_LMMS_EVAL) a missing install fails instead of skipping."""
    if os.environ.get("QMAMBA_REQUIRE_LMMS_EVAL"):
        return importlib.import_module(module)
    return pytest.importorskip(module, reason="lmms-eval not installed")


rng = random.Random(8)
ALPHABET = ["9", "8", "1", ",", ",", ",", " ", "-", ".", "a", "b", "(", ")", "?", "'", "/"]


def _fuzz(k):
    return "".join(rng.choice(ALPHABET) for _ in range(k))


def test_official_punctuation_equals_evalai_loop_with_vqaeval_comma_regex():
    vm = _lmms("lmms_eval.tasks._task_utils.vqa_eval_metric")

    class VQAEvalProcessor(vm.EvalAIAnswerProcessor):
        # vqaEval.py's processPunctuation is the same loop over the same marks, with this comma regex
        COMMA_STRIP = re.compile(r"(\d)(\,)(\d)")

    theirs_official, theirs_lmms = VQAEvalProcessor(), vm.EvalAIAnswerProcessor()
    differ = 0
    for _ in range(3000):
        t = _fuzz(rng.randint(1, 12))
        assert vqa.process_punctuation(t, "official") == theirs_official.process_punctuation(t), t
        assert vqa.process_punctuation(t, "lmms") == theirs_lmms.process_punctuation(t), t
        differ += vqa.process_punctuation(t, "official") != vqa.process_punctuation(t, "lmms")
    assert differ > 0  # the fuzz does reach the cases where the two rules part


def test_any_length_matches_lmms_eval():
    u = _lmms("lmms_eval.tasks.vqav2.utils")
    t = _lmms("lmms_eval.tasks.textvqa.utils")
    words = ["cat", "Cat.", "dog", "98,,291", "98,291", "two", "2"]
    for _ in range(300):
        n = rng.randint(1, 12)
        answers = [rng.choice(words) for _ in range(n)]
        pred = rng.choice(words)
        doc = {"question_id": 1, "answers": [{"answer": a, "answer_id": i + 1} for i, a in enumerate(answers)]}
        assert vqa.soft_accuracy(pred, answers) == pytest.approx(u.vqav2_process_results(doc, [pred])["exact_match"])
        theirs = t.textvqa_process_results({"question_id": 1, "answers": list(answers)}, [pred])["exact_match"]
        assert vqa.soft_accuracy(pred, answers, textvqa=True) == pytest.approx(theirs)


def test_mme_lmms_eval_reads_these_as_yes_no():
    u = _lmms("lmms_eval.tasks.mme.utils")
    for text, theirs in [("  yes", "yes"), ("\n\nyes", "yes"), ("y.e.s", "yes"), ("...yes", "yes"), ("n.o", "no")]:
        assert mme.parse(text) == "other" and u.parse_pred_ans(text) == theirs


def test_gqa_lmms_rule_matches_lmms_eval_metric():
    m = _lmms("lmms_eval.api.metrics")
    for pred, ref in [("Yes.", "yes"), ("y.e.s", "yes"), ("T-Shirt", "tshirt"), ("left", "Left"), ("no", "yes")]:
        theirs = m.exact_match_hf_evaluate([pred], [ref], ignore_case=True, ignore_punctuation=True)["exact_match"]
        assert gqa.exact_match(pred, ref, rule="lmms") == theirs, (pred, ref)
