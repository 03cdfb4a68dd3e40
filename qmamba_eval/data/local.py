"""Local data: the official release layouts of each benchmark, or files in the hub schema.

Official layouts (``--data DIR``):
* VQAv2: ``*questions*.json`` + ``*annotations*.json`` + COCO images (``val2014/`` or the folder itself)
* GQA: ``testdev_balanced_questions.json`` (or any ``*questions*.json``) + ``images/<imageId>.jpg``
* TextVQA: ``TextVQA_0.5.1_val.json`` + ``train_images/<image_id>.jpg``
* POPE: ``coco_pope_{adversarial,popular,random}.json`` (JSON lines) + COCO ``val2014/``
* MME: the release folder, one sub-folder per category holding images with a ``.txt`` of
  ``question<TAB>answer`` lines each, or ``images/`` + ``questions_answers_YN/``
Hub schema: a ``.jsonl`` / ``.parquet`` file (or a folder of parquet files) with the task's columns; image
paths in JSONL are relative to the file's folder (or its ``images/``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..tasks import Task

POPE_SPLITS = ("adversarial", "popular", "random")
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def _digest(*files: Path) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _info(source, fp, n):
    from .sources import DataInfo

    return DataInfo(str(source), fp, n)


def _coco_root(folder: Path) -> Path:
    for cand in (folder / "val2014", folder / "images", folder):
        if cand.is_dir():
            return cand
    return folder


def _coco_name(image_id: int) -> str:
    return f"COCO_val2014_{int(image_id):012d}.jpg"


def _one(folder: Path, pattern: str) -> Path | None:
    hits = sorted(folder.glob(pattern))
    return hits[0] if hits else None


# -- hub-schema files ---------------------------------------------------------------------


def _hub_file(task: Task, path: Path):
    from .sources import HubRows, read_jsonl

    if path.suffix == ".jsonl":
        rows = read_jsonl(path)
        root = path.parent / "images" if (path.parent / "images").is_dir() else path.parent
        for r in rows:
            if isinstance(r.get("image"), str) and not Path(r["image"]).is_absolute():
                r["image"] = str(root / r["image"])
        if task.name == "pope" and rows and "label" in rows[0] and "answer" not in rows[0]:
            return _pope_rows({path.stem.replace("coco_pope_", ""): rows}, _coco_root(path.parent), path, [path])
        return rows, _info(path, _digest(path), len(rows))
    import datasets

    files = [str(path)] if path.is_file() else sorted(str(p) for p in path.rglob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"{path}: no parquet files")
    ds = datasets.load_dataset("parquet", data_files=files, split="train")
    return HubRows(ds), _info(path, str(ds._fingerprint)[:16], len(ds))


# -- official layouts ---------------------------------------------------------------------


def _vqav2(folder: Path):
    qf, af = _one(folder, "*questions*.json"), _one(folder, "*annotations*.json")
    if not (qf and af):
        raise FileNotFoundError(f"{folder}: VQAv2 layout needs *questions*.json and *annotations*.json")
    questions = json.loads(qf.read_text())["questions"]
    anns = {a["question_id"]: a for a in json.loads(af.read_text())["annotations"]}
    root = _coco_root(folder)
    rows = []
    for q in questions:
        a = anns.get(q["question_id"])
        if a is None:
            raise ValueError(f"{af}: no annotation for question {q['question_id']}")
        rows.append({"question_id": q["question_id"], "question": q["question"], "answers": a["answers"],
                     "answer_type": a.get("answer_type"), "image": str(root / _coco_name(q["image_id"]))})
    return rows, _info(folder, _digest(qf, af), len(rows))


def _gqa(folder: Path):
    qf = (folder / "testdev_balanced_questions.json")
    qf = qf if qf.is_file() else _one(folder, "*questions*.json")
    if qf is None:
        raise FileNotFoundError(f"{folder}: GQA layout needs testdev_balanced_questions.json")
    root = folder / "images" if (folder / "images").is_dir() else folder
    rows = [{"id": qid, "imageId": q["imageId"], "question": q["question"], "answer": q["answer"],
             "fullAnswer": q.get("fullAnswer"), "image": str(root / f"{q['imageId']}.jpg")}
            for qid, q in json.loads(qf.read_text()).items()]
    return rows, _info(folder, _digest(qf), len(rows))


def _textvqa(folder: Path):
    qf = folder / "TextVQA_0.5.1_val.json"
    if not qf.is_file():
        raise FileNotFoundError(f"{folder}: TextVQA layout needs TextVQA_0.5.1_val.json")
    root = folder / "train_images" if (folder / "train_images").is_dir() else folder
    rows = [{"question_id": d["question_id"], "question": d["question"], "answers": d["answers"],
             "ocr_tokens": d.get("ocr_tokens", []), "image_id": d["image_id"],
             "image": str(root / f"{d['image_id']}.jpg")} for d in json.loads(qf.read_text())["data"]]
    return rows, _info(folder, _digest(qf), len(rows))


def _pope_rows(by_split: dict, root: Path, source, files: list[Path]):
    rows = []
    for split, items in by_split.items():
        for d in items:
            rows.append({"question_id": f"{split}/{d['question_id']}", "question": d["text"], "answer": d["label"],
                         "category": split, "image": str(root / d["image"])})
    return rows, _info(source, _digest(*files), len(rows))  # the files' content, not where they lie


def _pope(folder: Path):
    from .sources import read_jsonl

    files = {s: folder / f"coco_pope_{s}.json" for s in POPE_SPLITS if (folder / f"coco_pope_{s}.json").is_file()}
    if not files:
        raise FileNotFoundError(f"{folder}: POPE layout needs coco_pope_{{adversarial,popular,random}}.json")
    return _pope_rows({s: read_jsonl(f) for s, f in files.items()}, _coco_root(folder), folder, list(files.values()))


def _mme(folder: Path):
    from ..scoring.mme import COGNITION, PERCEPTION

    rows, files = [], []
    for cat in PERCEPTION + COGNITION:
        cdir = folder / cat
        if not cdir.is_dir():
            continue
        qa_dir = cdir / "questions_answers_YN" if (cdir / "questions_answers_YN").is_dir() else cdir
        img_dir = cdir / "images" if (cdir / "images").is_dir() else cdir
        for txt in sorted(qa_dir.glob("*.txt")):
            img = next((img_dir / (txt.stem + e) for e in IMAGE_EXTS if (img_dir / (txt.stem + e)).is_file()), None)
            if img is None:
                raise FileNotFoundError(f"{txt}: no image named {txt.stem}.* in {img_dir}")
            files.append(txt)
            for line in txt.read_text().splitlines():
                if line.strip():
                    q, a = line.rsplit("\t", 1)
                    rows.append({"question_id": f"{cat}/{img.name}", "question": q.strip(), "answer": a.strip(),
                                 "category": cat, "image": str(img)})
    if not rows:
        raise FileNotFoundError(f"{folder}: MME layout needs category folders (existence/, count/, ...)")
    return rows, _info(folder, _digest(*files), len(rows))


LAYOUTS = {"vqav2": _vqav2, "gqa": _gqa, "textvqa": _textvqa, "pope": _pope, "mme": _mme}


def load(task: Task, path: Path):
    if not path.exists():
        raise FileNotFoundError(f"--data {path}: no such file or folder (use 'sample', 'hub' or a local path)")
    if path.is_file() or any(path.glob("*.parquet")) or any(path.glob("data/*.parquet")):
        return _hub_file(task, path)
    return LAYOUTS[task.name](path)
