"""Accuracy of trained models on a synthetic split, and the scan-order probe, through the ``Runner``.

Every model answers every question of the split (``--data synthetic:<split>:<scale>``; never seen in training)
once per visual-token order -- raster, transposed (column-major over the patch grid), permuted (one fixed random
permutation): the same images, only the order in which the patch features reach the projector changes. Accuracy =
the mean per-question score of the benchmark's own scorer (VQA soft accuracy, exact match, yes/no), in percent,
read from the run's samples files. The run folders stay under ``<out>/runs`` (resumable, re-scorable).

``split="val"`` also writes ``val_selection.jsonl``: per model its val accuracies and their mean, and per system
the model that ships (best mean) marked ``"ships": true``.
"""

from __future__ import annotations

import json
import statistics
import time
import warnings
from collections import Counter
from pathlib import Path

ORDERS = ("raster", "transposed", "permuted")


def model_label(folder: Path) -> str:
    """``<dir>/<preset>-seed<k>/model`` -> ``<preset>-seed<k>``; a shipped folder -> its name."""
    folder = Path(folder)
    return folder.parent.name if folder.name == "model" else folder.name


def order_invariant(config) -> bool:
    """Q-Mamba / Q-Former with global attention and no scan connector: the output does not depend on the token
    order (tests/test_projectors.py), so other orders can copy the raster result."""
    kw = config.projector_kwargs
    return config.projector in ("qmamba", "qformer") and not kw.get("local_attention") and not kw.get("connector")


def evaluate(folder, data: str, orders, out: Path, batch_size: int = 32, max_new_tokens: int = 6,
             skip_invariant: bool = False, tasks=None, log=print) -> list[dict]:
    """One row per order: ``{model, system, order, tasks: {task: {accuracy, n, distinct_answers}}, ...}``."""
    from ..models import build_model
    from ..results import read_samples
    from ..runner import RunConfig, Runner
    from ..synthetic import task_styles

    label = model_label(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_model(str(folder))
    names = sorted(tasks or task_styles())
    rows, t0 = [], time.time()
    for order in orders:
        if skip_invariant and order != "raster" and order_invariant(model.config) and rows:
            rows.append(dict(rows[0], order=order, copied_from="raster"))
            continue
        cfg = RunConfig(tasks=names, model=str(folder), data=data, batch_size=batch_size, max_new_tokens=max_new_tokens,
                        output_dir=str(Path(out) / "runs"), run_name=f"{label}-{order}", token_order=order,
                        progress=False, plot=False)
        runner = Runner(cfg, model=model)
        runner.run()
        res = {}
        for name in names:
            samples = read_samples(runner.run_dir / f"samples_{name}.jsonl")
            scores = [s["score"] for s in samples if s["score"] is not None]
            res[name] = {"accuracy": 100.0 * sum(scores) / len(scores), "n": len(scores),
                         "distinct_answers": len({s["answer"] for s in samples})}
        rows.append({"model": label, "system": model.config.name, "order": order, "tasks": res,
                     "parameters": sum(x.numel() for x in model.parameters()), "run": str(runner.run_dir)})
        log(label, order, {k: round(v["accuracy"], 1) for k, v in res.items()}, f"{time.time() - t0:.0f}s")
    return rows


def majority_row(data: str, tasks=None) -> dict:
    """The most common training answer of each task, given to every question of the split (a floor)."""
    from .. import synthetic
    from ..data.sources import load_docs
    from ..tasks import get_task, task_options

    names = sorted(tasks or synthetic.task_styles())
    train = synthetic.generate("train", seed=0, tasks=names)
    res = {}
    for name in names:
        task = get_task(name)
        answer = Counter(train.targets[name]).most_common(1)[0][0]
        opts = task_options(task, {})
        rows, _ = load_docs(task, data)
        scores = [task.hooks.score_one(answer, task.hooks.references(r), opts)[1] for r in rows]
        scores = [s for s in scores if s is not None]
        res[name] = {"accuracy": 100.0 * sum(scores) / len(scores), "n": len(scores), "answer": answer}
    return {"model": "majority", "system": "majority answer (train split)", "order": "-", "tasks": res}


def write_table(rows: list, meta: dict, out: Path, stem: str = "table") -> Path:
    """``<stem>.json``, ``<stem>.md`` and ``<stem>.png`` under ``out``."""
    from ..report.study import plot_table, table_markdown

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    (out / f"{stem}.md").write_text(table_markdown(rows, meta))
    plot_table(rows, meta, out / f"{stem}.png")
    return out / f"{stem}.md"


def merge_tables(files, command: str) -> tuple[list, dict]:
    """Rows of several table.json files together (one majority row, from the first)."""
    parts = []
    for f in files:
        try:
            part = json.loads(Path(f).read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"--merge {f}: not valid JSON ({e.msg})") from None
        if not (isinstance(part, dict) and isinstance(part.get("rows"), list) and isinstance(part.get("meta"), dict)
                and all(isinstance(r, dict) and "model" in r and "order" in r for r in part["rows"])
                and any(r["model"] == "majority" for r in part["rows"])):
            raise ValueError(f"--merge {f}: not a table.json written by run_eval.py table (rows with a majority row, "
                             "meta)")
        if parts and part["meta"].get("data") != parts[0]["meta"].get("data"):
            raise ValueError(f"--merge {f}: its data ({part['meta'].get('data')}) is not the first table's "
                             f"({parts[0]['meta'].get('data')}); merge tables of one split and scale")
        parts.append(part)
    rows = [r for part in parts for r in part["rows"] if r["model"] != "majority"]
    seen = set()
    for r in rows:
        if (r["model"], r["order"]) in seen:
            raise ValueError(f"--merge: model {r['model']} in {r['order']} order is in more than one table")
        seen.add((r["model"], r["order"]))
    rows.insert(0, next(r for r in parts[0]["rows"] if r["model"] == "majority"))
    meta = dict(parts[0]["meta"], command=command, parts=[part["meta"]["command"] for part in parts])
    return rows, meta


def write_selection(rows, path: Path) -> dict:
    """Per model its val accuracy and mean over tasks; per system the best mean is marked ``"ships": true``."""
    scored = [{"model": r["model"], "system": r["system"],
               "mean": round(statistics.mean(v["accuracy"] for v in r["tasks"].values()), 2),
               "val": {k: round(v["accuracy"], 2) for k, v in r["tasks"].items()}}
              for r in rows if r["model"] != "majority" and r["order"] == "raster"]
    best = {}
    for s in scored:  # a tie (to 0.01 points) keeps the model listed first
        if s["system"] not in best or s["mean"] > best[s["system"]]["mean"]:
            best[s["system"]] = s
    with open(path, "w") as f:
        for s in scored:
            f.write(json.dumps(dict(s, ships=best[s["system"]] is s)) + "\n")
    return best
