"""Scenes of the synthetic visual-QA data: coloured shapes in four quadrants, signs with a word, printed sums,
drawn with Pillow (96 x 96), deterministically from their random streams. Nothing here knows a benchmark."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Optional

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


# -- drawing ------------------------------------------------------------------------------------------------

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


# -- for the question writers ----------------------------------------------------------------------------------

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


