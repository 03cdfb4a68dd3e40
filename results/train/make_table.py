"""Accuracy of trained tiny systems on the synthetic test split, and the scan-order probe.

For every model folder given (``run_eval.py train`` outputs: ``<dir>/<preset>-seed<k>/model`` or a shipped
checkpoint), answer every question of the synthetic ``test`` split (scale ``--scale``; never seen in
training) three times: with the visual tokens in raster order, with the patch order transposed (column-major
over the patch grid) and with a fixed random permutation -- the same images, only the order in which the
patch features reach the projector changes.  Accuracy = mean per-question score of the benchmark's own
scorer (VQA soft accuracy, exact match, yes/no), in percent.  Writes ``table.json``, ``table.md`` and ``table.png``.

``--split val`` answers the validation split instead (raster order is enough: ``--orders raster``), writes
``val_table.json`` / ``val_table.md`` and ``val_selection.jsonl``: per model its val accuracies and their mean,
and per system the seed that ships (best mean) marked ``"ships": true``.  ``--split train --scale 300,40,10``
answers a prefix of the training split (how well the models fit what they were trained on).

    python results/train/make_table.py --models DIR/tiny-qmamba-seed0/model,... --out results/train
    python results/train/make_table.py --split val --scale val --orders raster --models ... --out DIR
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from collections import defaultdict
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

ORDERS = ("raster", "transposed", "permuted")


def order_index(kind: str, n: int) -> torch.Tensor:
    if kind == "raster":
        return torch.arange(n)
    if kind == "transposed":
        side = int(round(n ** 0.5))
        return torch.arange(n).view(side, side).t().reshape(-1)
    return torch.randperm(n, generator=torch.Generator().manual_seed(1234))


def evaluate(model, data, order: str, batch_size: int, max_new_tokens: int) -> dict:
    from qmamba_eval.tasks import get_task, task_options

    idx = order_index(order, model.vision.num_patches)
    handle = model.vision.register_forward_hook(lambda mod, inp, out: out[:, idx])
    images = data.images()
    out = {}
    try:
        for name in sorted(data.rows):
            task, rows = get_task(name), data.rows[name]
            opts = task_options(task, {})
            scores, answers = [], []
            for i in range(0, len(rows), batch_size):
                chunk = rows[i:i + batch_size]
                texts = model.generate([images[r["image"]] for r in chunk], [task.prompt(r) for r in chunk],
                                       max_new_tokens=max_new_tokens)
                for r, a in zip(chunk, texts):
                    scores.append(task.hooks.score_one(a, task.hooks.references(r), opts)[1])
                    answers.append(a)
            out[name] = {"accuracy": 100.0 * sum(scores) / len(scores), "n": len(scores),
                         "distinct_answers": len(set(answers))}
    finally:
        handle.remove()
    return out


def main():
    from qmamba_eval import synthetic
    from qmamba_eval.models import build_model

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", help="comma-separated model folders (name: <preset>-seed<k>/model)")
    p.add_argument("--split", default="test", choices=("test", "val", "train"),
                   help="test: the table; val: choose the seed that ships (writes val_selection.jsonl); "
                        "train: a prefix of the training split (--scale SHAPES,SIGNS,SUMS)")
    p.add_argument("--scale", default="small",
                   help="synthetic split scale: a name (val: 'val', the same size as 'small') or SHAPES,SIGNS,SUMS")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-new-tokens", type=int, default=6, help="answers are one word (<= 4 tokens + EOS)")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--skip-invariant", action="store_true",
                   help="Q-Mamba / Q-Former with global attention: answer in raster order only and copy the result "
                        "to the other orders (their output does not depend on the token order; tests/test_projectors.py)")
    p.add_argument("--orders", default=",".join(ORDERS), help="visual-token orders to answer in")
    p.add_argument("--merge", help="comma-separated table.json files: write their rows together, evaluate nothing")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    if a.merge:
        parts = [json.loads(Path(f).read_text()) for f in a.merge.split(",")]
        rows = [r for part in parts for r in part["rows"] if r["model"] != "majority"]
        rows.insert(0, next(r for r in parts[0]["rows"] if r["model"] == "majority"))
        meta = dict(parts[0]["meta"], command="python results/train/make_table.py " + " ".join(sys.argv[1:]),
                    parts=[part["meta"]["command"] for part in parts])
        out = Path(a.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "table.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
        (out / "table.md").write_text(markdown(rows, meta))
        plot(rows, meta, out / "table.png")
        print((out / "table.md").read_text())
        return
    scale = tuple(int(x) for x in a.scale.split(",")) if "," in a.scale else a.scale
    data = synthetic.generate(a.split, seed=0, scale=scale)
    rows = [majority_row(data)]
    for folder in a.models.split(","):
        folder = Path(folder)
        label = folder.parent.name if folder.name == "model" else folder.name
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = build_model(str(folder))
        t0 = time.time()
        invariant = a.skip_invariant and model.config.projector in ("qmamba", "qformer") and \
            not model.config.projector_kwargs.get("local_attention") and \
            not model.config.projector_kwargs.get("connector")
        for order in a.orders.split(","):
            if invariant and order != "raster":
                rows.append(dict(rows[-1], order=order, copied_from="raster"))
                continue
            res = evaluate(model, data, order, a.batch_size, a.max_new_tokens)
            rows.append({"model": label, "system": model.config.name, "order": order, "tasks": res,
                         "parameters": sum(x.numel() for x in model.parameters())})
            print(label, order, {k: round(v["accuracy"], 1) for k, v in res.items()}, f"{time.time() - t0:.0f}s",
                  flush=True)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"command": "python results/train/make_table.py " + " ".join(sys.argv[1:]),
            "data": f"synthetic {a.split} split, seed 0, scale {a.scale} (qmamba_eval.data.synthetic): NOT benchmark data",
            "counts": {k: len(v) for k, v in data.rows.items()}, "max_new_tokens": a.max_new_tokens}
    stem = "table" if a.split == "test" else f"{a.split}_table"  # never overwrites the test table
    (out / f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    (out / f"{stem}.md").write_text(markdown(rows, meta))
    plot(rows, meta, out / f"{stem}.png")
    print((out / f"{stem}.md").read_text())
    if a.split == "val":
        write_selection(rows, out / "val_selection.jsonl")


def write_selection(rows, path: Path) -> None:
    """Per model its val accuracy and mean over tasks; per system the best mean is marked ``"ships": true``."""
    scored = [{"model": r["model"], "system": r["system"], "mean": round(statistics.mean(
        v["accuracy"] for v in r["tasks"].values()), 2), "val": {k: round(v["accuracy"], 2) for k, v in
                                                                 r["tasks"].items()}}
              for r in rows if r["model"] != "majority" and r["order"] == "raster"]
    best = {}
    for s in scored:  # a tie (to 0.01 points) keeps the model listed first
        if s["system"] not in best or s["mean"] > best[s["system"]]["mean"]:
            best[s["system"]] = s
    with open(path, "w") as f:
        for s in scored:
            f.write(json.dumps(dict(s, ships=best[s["system"]] is s)) + "\n")
    for system, s in sorted(best.items()):
        print(f"ships: {system}: {s['model']} (val mean {s['mean']})")


def majority_row(data) -> dict:
    """The most common training answer of each benchmark, given to every test question (a floor)."""
    from collections import Counter

    from qmamba_eval import synthetic
    from qmamba_eval.tasks import get_task, task_options

    train = synthetic.generate("train", seed=0, tasks=sorted(data.rows))
    res = {}
    for name, rows in data.rows.items():
        task = get_task(name)
        answer = Counter(train.targets[name]).most_common(1)[0][0]
        opts = task_options(task, {})
        scores = [task.hooks.score_one(answer, task.hooks.references(r), opts)[1] for r in rows]
        res[name] = {"accuracy": 100.0 * sum(scores) / len(scores), "n": len(scores), "answer": answer}
    return {"model": "majority", "system": "majority answer (train split)", "order": "-", "tasks": res}


def markdown(rows, meta) -> str:
    tasks = sorted(rows[0]["tasks"])
    by = defaultdict(lambda: defaultdict(list))  # (system, order) -> task -> [accuracy per seed]
    for r in rows:
        for t in tasks:
            by[(r["system"], r["order"])][t].append(r["tasks"][t]["accuracy"])

    def cell(v):
        if len(v) == 1:
            return f"{v[0]:.1f}"
        return f"{statistics.mean(v):.1f} ± {statistics.stdev(v):.1f}"

    lines = [f"Accuracy on {meta['data']}; questions: {meta['counts']}.",
             "Accuracy in percent (benchmark's own per-question scorer); mean ± sample std over seeds when several.",
             f"Made by: `{meta['command']}`", "",
             "| system | seeds | visual-token order | " + " | ".join(tasks) + " | mean |",
             "| --- | --- | --- | " + " | ".join("---" for _ in tasks) + " | --- |"]
    for (system, order), per in by.items():
        n = len(next(iter(per.values())))
        means = [statistics.mean(per[t]) for t in tasks]
        lines.append(f"| {system} | {n} | {order} | " + " | ".join(cell(per[t]) for t in tasks)
                     + f" | {statistics.mean(means):.1f} |")
    copied = sorted({f"{r['model']}" for r in rows if r.get("copied_from")})
    if copied:
        lines += ["", "Not re-run (order-invariant projector, global attention; raster result copied): "
                  + ", ".join(copied) + "."]
    return "\n".join(lines) + "\n"


def plot(rows, meta, path: Path) -> Path:
    """Left: accuracy per task and system (raster order), bars = mean over seeds, whiskers = min..max, the
    majority answer as a grey tick. Right: the mean over tasks per visual-token order (the scan-order probe)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted(rows[0]["tasks"])
    majority = next((r for r in rows if r["model"] == "majority"), None)
    systems = list(dict.fromkeys(r["system"] for r in rows if r["model"] != "majority"))
    orders = [o for o in ORDERS if any(r["order"] == o for r in rows)]

    def per_seed(system, order, task=None):
        got = [r for r in rows if r["system"] == system and r["order"] == order]
        if task is None:
            return [statistics.mean(r["tasks"][t]["accuracy"] for t in tasks) for r in got]
        return [r["tasks"][task]["accuracy"] for r in got]

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.8), gridspec_kw={"width_ratios": [3, 1.3]})
    width = 0.8 / max(1, len(systems))
    for k, system in enumerate(systems):
        xs = [i + (k - (len(systems) - 1) / 2) * width for i in range(len(tasks))]
        vals = [per_seed(system, "raster", t) for t in tasks]
        means = [statistics.mean(v) for v in vals]
        err = [[m - min(v) for m, v in zip(means, vals)], [max(v) - m for m, v in zip(means, vals)]]
        ax.bar(xs, means, width, yerr=err, capsize=2, label=f"{system} ({len(vals[0])} seeds)")
    if majority:
        for i, t in enumerate(tasks):
            ax.hlines(majority["tasks"][t]["accuracy"], i - 0.45, i + 0.45, colors="grey", linestyles="--", lw=1,
                      label="majority answer" if i == 0 else None)
    ax.set_xticks(range(len(tasks)), tasks)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=3)
    ax.set_title("raster order: mean over seeds, whiskers min..max")
    for k, system in enumerate(systems):
        means = [statistics.mean(per_seed(system, o)) if per_seed(system, o) else float("nan") for o in orders]
        bx.plot(range(len(orders)), means, marker="o", label=system)
    bx.set_xticks(range(len(orders)), orders)
    bx.set_ylabel("mean accuracy over tasks (%)")
    bx.set_title("scan-order probe")
    bx.legend(fontsize=7)
    fig.suptitle(meta["data"], fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


if __name__ == "__main__":
    main()
