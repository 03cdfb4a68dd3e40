"""A deterministic synthetic visual-QA benchmark: rendered scenes, questions in each benchmark's own schema.

Scenes are drawn with Pillow (96 x 96): coloured shapes of two sizes in the four quadrants, signs with a
printed word, printed sums.  From the same scenes come, per benchmark, rows in its hub schema and question
style (``STYLES``: one writer per benchmark, named after it) plus a one-word training target per row, and a
caption per scene for stage-1 alignment:

* existence yes/no with random / popular / adversarial negatives (POPE): for every image one question per
  split about a present shape and one about an absent shape -- random: any absent shape; popular: the absent
  shape most frequent in the split; adversarial: the absent shape that co-occurs most with the present ones
  (scenes are drawn from two "themes" of shapes that tend to appear together, so these differ);
* relations and attributes with one-word answers (GQA): left/right, top/bottom, what shape is left of X,
  colour, size;
* counting, colour and yes/no questions with 10 annotator answers (VQAv2), a few annotators disagreeing;
* reading the word on a sign, with OCR tokens (TextVQA);
* paired yes/no questions per image, one category per image (MME: existence, count, position, color, OCR,
  numerical_calculation).

Everything follows from ``(seed, split)``: the same call gives the same rows and the same pixels.  Splits
never share a scene: a scene's content signature (kind, objects per quadrant, word or sum) seen in an
earlier split (test, then val, then train) is redrawn.  This is NOT benchmark data; scores on it are
not benchmark scores.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from PIL import Image, ImageDraw, ImageFont

SIDE = 96
COLORS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220), "yellow": (235, 200, 30)}
SHAPES = ("circle", "square", "triangle", "cross")
THEMES = (("circle", "square"), ("triangle", "cross"))  # shapes that tend to appear together
SIZES = {"small": 22, "large": 38}
SLOTS = ((0, 0), (48, 0), (0, 48), (48, 48))  # quadrant origins: top-left, top-right, bottom-left, bottom-right
WORDS = ("STOP", "CAFE", "EXIT", "OPEN", "SALE", "TAXI", "BOOK", "PARK",
         "BANK", "SHOP", "FOOD", "GOLF", "HOME", "MILK", "ZOO", "BUS")
TINTS = ((255, 255, 255), (255, 240, 200), (215, 235, 255), (225, 250, 225))
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five")
SPLITS = ("test", "val", "train")  # drawing order: a later split redraws scenes an earlier one has
POPE_SPLITS = ("adversarial", "popular", "random")
YES_NO = "Please answer yes or no."
NOTE = "synthetic visual-QA data drawn by qmamba_eval.data.synthetic: NOT benchmark data"

# the sizes of a split: shape scenes, sign scenes, sum scenes
SCALES = {"sample": (12, 8, 3), "small": (60, 24, 8), "test": (150, 48, 16), "val": (60, 24, 8),
          "train": (2400, 480, 160)}


@dataclass
class Obj:
    shape: str
    color: str
    size: str
    slot: int  # 0..3, SLOTS

    @property
    def side(self) -> str:
        return "left" if self.slot % 2 == 0 else "right"

    @property
    def row(self) -> str:
        return "top" if self.slot < 2 else "bottom"


@dataclass
class Scene:
    name: str  # image file name
    kind: str  # shapes | sign | sum
    objects: list = field(default_factory=list)
    text: str = ""  # the sign's word or the printed sum
    value: int = 0  # the sum's result
    y: int = 0  # the sign's top edge
    tint: int = 0  # the sign's background, TINTS
    image: Optional[Image.Image] = None

    def signature(self) -> tuple:
        return (self.kind, self.text, self.y, self.tint, tuple(sorted((o.slot, o.shape, o.color, o.size) for o in self.objects)))

    def caption(self) -> str:
        if self.kind == "sign":
            return f"A sign that says {self.text}."
        if self.kind == "sum":
            return f"A card with {self.text}"
        return ", ".join(f"{o.color} {o.shape}" for o in self.objects).capitalize() + "."


@dataclass
class Synthetic:
    """One split: scenes (with their images), rows per benchmark, a training target per row, captions."""

    split: str
    seed: int
    scenes: list
    rows: dict  # benchmark -> rows in its hub schema (``image`` = file name)
    targets: dict  # benchmark -> one answer string per row (what a model is trained to say)

    def captions(self) -> list[tuple[str, str]]:
        return [(s.name, s.caption()) for s in self.scenes]

    def images(self) -> dict:
        return {s.name: s.image for s in self.scenes}

    def examples(self) -> list[dict]:
        """Every row as ``{benchmark, row, target}`` (for training)."""
        return [{"task": t, "row": r, "target": y}
                for t in sorted(self.rows) for r, y in zip(self.rows[t], self.targets[t])]

    def write(self, folder, tasks=None) -> Path:
        """``<task>.jsonl`` (hub schema), ``images/*.png``, ``captions.jsonl`` and ``synthetic.json``."""
        folder = Path(folder)
        (folder / "images").mkdir(parents=True, exist_ok=True)
        tasks = sorted(self.rows) if tasks is None else tasks
        used = {r["image"] for t in tasks for r in self.rows[t]}
        for s in self.scenes:
            if s.name in used:
                s.image.save(folder / "images" / s.name, optimize=True)
        for t in tasks:
            with open(folder / f"{t}.jsonl", "w") as f:
                for r in self.rows[t]:
                    f.write(json.dumps(r, sort_keys=True) + "\n")
        with open(folder / "captions.jsonl", "w") as f:
            for name, cap in self.captions():
                if name in used:
                    f.write(json.dumps({"image": name, "caption": cap}) + "\n")
        meta = {"generator": "qmamba_eval.data.synthetic", "split": self.split, "seed": self.seed,
                "note": NOTE, "counts": {t: len(self.rows[t]) for t in tasks}}
        (folder / "synthetic.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
        return folder


# -- drawing -------------------------------------------------------------------------------------------------

def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):  # Pillow < 10.1 or no FreeType: the small bitmap font
        return ImageFont.load_default()


def _draw_shape(d: ImageDraw.ImageDraw, shape: str, color, box):
    x0, y0, x1, y1 = box
    if shape == "circle":
        d.ellipse(box, fill=color)
    elif shape == "square":
        d.rectangle(box, fill=color)
    elif shape == "triangle":
        d.polygon([((x0 + x1) // 2, y0), (x1, y1), (x0, y1)], fill=color)
    else:  # cross
        w = max(3, (x1 - x0) // 3)
        cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
        d.rectangle((cx - w // 2, y0, cx + w // 2, y1), fill=color)
        d.rectangle((x0, cy - w // 2, x1, cy + w // 2), fill=color)


def _render(scene: Scene, rng: random.Random) -> Image.Image:
    im = Image.new("RGB", (SIDE, SIDE), (245, 245, 240))
    d = ImageDraw.Draw(im)
    for o in scene.objects:
        x, y = SLOTS[o.slot]
        s = SIZES[o.size]
        dx, dy = rng.randint(2, 46 - s), rng.randint(2, 46 - s)
        _draw_shape(d, o.shape, COLORS[o.color], (x + dx, y + dy, x + dx + s, y + dy + s))
    if scene.kind in ("sign", "sum"):
        y = scene.y
        d.rectangle((4, y, SIDE - 5, y + 34), fill=TINTS[scene.tint], outline=(0, 0, 0), width=2)
        font = _font(26 if len(scene.text) <= 4 else 20)
        left, top, right, bottom = d.textbbox((0, 0), scene.text, font=font)
        d.text(((SIDE - (right - left)) // 2 - left, y + 17 - (bottom + top) // 2), scene.text, fill=(0, 0, 0),
               font=font)
    return im


def _shape_scene(rng: random.Random, name: str) -> Scene:
    n = rng.choice((1, 2, 2, 3, 3, 4))
    theme = rng.choice(THEMES)
    slots = rng.sample(range(4), n)
    objs = []
    for slot in sorted(slots):
        shape = rng.choice(theme) if rng.random() < 0.75 else rng.choice(SHAPES)
        objs.append(Obj(shape, rng.choice(sorted(COLORS)), rng.choice(sorted(SIZES)), slot))
    return Scene(name, "shapes", objs)


def _draw_scenes(split: str, seed: int, counts: tuple, taken: set, render: bool = True) -> list[Scene]:
    """Each kind has its own random stream, so a smaller scale gives a prefix of a larger one."""
    scenes = []
    for kind, n in zip(("shapes", "sign", "sum"), counts):
        rng = random.Random(f"qmamba-synthetic/{seed}/{split}/{kind}")
        for i in range(n):
            name = f"{split}_{kind}_{i:04d}.png"
            for _attempt in range(1000):
                if kind == "shapes":
                    sc = _shape_scene(rng, name)
                elif kind == "sign":
                    word = WORDS[i % len(WORDS)] if split != "train" else rng.choice(WORDS)
                    sc = Scene(name, "sign", [], word, y=rng.randint(22, 40), tint=rng.randrange(len(TINTS)))
                else:
                    a, b = rng.randint(1, 9), rng.randint(1, 9)
                    sc = Scene(name, "sum", [], f"{a}+{b}=", a + b, y=rng.randint(22, 40))
                if sc.signature() not in taken:
                    break
            else:
                raise ValueError(f"cannot draw {n} distinct {kind} scenes for split {split}")
            taken.add(sc.signature())
            if render:  # its own random stream (jitter), so drawing without rendering gives the same scenes
                sc.image = _render(sc, random.Random(f"qmamba-synthetic/{seed}/{split}/{name}"))
            scenes.append(sc)
    return scenes


# -- question writers, one per benchmark ------------------------------------------------------------------------

STYLES: dict[str, Callable] = {}


def style(fn):
    """Register a question writer under its benchmark's name (the function is ``rows_<benchmark>``)."""
    STYLES[fn.__name__.removeprefix("rows_")] = fn
    return fn


def _unique(objs, key, value):
    hits = [o for o in objs if getattr(o, key) == value]
    return hits[0] if len(hits) == 1 else None


def _lone_shape(scene, rng: random.Random):
    """A random object whose shape no other object in the scene has (None when there is none)."""
    alone = [x for x in scene.objects if _unique(scene.objects, "shape", x.shape)]
    return rng.choice(alone) if alone else None


def _annotators(rng: random.Random, answer: str, alternatives: list) -> list[str]:
    """Ten human answers: mostly ``answer``, up to three from ``alternatives``."""
    k = rng.choice((0, 0, 1, 2, 3)) if alternatives else 0
    out = [answer] * (10 - k) + [rng.choice(alternatives) for _ in range(k)]
    rng.shuffle(out)
    return out


@style
def rows_vqav2(scenes, rng, split):
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
def rows_gqa(scenes, rng, split):
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


def _pope_negatives(scenes) -> tuple[Counter, Counter]:
    freq, co = Counter(), Counter()
    for s in scenes:
        present = {o.shape for o in s.objects}
        freq.update(present)
        co.update((a, b) for a in present for b in present if a != b)
    return freq, co


@style
def rows_pope(scenes, rng, split):
    shape_scenes = [s for s in scenes if s.kind == "shapes"]
    freq, co = _pope_negatives(shape_scenes)
    rows, targets = [], []
    for s in shape_scenes:
        present = sorted({o.shape for o in s.objects})
        absent = [x for x in SHAPES if x not in present]
        if not absent:
            continue
        for k, category in enumerate(POPE_SPLITS):
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
def rows_textvqa(scenes, rng, split):
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


def _mme_pair(s: Scene, rng: random.Random, k: int):
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
def rows_mme(scenes, rng, split):
    rows, targets = [], []
    for k, s in enumerate(scenes):
        category, q_yes, q_no = _mme_pair(s, rng, k)
        pair = [(q_yes, "Yes"), (q_no, "No")]
        if rng.random() < 0.5:
            pair.reverse()
        for q, a in pair:
            rows.append({"question_id": f"{category}/{s.name}", "question": f"{q} {YES_NO}", "answer": a,
                         "category": category, "image": s.name})
            targets.append(a)
    return rows, targets


# -- entry points ------------------------------------------------------------------------------------------------

def generate(split: str = "test", seed: int = 0, scale: Optional[str | tuple] = None,
             tasks=None) -> Synthetic:
    """The scenes and rows of one split.  ``scale``: a name in ``SCALES`` or (shape, sign, sum) scene counts
    (default: the split's own).  Scenes of the splits drawn before ``split`` (test, val, train) are excluded
    at their default scales, so the splits never share a scene whatever the scale asked for."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose from {SPLITS}")
    counts = SCALES[scale or split] if not isinstance(scale, (tuple, list)) else tuple(scale)
    taken: set = set()
    for earlier in SPLITS[:SPLITS.index(split)]:  # drawn as they are drawn themselves: they fill ``taken``
        _draw_scenes(earlier, seed, SCALES[earlier], taken, render=False)
    scenes = _draw_scenes(split, seed, counts, taken)
    rows, targets = {}, {}
    for name in sorted(tasks or STYLES):
        rng = random.Random(f"qmamba-synthetic/{seed}/{split}/{name}")
        rows[name], targets[name] = STYLES[name](scenes, rng, split)
    return Synthetic(split, seed, scenes, rows, targets)


def signatures(split: str, seed: int = 0, scale=None) -> set:
    """Content signatures of a split's scenes (for disjointness checks)."""
    return {s.signature() for s in generate(split, seed, scale, tasks=()).scenes}
