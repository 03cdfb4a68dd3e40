r"""VQA soft accuracy (VQAv2, TextVQA) under two normalisation rules, each following one tool.

``rule="official"`` follows the VQA evaluation tool, GT-Vision-Lab/VQA
``PythonEvaluationTools/vqaEvaluation/vqaEval.py`` at commit a013f0043c1e2cdc995922dfe257f7149aa9af06 (the master
version lmms-eval's PR #760 cites; the earlier c4e6a0e normalised the prediction always and the answers by
punctuation only):
* prediction and answers: newlines and tabs become spaces, then ``strip()``;
* only when the answers are not all identical (``len(set(answers)) > 1``) are the prediction and the answers
  normalised (``processPunctuation`` then ``processDigitArticle``); otherwise they are compared as they are;
* ``processPunctuation``: if the text contains a comma *between two digits* -- ``re.search(r"(\d)(\,)(\d)")`` on
  the whole text, so "1,000" counts but "98,,291" does not -- every mark of ; / [ ] " { } ( ) = + \ _ - > < @ ` , ? !
  is deleted; otherwise each mark is deleted when it touches a space in the input (``p + " "`` or ``" " + p``)
  and replaced by a space when it does not.  Then ``re.sub(r"(?!<=\d)(\.)(?!\d)", "", text, re.UNICODE)``: a
  period not followed by a digit is dropped, at most 32 of them (the tool passes re.UNICODE as the *count*);
* ``processDigitArticle``: lower-case, split on whitespace, number words zero..ten (and "none") -> digits,
  articles a/an/the dropped, the contractions table applied word by word, joined with single spaces.

``rule="lmms"`` (default) follows lmms-eval 0.7.3 ``tasks/vqav2/utils.py`` with its ``EvalAIAnswerProcessor``
(``tasks/_task_utils/vqa_eval_metric.py``, copied from facebookresearch/mmf c46b3b3 ``processors.py``): the same
steps, except that prediction and answers are always normalised, and the digit-comma test is
``(?<=\d)(\,)+(?=\d)``, which also matches runs of commas ("98,,291" -> every mark deleted -> "98291").

Accuracy (both rules, and the VQA paper): for each human answer *by position* (each carries its own answer_id),
min(1, matches among the other answers / 3), averaged over the answers.  VQAv2 and TextVQA have 10 answers; for
any other length the same arithmetic is used, as vqaEval.py and lmms-eval do (one answer leaves zero others:
the score is 0 whatever the prediction).  Such questions are counted by ``count_nonstandard_answer_lists`` /
``answer_list_warnings`` so that an aggregate can report them.

TextVQA (``textvqa=True``) follows lmms-eval 0.7.3 ``tasks/textvqa/utils.py``, i.e. the whole EvalAI / m4c
processor (mmf ``EvalAIAnswerProcessor.__call__``: lower-case, drop "," and "?", split "'s", then the ``lmms``
rules) on prediction and answers.  The m4c ``TextVQAAccuracyEvaluator`` asserts exactly 10 answers; we score
other lengths like lmms-eval and count them instead.
"""

from __future__ import annotations

import re
from typing import Iterable, Sequence

PUNCTUATION = [";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!"]
# The digit-comma test that decides "delete every mark" (searched on the whole input text):
DIGIT_COMMA_EVALAI = re.compile(r"(?<=\d)(\,)+(?=\d)")  # lmms-eval / mmf / EvalAI: runs of commas count too
DIGIT_COMMA_VQA = re.compile(r"(\d)(\,)(\d)")  # vqaEval.py: exactly one comma between two digits
PERIOD_NOT_BEFORE_DIGIT = re.compile(r"(?!<=\d)(\.)(?!\d)")
NUMBER_WORDS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
                "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
