"""Small readers shared by the data sources and the per-task hook modules (no task knowledge here)."""

from __future__ import annotations

import hashlib
import json
import os
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
    stamp: str | None = None  # the image files' modification times (a resume check; not part of the fingerprint)

    def to_dict(self) -> dict:
        return {"source": self.source, "fingerprint": self.fingerprint, "n_total": self.n_total,
                "is_sample": self.is_sample, "notes": self.notes}


def read_jsonl(path: Path) -> list[dict]:
    """JSON objects, one a line (blank lines skipped); anything else is an error naming the file and line."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder; expected a JSON-lines file")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    rows = []
    with open(path, "rb") as f:
        for i, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8-sig" if i == 1 else "utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(f"{path}:{i}: not UTF-8 text ({e.reason} at byte {e.start})") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{i}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{i}: expected a JSON object, found {type(row).__name__}")
            rows.append(row)
    return rows


def read_text(path: Path) -> str:
    """A text file's content, or an error naming the file when it is not UTF-8."""
    path = Path(path)
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None


def read_json(path: Path):
    path = Path(path)
    try:
        return json.loads(path.read_bytes().decode("utf-8-sig"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None


def _image_stats(rows, root) -> list:
    """(name relative to ``root``, size, mtime) of every distinct image file the rows name, without reading them."""
    out, seen = [], set()
    for r in rows or []:
        value = r.get("image") if isinstance(r, dict) else None
        if isinstance(value, (str, Path)) and str(value) not in seen:
            seen.add(str(value))
            name = os.path.relpath(value, root) if root is not None else Path(value).name  # not where it lies
            try:
                st = Path(value).stat()
                out.append((name, st.st_size, st.st_mtime_ns))
            except OSError:
                out.append((name, -1, -1))
    return out


def files_digest(*files: Path, rows=None, root=None) -> str:
    """Fingerprint of the files' names and content, and with ``rows`` the names and sizes of the image files they
    name: content, not where it lies nor when it was copied (a copy elsewhere fingerprints the same)."""
    h = hashlib.sha256()
    for f in files:
        h.update(Path(f).name.encode())
        h.update(Path(f).read_bytes())
    for name, size, _ in _image_stats(rows, root):
        h.update(f"{name}\0{size}\0".encode())
    return h.hexdigest()[:16]


def images_stamp(rows, root=None) -> str | None:
    """The image files' modification times, digested: an image replaced in place (same name, maybe the same size)
    changes it, so a resume on it is refused (run.json), while copies of the data still compare (results.json)."""
    stats = _image_stats(rows, root)
    if not stats:
        return None
    return hashlib.sha256(repr(sorted(stats)).encode()).hexdigest()[:16]


FULL_HASH_MAX = 1 << 30  # files up to 1 GiB are hashed whole
EDGE_BYTES = 16 << 20  # larger ones: size + mtime + the first and last 16 MiB


def weights_digest(path) -> str | None:
    """Fingerprint of a checkpoint / tokenizer file or folder (every file under it, by relative name): the
    SHA-256 of each file's content, or for files over 1 GiB its size, mtime and the SHA-256 of its first and last
    16 MiB. None when ``path`` is None or not a file or folder (a preset name)."""
    if path is None:
        return None
    p = Path(path)
    if p.is_file():
        files = [(p.name, p)]
    elif p.is_dir():
        files = sorted((f.relative_to(p).as_posix(), f) for f in p.rglob("*")
                       if f.is_file() and not any(part.startswith(".") for part in f.relative_to(p).parts))
    else:
        return None
    h = hashlib.sha256()
    for name, f in files:
        st = f.stat()
        h.update(f"{name}\0{st.st_size}\0".encode())
        with open(f, "rb") as fh:
            if st.st_size <= FULL_HASH_MAX:
                for chunk in iter(lambda: fh.read(1 << 24), b""):
                    h.update(chunk)
            else:
                h.update(f"{st.st_mtime_ns}\0".encode())
                h.update(fh.read(EDGE_BYTES))
                fh.seek(st.st_size - EDGE_BYTES)
                h.update(fh.read(EDGE_BYTES))
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
