"""VQA soft accuracy with the EvalAI answer normalisation (VQAv2, TextVQA).

Rules (from the VQA evaluation tool as run by EvalAI):
* punctuation: each of ; / [ ] " { } ( ) = + \\ _ - > < @ ` , ? ! is deleted when it touches a space or when
  the text has a comma between digits (so "1,000" -> "1000"), otherwise it becomes a space;
* a period not followed by a digit is dropped (the tool passes re.UNICODE as the *count*, so at most 32);
* lower-case, number words zero..ten (and "none") -> digits, articles a/an/the dropped, the contractions
  table applied word by word;
* accuracy of a prediction: for each of the 10 human answers (by position -- each carries its own answer_id),
  min(1, matches among the other 9 / 3), averaged over the 10.

``rule="lmms"`` (default, lmms-eval 0.7.3 VQAv2) normalises prediction and answers always;
``rule="official"`` (the VQA tool) only when the answers are not all identical.
TextVQA (``full_processor=True``) also lower-cases, drops "," and "?" and splits "'s" before the rules.
"""

from __future__ import annotations

import re
from typing import Sequence

PUNCTUATION = [";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!"]
DIGIT_COMMA = re.compile(r"(?<=\d),+(?=\d)")
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


def clean_whitespace(text: str) -> str:
    return text.replace("\n", " ").replace("\t", " ").strip()


def process_punctuation(text: str) -> str:
    has_digit_comma = DIGIT_COMMA.search(text) is not None
    out = text
    for p in PUNCTUATION:
        touches_space = (p + " ") in text or (" " + p) in text
        out = out.replace(p, "" if touches_space or has_digit_comma else " ")
    return PERIOD_NOT_BEFORE_DIGIT.sub("", out, count=32)


def process_digit_article(text: str) -> str:
    words = [NUMBER_WORDS.get(w, w) for w in text.lower().split()]
    return " ".join(CONTRACTIONS.get(w, w) for w in words if w not in ARTICLES)


def normalize(text: str) -> str:
    return process_digit_article(process_punctuation(text))


def full_processor(text: str) -> str:
    """EvalAI's whole processor (TextVQA): tokenise, then punctuation and digit/article rules."""
    text = text.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()
    return normalize(clean_whitespace(text))


def soft_accuracy(prediction: str, answers: Sequence[str], rule: str = "lmms", textvqa: bool = False) -> float:
    """VQA accuracy of one prediction against its human answers (usually 10), leave-one-out by position."""
    if rule not in RULES:
        raise ValueError(f"unknown VQA normalisation rule {rule!r}; choose from {RULES}")
    if not answers:
        raise ValueError("a VQA question needs at least one reference answer")
    if textvqa:
        pred, refs = full_processor(prediction or ""), [full_processor(a) for a in answers]
    else:
        pred, refs = clean_whitespace(prediction or ""), [clean_whitespace(a) for a in answers]
        if rule == "lmms" or len(set(refs)) > 1:
            pred, refs = normalize(pred), [normalize(a) for a in refs]
    n = len(refs)
    if n == 1:
        return float(refs[0] == pred)
    total = 0.0
    for i in range(n):
        matches = sum(1 for j in range(n) if j != i and refs[j] == pred)
        total += min(1.0, matches / 3.0)
    return total / n
