"""Question writers of the synthetic data, one per question style. A task chooses its style in its TOML
(``[synthetic] style = ...``); a writer gives rows in that task's hub schema and one training target per row:

* ``vqa``: counting, colour and yes/no questions with 10 annotator answers, a few annotators disagreeing;
* ``relations``: left/right, top/bottom, what shape is left of X, colour, size; one-word answers;
* ``existence``: yes/no existence with random / popular / adversarial negatives: for every image one question
  per sampling about a present shape and one about an absent shape -- random: any absent shape; popular: the
  absent shape most frequent in the split; adversarial: the absent shape that co-occurs most with the present
  ones (scenes are drawn from two "themes" of shapes that tend to appear together, so these differ);
* ``ocr``: reading the word on a sign, with OCR tokens;
* ``paired_yes_no``: a yes and a no question per image, one category per image (existence, count, position,
  color, OCR, numerical_calculation).
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Callable

from .scenes import COLORS, NUMBER_WORDS, SHAPES, WORDS, Scene, _annotators, _lone_shape, _unique

NEGATIVE_SAMPLING = ("adversarial", "popular", "random")
YES_NO = "Please answer yes or no."
STYLES: dict[str, Callable] = {}


def style(fn):
    """Register a question writer under its style name (the function's name)."""
    STYLES[fn.__name__] = fn
    return fn


@style
def vqa(scenes, rng, split):
    rows, targets = [], []
    for s in (s for s in scenes if s.kind == "shapes"):
        qs = []
        o = _lone_shape(s, rng)
        if o is not None:
            qs.append((f"What color is the {o.shape}?", o.color, [f"{o.color} {o.shape}", o.color + "ish"], "other"))
            other = rng.choice([c for c in sorted(COLORS) if c != o.color])
            ask = rng.choice((o.color, other))
            qs.append((f"Is the {o.shape} {ask}?", "yes" if ask == o.color else "no", [], "yes/no"))
        if rng.random() < 0.5:
            n = len(s.objects)
            qs.append(("How many shapes are there?", str(n), [NUMBER_WORDS[n]], "number"))
        else:
            c = rng.choice(sorted(COLORS))
            n = sum(x.color == c for x in s.objects)
            qs.append((f"How many {c} shapes are there?", str(n), [NUMBER_WORDS[n]], "number"))
        for q, a, alts, kind in qs:
            answers = _annotators(rng, a, alts)
            rows.append({"question_id": len(rows), "question": q, "answer_type": kind,
                         "question_type": " ".join(q.lower().split()[:3]),
                         "answers": [{"answer": x, "answer_confidence": "yes", "answer_id": i + 1}
                                     for i, x in enumerate(answers)],
                         "multiple_choice_answer": Counter(answers).most_common(1)[0][0],
                         "image_id": s.name.split(".")[0], "image": s.name})
            targets.append(a)
    return rows, targets


@style
def relations(scenes, rng, split):
    rows, targets = [], []
    for s in (s for s in scenes if s.kind == "shapes"):
        qs = []
        o = _lone_shape(s, rng)
        if o is not None:
            if rng.random() < 0.5:
                qs.append((f"Is the {o.color} {o.shape} on the left or right?", o.side,
                           f"The {o.shape} is on the {o.side} of the image."))
            else:
                qs.append((f"Is the {o.shape} at the top or at the bottom?", o.row,
                           f"The {o.shape} is at the {o.row} of the image."))
            if rng.random() < 0.5:
                qs.append((f"What color is the {o.shape}?", o.color, f"The {o.shape} is {o.color}."))
            else:
                qs.append((f"Is the {o.shape} small or large?", o.size, f"The {o.shape} is {o.size}."))
        pairs = [(a, b) for a in s.objects for b in s.objects if a.row == b.row and a.side == "left"
                 and b.side == "right" and _unique(s.objects, "shape", b.shape)]
        if pairs:
            a, b = rng.choice(pairs)
            qs.append((f"What shape is to the left of the {b.shape}?", a.shape,
                       f"The shape to the left of the {b.shape} is a {a.shape}."))
        for q, a, full in qs:
            rows.append({"id": f"{split}-{len(rows):05d}", "imageId": s.name.split(".")[0], "question": q,
                         "answer": a, "fullAnswer": full, "image": s.name})
            targets.append(a)
    return rows, targets


def _negative_counts(scenes) -> tuple[Counter, Counter]:
    freq, co = Counter(), Counter()
    for s in scenes:
        present = {o.shape for o in s.objects}
        freq.update(present)
        co.update((a, b) for a in present for b in present if a != b)
    return freq, co


@style
def existence(scenes, rng, split):
    shape_scenes = [s for s in scenes if s.kind == "shapes"]
    freq, co = _negative_counts(shape_scenes)
    rows, targets = [], []
    for s in shape_scenes:
        present = sorted({o.shape for o in s.objects})
        absent = [x for x in SHAPES if x not in present]
        if not absent:
            continue
        for k, category in enumerate(NEGATIVE_SAMPLING):
            pos = present[k % len(present)]
            if category == "random":
                neg = rng.choice(absent)
            elif category == "popular":
                neg = max(absent, key=lambda x: (freq[x], x))
            else:
                neg = max(absent, key=lambda x: (sum(co[(p, x)] for p in present), x))
            for obj, label in ((pos, "yes"), (neg, "no")):
                rows.append({"question_id": f"{split}-{len(rows)}", "question": f"Is there a {obj} in the image?",
                             "answer": label, "image_source": s.name.split(".")[0], "category": category,
                             "image": s.name})
                targets.append(label.capitalize())
    return rows, targets


@style
def ocr(scenes, rng, split):
    rows, targets = [], []
    for s in (s for s in scenes if s.kind == "sign"):
        word = s.text.lower()
        q = "What word is written on the sign?" if rng.random() < 0.7 else "What does the sign say?"
        ocr = [s.text]
        rows.append({"question_id": len(rows), "question": q,
                     "answers": _annotators(rng, word, [f"{word} sign", word.upper() + "!"]),
                     "ocr_tokens": ocr, "image_id": s.name.split(".")[0], "image_classes": ["sign"],
                     "image": s.name})
        targets.append(word)
    return rows, targets


def _yes_no_pair(s: Scene, rng: random.Random, k: int):
    """(category, yes-question, no-question) for scene ``s``; ``k`` rotates shape scenes through four."""
    if s.kind == "sign":
        other = rng.choice([w for w in WORDS if w != s.text])
        return "OCR", f'Is the word in the image "{s.text}"?', f'Is the word in the image "{other}"?'
    if s.kind == "sum":
        wrong = s.value + rng.choice((-2, -1, 1, 2))
        return ("numerical_calculation", f"Is the answer to the sum in the image {s.value}?",
                f"Is the answer to the sum in the image {wrong}?")
    o = s.objects[k % len(s.objects)]
    category = ("existence", "count", "position", "color")[k % 4]
    present = {x.shape for x in s.objects}
    if category == "existence" and len(present) < len(SHAPES):
        missing = rng.choice([x for x in SHAPES if x not in present])
        return category, f"Is there a {o.shape} in this image?", f"Is there a {missing} in this image?"
    if category == "count":
        n = len(s.objects)
        wrong = rng.choice([m for m in range(1, 5) if m != n])
        plural = lambda m: f"{NUMBER_WORDS[m]} shape" + ("s" if m > 1 else "")
        return category, f"Are there {plural(n)} in this image?", f"Are there {plural(wrong)} in this image?"
    if category == "position" and _unique(s.objects, "shape", o.shape):
        flip = "right" if o.side == "left" else "left"
        return category, f"Is the {o.shape} on the {o.side}?", f"Is the {o.shape} on the {flip}?"
    if _unique(s.objects, "shape", o.shape):
        other = rng.choice([c for c in sorted(COLORS) if c != o.color])
        return "color", f"Is the {o.shape} {o.color}?", f"Is the {o.shape} {other}?"
    n = len(s.objects)
    return "count", f"Are there {NUMBER_WORDS[n]} shapes in this image?", \
        f"Are there {NUMBER_WORDS[n % 4 + 1]} shapes in this image?"


@style
def paired_yes_no(scenes, rng, split):
    rows, targets = [], []
    for k, s in enumerate(scenes):
        category, q_yes, q_no = _yes_no_pair(s, rng, k)
        pair = [(q_yes, "Yes"), (q_no, "No")]
        if rng.random() < 0.5:
            pair.reverse()
        for q, a in pair:
            rows.append({"question_id": f"{category}/{s.name}", "question": f"{q} {YES_NO}", "answer": a,
                         "category": category, "image": s.name})
            targets.append(a)
    return rows, targets


