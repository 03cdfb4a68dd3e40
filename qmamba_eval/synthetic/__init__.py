"""A deterministic synthetic visual-QA benchmark: rendered scenes, questions in each benchmark's own schema.

Scenes are drawn with Pillow (96 x 96): coloured shapes of two sizes in the four quadrants, signs with a
printed word, printed sums.  From the same scenes come, per benchmark, rows in its hub schema and question
style (``styles.py``: one writer per question style; a task's TOML names its style) plus a one-word training
target per row, and a caption per scene for stage-1 alignment:

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
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .scenes import COLORS, SHAPES, SIZES, WORDS, Scene, _draw_scenes  # noqa: F401  (the generator's vocabulary)
from .styles import NEGATIVE_SAMPLING, STYLES  # noqa: F401

SPLITS = ("test", "val", "train")  # drawing order: a later split redraws scenes an earlier one has
NOTE = "synthetic visual-QA data drawn by qmamba_eval.synthetic: NOT benchmark data"
# the sizes of a split: shape scenes, sign scenes, sum scenes
SCALES = {"sample": (12, 8, 3), "small": (60, 24, 8), "test": (150, 48, 16), "val": (60, 24, 8),
          "train": (2400, 480, 160)}
MAX_SCENES = 20_000  # per kind: the images are drawn in memory (the train scale has 2,400 shape scenes)


def check_counts(counts, where: str) -> tuple:
    """Three scene counts SHAPES,SIGNS,SUMS: whole numbers from 0 to MAX_SCENES, not all 0."""
    counts = tuple(counts)
    if len(counts) != 3 or any(isinstance(x, bool) or not isinstance(x, int) or not 0 <= x <= MAX_SCENES
                               for x in counts) or sum(counts) == 0:
        raise ValueError(f"{where}: three scene counts SHAPES,SIGNS,SUMS, whole numbers from 0 to {MAX_SCENES:,} "
                         f"(not all 0), or a scale name ({', '.join(SCALES)}); got {counts}")
    return counts


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
        meta = {"generator": "qmamba_eval.synthetic", "split": self.split, "seed": self.seed,
                "note": NOTE, "counts": {t: len(self.rows[t]) for t in tasks}}
        (folder / "synthetic.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
        return folder


def task_styles(tasks=None) -> dict:
    """{task name: question style} of the tasks whose TOML has a ``[synthetic]`` style (all of them, or ``tasks``)."""
    from ..tasks import all_tasks

    known = {name: t.synthetic_style for name, t in all_tasks().items() if t.synthetic_style}
    if tasks is None:
        return known
    missing = [t for t in tasks if t not in known]
    if missing:
        raise ValueError(f"no synthetic question style for task(s) {missing}: add [synthetic] style = ... to their "
                         f"TOML (styles: {', '.join(sorted(STYLES))})")
    return {t: known[t] for t in tasks}


def generate(split: str = "test", seed: int = 0, scale: Optional[str | tuple] = None,
             tasks=None) -> Synthetic:
    """The scenes and rows of one split (for ``tasks``, default every task with a synthetic style).  ``scale``: a name in ``SCALES`` or (shape, sign, sum) scene counts
    (default: the split's own).  Scenes of the splits drawn before ``split`` (test, val, train) are excluded
    at their default scales, so the splits never share a scene whatever the scale asked for."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose from {SPLITS}")
    counts = SCALES[scale or split] if not isinstance(scale, (tuple, list)) else check_counts(scale, "scale")
    if split != SPLITS[-1] and any(c > d for c, d in zip(counts, SCALES[split])):
        raise ValueError(f"the {split} split has at most {SCALES[split]} scenes (shapes, signs, sums); a larger "
                         f"scale {counts} would share scenes with the splits drawn after it")
    taken: set = set()
    for earlier in SPLITS[:SPLITS.index(split)]:  # drawn as they are drawn themselves: they fill ``taken``
        _draw_scenes(earlier, seed, SCALES[earlier], taken, render=False)
    scenes = _draw_scenes(split, seed, counts, taken)
    rows, targets = {}, {}
    for name, style in sorted(task_styles(tasks).items()):  # the task's name keys its random stream
        rng = random.Random(f"qmamba-synthetic/{seed}/{split}/{name}")
        rows[name], targets[name] = STYLES[style](scenes, rng, split)
    return Synthetic(split, seed, scenes, rows, targets)


def signatures(split: str, seed: int = 0, scale=None) -> set:
    """Content signatures of a split's scenes (for disjointness checks)."""
    return {s.signature() for s in generate(split, seed, scale, tasks=()).scenes}
