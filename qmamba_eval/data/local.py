"""Local data (``--data PATH``): a benchmark's official release layout, or files in the hub schema.

* a folder in the official layout, or its main file: read by the task's hook module (``load_layout``; see
  ``hooks/<task>.py``);
* hub schema: a ``.jsonl`` / ``.parquet`` file (or a folder of parquet files) with the task's columns; image
  paths in JSONL are relative to the file's folder (or its ``images/``). A JSONL file in the benchmark's own
  raw format is converted by the task's ``rows_from_file`` hook where it has one (POPE's coco_pope_*.json).
"""

from __future__ import annotations

from pathlib import Path

from ..tasks import Task
from ..readers.files import DataInfo, HubRows, files_digest, images_stamp, read_jsonl


def _jsonl(task: Task, path: Path):
    rows = read_jsonl(path)
    root = path.parent / "images" if (path.parent / "images").is_dir() else path.parent
    for r in rows:
        if isinstance(r.get("image"), str) and not Path(r["image"]).is_absolute():
            r["image"] = str(root / r["image"])
    if task.hooks.rows_from_file is not None:
        converted = task.hooks.rows_from_file(rows, path)
        if converted is not None:
            rows = converted
    return rows, DataInfo(str(path), files_digest(path, rows=rows, root=path.parent), len(rows),
                          stamp=images_stamp(rows, path.parent))


def _parquet(path: Path):
    files = [str(path)] if path.is_file() else sorted(str(p) for p in path.rglob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"{path}: no parquet files")
    try:
        import pyarrow.parquet as pq

        n = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    except Exception as e:  # not a parquet file at all
        raise ValueError(f"--data {path}: not readable as parquet ({type(e).__name__}: {e})") from None
    if n == 0:
        raise ValueError(f"--data {path}: the parquet file(s) hold no rows")
    try:
        import datasets
    except ImportError:
        raise ValueError(f"--data {path}: reading parquet needs the 'datasets' package (pip install datasets); "
                         "or give the rows as .jsonl") from None
    try:
        ds = datasets.load_dataset("parquet", data_files=files, split="train")
    except Exception as e:  # datasets' own wrappers of arrow errors
        raise ValueError(f"--data {path}: cannot load the parquet file(s) ({type(e).__name__}: {e})") from None
    return HubRows(ds), DataInfo(str(path), str(ds._fingerprint)[:16], len(ds))


def load(task: Task, path: Path):
    if not path.exists():
        raise FileNotFoundError(f"--data {path}: no such file or folder (use 'sample', 'hub' or a local path)")
    if path.suffix == ".jsonl":
        return _jsonl(task, path)
    parquet_folder = path.is_dir() and (any(path.glob("*.parquet")) or any(path.glob("data/*.parquet")))
    if path.suffix == ".parquet" or parquet_folder:
        return _parquet(path)
    if task.hooks.load_layout is None:
        raise ValueError(f"--data {path}: task {task.name} has no official layout; pass a .jsonl or "
                         f"parquet file in the hub schema (columns {task.required_columns})")
    # a folder in the official layout, or the layout's main file itself (e.g. testdev_balanced_questions.json)
    try:
        rows, files = task.hooks.load_layout(path)
    except (KeyError, TypeError, AttributeError, IndexError) as e:  # a file of the layout holds something else
        raise ValueError(f"--data {path}: not readable as the {task.name} official layout: a file there holds "
                         f"something else ({type(e).__name__}: {e})") from None
    root = path if path.is_dir() else path.parent
    return rows, DataInfo(str(path), files_digest(*files, rows=rows, root=root), len(rows),  # content, not where
                          stamp=images_stamp(rows, root))
