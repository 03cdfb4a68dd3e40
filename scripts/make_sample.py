"""Generate the embedded offline sample (qmamba_eval/assets/sample) and the tiny tokenizer.

Synthetic scenes drawn with Pillow: coloured shapes at known places, some with a printed word or sum,
so every question has an answer fixed by the picture.  The rows follow the hub schema of each task
(lmms-lab VQAv2 / GQA / textvqa / POPE / MME), with ``image`` holding a file name under ``images/``.
These are NOT benchmark data and their scores are not benchmark scores.

Run once and commit the output:  python scripts/make_sample.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "qmamba_eval" / "assets" / "sample"
COLORS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220), "yellow": (235, 210, 40)}
SHAPES = ("circle", "square", "triangle")
WORDS = ("STOP", "CAFE", "EXIT", "OPEN", "SALE", "TAXI", "BOOK", "PARK")
SIDE = 96


def draw_shape(d: ImageDraw.ImageDraw, shape: str, color, box):
    x0, y0, x1, y1 = box
    if shape == "circle":
        d.ellipse(box, fill=color)
    elif shape == "square":
        d.rectangle(box, fill=color)
    else:
        d.polygon([((x0 + x1) // 2, y0), (x1, y1), (x0, y1)], fill=color)


def make_scene(rng: random.Random, n_objects: int, text: str | None = None):
    im = Image.new("RGB", (SIDE, SIDE), (245, 245, 240))
    d = ImageDraw.Draw(im)
    slots = [(4, 8), (52, 8), (4, 52), (52, 52)]  # four quadrants
    rng.shuffle(slots)
    objects = []
    for (x, y) in slots[:n_objects]:
        shape, color = rng.choice(SHAPES), rng.choice(sorted(COLORS))
        draw_shape(d, shape, COLORS[color], (x, y, x + 38, y + 38))
        objects.append({"shape": shape, "color": color, "x": x, "y": y})
    if text:
        d.rectangle((8, 36, 88, 60), fill=(255, 255, 255), outline=(0, 0, 0))
        d.text((14, 40), text, fill=(0, 0, 0), font=ImageFont.load_default())
    return im, objects


def ten(answer: str, alt: str | None = None, n_alt: int = 0) -> list[str]:
    return [answer] * (10 - n_alt) + [alt] * n_alt


def main():
    rng = random.Random(20241128)
    (OUT / "images").mkdir(parents=True, exist_ok=True)
    rows = {t: [] for t in ("vqav2", "gqa", "textvqa", "pope", "mme")}
    number_words = ["zero", "one", "two", "three", "four"]

    def save(im, name):
        im.save(OUT / "images" / name, optimize=True)
        return name

    for i in range(12):  # shape scenes for VQAv2 / GQA / POPE
        im, objs = make_scene(rng, 1 + i % 3)
        img = save(im, f"scene_{i:02d}.png")
        o = objs[0]
        rows["vqav2"].append({"question_id": 1000 + 2 * i, "question": f"What color is the {o['shape']}?",
                              "answers": [{"answer": a, "answer_id": k + 1}
                                          for k, a in enumerate(ten(o["color"], f"{o['color']} {o['shape']}", i % 3))],
                              "answer_type": "other", "image": img})
        n = len(objs)
        rows["vqav2"].append({"question_id": 1001 + 2 * i, "question": "How many shapes are there?",
                              "answers": [{"answer": a, "answer_id": k + 1}
                                          for k, a in enumerate(ten(str(n), number_words[n], 3))],
                              "answer_type": "number", "image": img})
        side = "left" if o["x"] < 48 else "right"
        rows["gqa"].append({"id": f"g{i:03d}a", "imageId": f"scene_{i:02d}", "question":
                            f"Is the {o['color']} {o['shape']} on the left or right?", "answer": side,
                            "fullAnswer": f"The {o['shape']} is on the {side}.", "image": img})
        present = {x["shape"] for x in objs}
        absent = [s for s in SHAPES if s not in present]
        rows["gqa"].append({"id": f"g{i:03d}b", "imageId": f"scene_{i:02d}",
                            "question": f"Is there a {o['shape']} in the picture?", "answer": "yes",
                            "fullAnswer": f"Yes, there is a {o['shape']}.", "image": img})
        split = ("adversarial", "popular", "random")[i % 3]
        rows["pope"].append({"question_id": str(3000 + 2 * i), "question": f"Is there a {o['shape']} in the image?",
                             "answer": "yes", "image_source": f"scene_{i:02d}", "category": split, "image": img})
        if absent:
            rows["pope"].append({"question_id": str(3001 + 2 * i),
                                 "question": f"Is there a {absent[0]} in the image?", "answer": "no",
                                 "image_source": f"scene_{i:02d}", "category": split, "image": img})

    for i, word in enumerate(WORDS):  # text scenes for TextVQA / MME OCR
        im, _ = make_scene(rng, 0, text=word)
        img = save(im, f"text_{i:02d}.png")
        rows["textvqa"].append({"question_id": 2000 + i, "question": "What word is written on the sign?",
                                "answers": ten(word.lower(), word.lower() + " sign", i % 2),
                                "ocr_tokens": [word], "image_id": f"text_{i:02d}", "image": img})

    mme_id = 0

    def mme_pair(img, category, q_yes, q_no):
        nonlocal mme_id
        for q, a in ((q_yes, "Yes"), (q_no, "No")):
            rows["mme"].append({"question_id": f"{category}/{img}", "question": f"{q} Please answer yes or no.",
                                "answer": a, "category": category, "image": img, "_id": mme_id})
            mme_id += 1

    for i in range(4):
        im, objs = make_scene(rng, 2)
        img = save(im, f"mme_scene_{i:02d}.png")
        o = objs[0]
        other = next(c for c in sorted(COLORS) if c != o["color"])
        mme_pair(img, "existence", f"Is there a {o['shape']} in this image?",
                 f"Is there a {next(s for s in SHAPES if s not in {x['shape'] for x in objs})} in this image?")
        mme_pair(img, "color", f"Is the {o['shape']} {o['color']}?", f"Is the {o['shape']} {other}?")
        mme_pair(img, "count", "Are there two shapes in this image?", "Are there four shapes in this image?")
    for i in range(3):
        a, b = rng.randint(1, 9), rng.randint(1, 9)
        im, _ = make_scene(rng, 0, text=f"{a}+{b}=")
        img = save(im, f"mme_sum_{i:02d}.png")
        mme_pair(img, "numerical_calculation", f"Is the answer to the sum in the image {a + b}?",
                 f"Is the answer to the sum in the image {a + b + 1}?")
        word = WORDS[i]
        im, _ = make_scene(rng, 0, text=word)
        img = save(im, f"mme_ocr_{i:02d}.png")
        mme_pair(img, "OCR", f'Is the word in the image "{word}"?', f'Is the word in the image "{WORDS[i + 4]}"?')
    for r in rows["mme"]:
        r.pop("_id")

    for task, rs in rows.items():
        with open(OUT / f"{task}.jsonl", "w") as f:
            for r in rs:
                f.write(json.dumps(r, sort_keys=True) + "\n")
        print(task, len(rs))
    make_tokenizer(rows)


def make_tokenizer(rows):
    """A small byte-level BPE in GPT-NeoX style (``<|endoftext|>`` = 0, ``<|padding|>`` = 1)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    text = []
    for rs in rows.values():
        for r in rs:
            text.append(r["question"])
            ans = r.get("answers", r.get("answer", ""))
            text.append(json.dumps(ans))
    text += ["<|user|>\n", "<|assistant|>\n", "Answer the question using a single word or phrase.",
             "Please answer yes or no.", "Reference OCR token:"] * 20
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=640, special_tokens=["<|endoftext|>", "<|padding|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(sorted(set(text)), trainer)
    path = ROOT / "qmamba_eval" / "assets" / "tiny_tokenizer.json"
    tok.save(str(path))
    print("tokenizer", tok.get_vocab_size(), path)


if __name__ == "__main__":
    main()
