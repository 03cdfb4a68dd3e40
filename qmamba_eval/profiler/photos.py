"""Photo-sized test data for throughput measurements: real JPEG decoding, GQA-shaped questions, random content."""

from __future__ import annotations

import json
import os
from pathlib import Path


def _jpeg(args):
    import numpy as np
    from PIL import Image, ImageDraw

    i, folder = args
    g = np.random.default_rng(i)
    y, x = np.mgrid[0:480, 0:640]
    base = np.stack([(x * g.uniform(0.1, 0.5) + y * g.uniform(0.1, 0.5) + g.uniform(0, 255)) % 256
                     for _ in range(3)], -1).astype(np.uint8)
    im = Image.fromarray(base)
    d = ImageDraw.Draw(im)
    for _ in range(6):
        x0, y0 = int(g.integers(0, 560)), int(g.integers(0, 400))
        d.rectangle([x0, y0, x0 + int(g.integers(20, 80)), y0 + int(g.integers(20, 80))],
                    fill=tuple(int(c) for c in g.integers(0, 255, 3)))
    im.save(folder / f"img_{i:05d}.jpg", quality=90)


def photo_questions(folder: Path, rows: int, name: str = "questions.jsonl") -> Path:
    """``rows`` photo-sized JPEGs (640x480, quality 90) and one relation question each, in GQA's hub schema
    (``id, question, answer, image``): a throughput test bed, written with a process per core."""
    from multiprocessing import Pool

    (folder / "images").mkdir(parents=True, exist_ok=True)
    with Pool(min(16, os.cpu_count() or 1)) as pool:
        pool.map(_jpeg, [(i, folder / "images") for i in range(rows)])
    objs = ["table", "chair", "man", "woman", "car", "tree", "dog", "window", "bag", "plate"]
    with open(folder / name, "w") as f:
        for i in range(rows):
            a, b = objs[i % 10], objs[(i * 7 + 3) % 10]
            f.write(json.dumps({"id": f"q{i:05d}", "question": f"Is the {a} to the left or to the right of the {b}?",
                                "answer": "left" if i % 2 else "right", "image": f"img_{i:05d}.jpg"}) + "\n")
    return folder / name
