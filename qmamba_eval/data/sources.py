"""Where documents come from: ``sample`` (embedded), ``hub`` (Hugging Face datasets), a local path, or
``synthetic:<split>[:<scale>[:<seed>]]`` (the synthetic data, drawn in memory).

Every source yields rows in the hub schema of the task (see ``tasks/*.toml``: ``required_columns``) and
a fingerprint of the data, recorded in results so runs on different data are never compared silently.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path
from typing import Sequence

from ..tasks import Task
from . import local
from ..readers.columns import check_rows as check_column_types
from ..readers.files import DataInfo, HubRows, read_jsonl, sha256_json

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "assets" / "sample"
SAMPLE_NOTE = "embedded synthetic sample: NOT benchmark data, scores are not benchmark scores"


def _sample(task: Task) -> tuple[list[dict], DataInfo]:
    path = SAMPLE_DIR / f"{task.name}.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"no embedded sample for task {task.name} ({path})")
    rows = read_jsonl(path)
    h = hashlib.sha256(path.read_bytes())
    for name in sorted({r["image"] for r in rows}):
        h.update((SAMPLE_DIR / "images" / name).read_bytes())
    info = DataInfo("sample", h.hexdigest()[:16], len(rows), True, str(SAMPLE_DIR / "images"), [SAMPLE_NOTE])
    return rows, info


def parse_synthetic(data: str) -> tuple[str, object, int]:
    """``synthetic:<split>[:<scale>[:<seed>]]`` -> (split, scale, seed); scale a name or SHAPES,SIGNS,SUMS."""
    from .. import synthetic

    parts = data.split(":")[1:]
    if not 1 <= len(parts) <= 3 or parts[0] not in synthetic.SPLITS:
        raise ValueError(f"--data {data}: expected synthetic:SPLIT[:SCALE[:SEED]] with SPLIT one of "
                         f"{', '.join(synthetic.SPLITS)}")
    scale = parts[1] if len(parts) > 1 else None
    if scale and "," in scale:
        try:
            scale = tuple(int(x) for x in scale.split(","))
        except ValueError:
            scale = None
        if scale is None:
            raise ValueError(f"--data {data}: a scale is a name ({', '.join(synthetic.SCALES)}) or three scene "
                             "counts SHAPES,SIGNS,SUMS")
        synthetic.check_counts(scale, f"--data {data}")
    elif scale and scale not in synthetic.SCALES:
        raise ValueError(f"--data {data}: unknown scale {scale!r}; choose from {', '.join(synthetic.SCALES)} or "
                         "give SHAPES,SIGNS,SUMS")
    try:
        seed = int(parts[2]) if len(parts) > 2 else 0
    except ValueError:
        raise ValueError(f"--data {data}: the seed {parts[2]!r} is not a whole number") from None
    return parts[0], scale, seed


@functools.lru_cache(maxsize=2)
def _synthetic_split(split: str, scale, seed: int):
    from .. import synthetic

    return synthetic.generate(split, seed=seed, scale=scale)


def _synthetic(task: Task, data: str) -> tuple[list[dict], DataInfo]:
    """Rows of the synthetic data drawn in memory (images as PIL images): the trained tiny models' test bed."""
    from .. import synthetic

    split, scale, seed = parse_synthetic(data)
    drawn = _synthetic_split(split, scale, seed)
    if task.name not in drawn.rows:
        raise ValueError(f"--data {data}: task {task.name} has no synthetic question style ([synthetic] in its "
                         "task file)")
    images = drawn.images()
    rows = [dict(r, image=images[r["image"]]) for r in drawn.rows[task.name]]
    h = hashlib.sha256(sha256_json([split, scale, seed, drawn.rows[task.name]]).encode())
    for name in sorted({r["image"] for r in drawn.rows[task.name]}):  # the pixels too (fonts differ by Pillow)
        h.update(images[name].tobytes())
    fp = h.hexdigest()[:16]
    return rows, DataInfo(data, fp, len(rows), notes=[synthetic.NOTE])


def _load_hub_dataset(path, name, split, cache_dir):
    import datasets

    try:
        return datasets.load_dataset(path, name, split=split, cache_dir=cache_dir)
    except Exception as e:  # ConnectionError, OfflineModeIsEnabled, DatasetNotFoundError, ...
        offline = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("HF_DATASETS_OFFLINE")
        raise ConnectionError(
            f"cannot load {path} ({name or 'default'}, split {split}) from the Hugging Face hub: "
            f"{type(e).__name__}: {e}. "
            + ("HF offline mode is on and the dataset is not in the cache. " if offline else
               "Is the hub reachable (HF_ENDPOINT, proxy)? ")
            + "Download it once where there is network (same cache dir via --cache-dir / HF_DATASETS_CACHE) "
              "or pass a local copy with --data PATH.") from e


