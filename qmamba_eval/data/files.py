"""Small readers shared by the data sources and the per-task hook modules (no task knowledge here)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@dataclass
class DataInfo:
    source: str  # "sample" | "hub:<path>" | local path
    fingerprint: str
    n_total: int
    is_sample: bool = False
    image_root: str | None = None
    notes: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"source": self.source, "fingerprint": self.fingerprint, "n_total": self.n_total,
                "is_sample": self.is_sample, "notes": self.notes}


def read_jsonl(path: Path) -> list[dict]:
    rows = []
    with open(path) as f:
        for i, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{i}: not valid JSON ({e.msg})") from None
    return rows


def read_json(path: Path):
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None


def files_digest(*files: Path) -> str:
    """Fingerprint of the files' names and content (not where they lie)."""
    h = hashlib.sha256()
    for f in files:
        h.update(Path(f).name.encode())
        h.update(Path(f).read_bytes())
    return h.hexdigest()[:16]


def sha256_json(rows) -> str:
    h = hashlib.sha256()
    for r in rows:
        h.update(json.dumps(r, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def first_match(folder: Path, pattern: str) -> Path | None:
    hits = sorted(folder.glob(pattern))
    return hits[0] if hits else None


def coco_image_root(folder: Path) -> Path:
    """Where COCO val2014 images lie next to a benchmark's files."""
    for cand in (folder / "val2014", folder / "images", folder):
        if cand.is_dir():
            return cand
    return folder


def coco_val_name(image_id: int) -> str:
    return f"COCO_val2014_{int(image_id):012d}.jpg"


class HubRows(Sequence):
    """Rows of a ``datasets.Dataset`` as dicts, decoded one at a time (images stay lazy)."""

    def __init__(self, ds, join=None):
        self.ds, self.join = ds, join

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        row = dict(self.ds[int(i)])
        if self.join is not None:
            row["image"] = self.join(row)
        return row

    def head(self, n: int) -> "HubRows":
        return HubRows(self.ds.select(range(n)), self.join)
