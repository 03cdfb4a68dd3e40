"""``run_eval.py table``: trained models on a synthetic split, with the scan-order probe (``study/table.py``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .options import check_output, positive_int

DESCRIPTION = ("Accuracy of trained models (run_eval.py train outputs or shipped checkpoints) on a synthetic split, "
               "each answered with the patches in raster, transposed and permuted order (the scan-order probe). "
               "Writes table.json, table.md and table.png (val split: val_table.* and val_selection.jsonl).")


def add_arguments(p) -> None:
    p.add_argument("--models", help="comma-separated model folders (<preset>-seed<k>/model or a checkpoint folder)")
    p.add_argument("--split", default="test", choices=("test", "val", "train"),
                   help="test: the table; val: choose the seed that ships; train: how well the training split fits")
    p.add_argument("--scale", default="small", help="a scale name (small, val, test, ...) or SHAPES,SIGNS,SUMS")
    p.add_argument("--orders", default="raster,transposed,permuted", help="visual-token orders to answer in")
    p.add_argument("--skip-invariant", action="store_true",
                   help="order-invariant projectors (query projectors, global attention) answer in raster order "
                        "only; their other rows copy it")
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--max-new-tokens", type=positive_int, default=6, help="answers are one word (<= 4 tokens + EOS)")
    p.add_argument("--out", required=True, help="folder for the table files (run folders under OUT/runs)")
    p.add_argument("--threads", type=positive_int, help="torch CPU threads")
    p.add_argument("--merge", help="comma-separated table.json files: write their rows together, evaluate nothing")


def run(a) -> int:
    from ..study.table import ORDERS, evaluate, majority_row, merge_tables, write_selection, write_table

    command = "python run_eval.py table " + " ".join(sys.argv[2:] if sys.argv[1:2] == ["table"] else sys.argv[1:])
    if a.merge:
        check_output(a.out, "--out", folder=True)
        rows, meta = merge_tables(a.merge.split(","), command)
        print(write_table(rows, meta, Path(a.out)).read_text())
        return 0
    orders = [o.strip() for o in a.orders.split(",") if o.strip()]
    bad = [o for o in orders if o not in ORDERS]
    if bad or not orders:
        raise ValueError(f"--orders {a.orders!r}: choose from {', '.join(ORDERS)}")
    if len(set(orders)) < len(orders):
        raise ValueError(f"--orders {a.orders!r}: an order is named twice")
    folders = [Path(os.path.normpath(m.strip())) for m in (a.models or "").split(",") if m.strip()]
    if not folders:
        raise ValueError("--models names no model folder (or give --merge)")
    if len(set(folders)) < len(folders):
        raise ValueError(f"--models: {next(f for f in folders if folders.count(f) > 1)} is named twice")
    check_output(a.out, "--out", folder=True)
    from ..data.sources import parse_synthetic

    try:
        parse_synthetic(f"synthetic:{a.split}:{a.scale}")
    except ValueError as e:
        raise ValueError(f"--scale {a.scale!r}: {str(e).split(': ', 1)[-1]}") from None
    for f in folders:
        if not (f / "config.json").is_file():
            raise ValueError(f"--models {f}: not a model folder (no config.json); a training run's model is "
                             f"<out>/model")
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    data = f"synthetic:{a.split}:{a.scale}"
    rows = [majority_row(data)]
    for folder in folders:
        rows += evaluate(folder, data, orders, Path(a.out), a.batch_size, a.max_new_tokens, a.skip_invariant)
    meta = {"command": command, "data": f"synthetic {a.split} split, seed 0, scale {a.scale} (qmamba_eval.synthetic):"
                                        " NOT benchmark data",
            "counts": {k: v["n"] for k, v in rows[0]["tasks"].items()}, "max_new_tokens": a.max_new_tokens}
    stem = "table" if a.split == "test" else f"{a.split}_table"  # never overwrites the test table
    print(write_table(rows, meta, Path(a.out), stem).read_text())
    if a.split == "val":
        for system, s in sorted(write_selection(rows, Path(a.out) / "val_selection.jsonl").items()):
            print(f"ships: {system}: {s['model']} (val mean {s['mean']})")
    return 0