def hub_reachable(timeout: float = 3.0) -> str | None:
    """None when the Hugging Face hub answers within ``timeout`` seconds, else why not (a proxy in the environment
    is honoured). Offline mode (``HF_HUB_OFFLINE=1``) skips the check: the cache is all there is."""
    import urllib.error
    import urllib.request

    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    try:
        urllib.request.urlopen(urllib.request.Request(endpoint + "/api/whoami-v2", method="HEAD"), timeout=timeout)
    except urllib.error.HTTPError:
        return None  # it answered (401 without a token)
    except Exception as e:  # URLError, timeouts, refused connections
        return f"{endpoint} did not answer within {timeout:g} s ({type(e).__name__}: {getattr(e, 'reason', e)})"
    return None


def _offline() -> bool:
    return any(os.environ.get(k, "").lower() in ("1", "true", "yes") for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def _hub(task: Task, cache_dir: str | None, split: str | None = None) -> tuple[Sequence, DataInfo]:
    hub = dict(task.hub, split=split or task.hub["split"])
    if not _offline():
        why = hub_reachable()
        if why is not None:  # fail in seconds, not after a minute of retries
            raise ConnectionError(f"--data hub: the Hugging Face hub is unreachable: {why}. If {hub['path']} is in "
                                  "your datasets cache, run with HF_HUB_OFFLINE=1; else download it once where there "
                                  "is network (same --cache-dir / HF_DATASETS_CACHE) or pass a local copy with --data "
                                  "PATH")
    paths = [hub["path"]] + ([hub["legacy_path"]] if hub.get("legacy_path") else [])
    errors = []
    for path in paths:
        try:
            ds = _load_hub_dataset(path, hub.get("name"), hub["split"], cache_dir)
        except ConnectionError as e:
            errors.append(str(e))
            continue
        join = None
        if hub.get("images_name"):  # GQA: questions and images are separate configs
            images = _load_hub_dataset(path, hub["images_name"], hub["split"], cache_dir)
            index = {row_id: k for k, row_id in enumerate(images["id"])}
            task_columns = set(ds.column_names) | {"image"}

            def join(row, images=images, index=index):
                k = index.get(row["imageId"])
                return None if k is None else images[k]["image"]
        else:
            task_columns = set(ds.column_names)
        task.check_columns(task_columns, f"hub dataset {path}")
        fp = getattr(ds, "_fingerprint", None) or sha256_json([ds.num_rows, path, hub])
        return HubRows(ds, join), DataInfo(f"hub:{path}:{hub['split']}", str(fp)[:16], len(ds))
    raise ConnectionError(" | ".join(errors))


def load_docs(task: Task, data: str = "sample", limit: int | None = None, cache_dir: str | None = None,
              split: str | None = None, need_images: bool = True) -> tuple[Sequence, DataInfo]:
    """Rows for ``task`` from ``data`` (sample | hub | path), first ``limit`` of them; ``split``: hub only.
    ``need_images=False`` (re-scoring): rows without an ``image`` column are fine."""
    if split and data != "hub":
        raise ValueError(f"a split ({split!r}) can only be chosen for --data hub")
    if data == "sample":
        rows, info = _sample(task)
    elif data.startswith("synthetic:"):
        rows, info = _synthetic(task, data)
    elif data == "hub":
        rows, info = _hub(task, cache_dir, split)
    else:
        rows, info = local.load(task, Path(data))
    if len(rows) == 0:
        raise ValueError(f"{info.source}: no rows for task {task.name}")
    if isinstance(rows, list) and rows:
        task.check_columns(set(rows[0]) | (set() if need_images else {"image"}), info.source)
    if limit is not None and limit < len(rows):
        rows = rows[:limit] if isinstance(rows, list) else rows.head(limit)
    check_rows(task, rows, info.source)
    return rows, info


def check_rows(task: Task, rows, source: str) -> None:
    """The rows' values against the task's column types (hub datasets: the declared columns, images left out)."""
    ds = getattr(rows, "ds", None)
    if ds is None:
        check_column_types(task.columns, rows, source)
        return
    cols = [c for c, spec in task.columns.items() if spec["type"] != "image" and c in ds.column_names]
    if cols:
        check_column_types(task.columns, ds.select_columns(cols).to_list(), source)