ARTICLES = frozenset({"a", "an", "the"})
# The VQA tool's contractions table (data): written form without apostrophes -> canonical form.
CONTRACTIONS = dict(pair.split("=") for pair in """
aint=ain't arent=aren't cant=can't couldve=could've couldnt=couldn't couldn'tve=couldn't've couldnt've=couldn't've
didnt=didn't doesnt=doesn't dont=don't hadnt=hadn't hadnt've=hadn't've hadn'tve=hadn't've hasnt=hasn't
havent=haven't hed=he'd hed've=he'd've he'dve=he'd've hes=he's howd=how'd howll=how'll hows=how's
Id've=I'd've I'dve=I'd've Im=I'm Ive=I've isnt=isn't itd=it'd itd've=it'd've it'dve=it'd've itll=it'll
let's=let's maam=ma'am mightnt=mightn't mightnt've=mightn't've mightn'tve=mightn't've mightve=might've
mustnt=mustn't mustve=must've neednt=needn't notve=not've oclock=o'clock oughtnt=oughtn't ow's'at='ow's'at
'ows'at='ow's'at 'ow'sat='ow's'at shant=shan't shed've=she'd've she'dve=she'd've she's=she's
shouldve=should've shouldnt=shouldn't shouldnt've=shouldn't've shouldn'tve=shouldn't've somebody'd=somebodyd
somebodyd've=somebody'd've somebody'dve=somebody'd've somebodyll=somebody'll somebodys=somebody's
someoned=someone'd someoned've=someone'd've someone'dve=someone'd've someonell=someone'll someones=someone's
somethingd=something'd somethingd've=something'd've something'dve=something'd've somethingll=something'll
thats=that's thered=there'd thered've=there'd've there'dve=there'd've therere=there're theres=there's
theyd=they'd theyd've=they'd've they'dve=they'd've theyll=they'll theyre=they're theyve=they've twas='twas
wasnt=wasn't wed've=we'd've we'dve=we'd've weve=we've werent=weren't whatll=what'll whatre=what're
whats=what's whatve=what've whens=when's whered=where'd wheres=where's whereve=where've whod=who'd
whod've=who'd've who'dve=who'd've wholl=who'll whos=who's whove=who've whyll=why'll whyre=why're whys=why's
wont=won't wouldve=would've wouldnt=wouldn't wouldnt've=wouldn't've wouldn'tve=wouldn't've yall=y'all
yall'll=y'all'll y'allll=y'all'll yall'd've=y'all'd've y'alld've=y'all'd've y'all'dve=y'all'd've youd=you'd
youd've=you'd've you'dve=you'd've youll=you'll youre=you're youve=you've""".split())
RULES = ("lmms", "official")
STANDARD_ANSWER_COUNT = 10


def clean_whitespace(text: str) -> str:
    return text.replace("\n", " ").replace("\t", " ").strip()


def _check_rule(rule: str) -> None:
    if rule not in RULES:
        raise ValueError(f"unknown VQA normalisation rule {rule!r}; choose from {RULES}")


def process_punctuation(text: str, rule: str = "lmms") -> str:
    """The punctuation step; ``rule`` picks the digit-comma test (see the module docstring)."""
    _check_rule(rule)
    digit_comma = DIGIT_COMMA_VQA if rule == "official" else DIGIT_COMMA_EVALAI
    delete_all = digit_comma.search(text) is not None
    out = text
    for p in PUNCTUATION:
        touches_space = (p + " ") in text or (" " + p) in text
        out = out.replace(p, "" if touches_space or delete_all else " ")
    return PERIOD_NOT_BEFORE_DIGIT.sub("", out, count=32)


def process_digit_article(text: str) -> str:
    words = [NUMBER_WORDS.get(w, w) for w in text.lower().split()]
    return " ".join(CONTRACTIONS.get(w, w) for w in words if w not in ARTICLES)


def normalize(text: str, rule: str = "lmms") -> str:
    return process_digit_article(process_punctuation(text, rule))


def full_processor(text: str) -> str:
    """EvalAI's whole processor (TextVQA): tokenise, then punctuation and digit/article rules."""
    text = text.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()
    return normalize(clean_whitespace(text))


def soft_accuracy(prediction: str, answers: Sequence[str], rule: str = "lmms", textvqa: bool = False) -> float:
    """VQA accuracy of one prediction against its human answers, leave-one-out by position, for any number
    of answers (10 in VQAv2 / TextVQA; a single answer scores 0 as in vqaEval.py and lmms-eval)."""
    _check_rule(rule)
    if not answers:
        raise ValueError("a VQA question needs at least one reference answer")
    if textvqa:
        pred, refs = full_processor(prediction or ""), [full_processor(a) for a in answers]
    else:
        pred, refs = clean_whitespace(prediction or ""), [clean_whitespace(a) for a in answers]
        if rule == "lmms" or len(set(refs)) > 1:
            pred, refs = normalize(pred, rule), [normalize(a, rule) for a in refs]
    n = len(refs)
    total = 0.0
    for i in range(n):
        matches = sum(1 for j in range(n) if j != i and refs[j] == pred)
        total += min(1.0, matches / 3.0)
    return total / n


def is_standard_answer_list(answers: Sequence[str] | None) -> bool:
    """True for a list of exactly STANDARD_ANSWER_COUNT answers, and for None (an unscored test question)."""
    return answers is None or len(answers) == STANDARD_ANSWER_COUNT


def count_nonstandard_answer_lists(answer_lists: Iterable[Sequence[str] | None]) -> int:
    """How many questions have a reference list whose length is not 10 (unscored questions, None, excluded)."""
    return sum(1 for answers in answer_lists if not is_standard_answer_list(answers))


def answer_list_warnings(answer_lists: Iterable[Sequence[str] | None]) -> dict:
    """Aggregate-side helper: ``{"n_nonstandard_answer_lists": k}`` when k > 0 questions have a reference list
    whose length is not 10 (scored with the same arithmetic, but not comparable to the official tools'
    assumption), else ``{}``."""
    k = count_nonstandard_answer_lists(answer_lists)
    return {"n_nonstandard_answer_lists": k} if k else {}
