"""The trade-off the paper is about: accuracy against the LLM's visual tokens, beside latency against them.

Every entry is trained with the same recipe and budget (``run_eval.py train`` defaults) and evaluated on the
synthetic test split with the scan-order probe (``run_eval.py train-many --orders raster,transposed,permuted``):

* Q-Mamba and Q-Former with 4, 9, 16 and 36 queries;
* the fixed-scan systems (Cobra-style MLP, VL-Mamba-style bidirectional scan + MLP) cut to the same token counts
  the way such systems are cut in practice: average pooling of the 6 x 6 patch grid (2 x 2 -> 9 tokens,
  3 x 3 -> 4 tokens);
* at 36 queries: Q-Mamba with local attention, and with a bidirectional connector, pretrained in stage 0 (the
  attribute heads read its output) or not.

``plan(seeds)`` gives the ``train-many`` jobs; ``collect(runs)`` reads what they wrote (one row per run: accuracy
per benchmark, tokens, seed, probe); ``summarise(rows)`` gives per entry the mean over seeds and the seed range, of the
mean over benchmarks and of the task whose TOML says ``spotlight = true`` (shown alone).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

# entry -> (family, LLM visual tokens, preset, projector overrides, stage-0 overrides)
ENTRIES = {
    **{f"qmamba-q{q}": ("Q-Mamba", q, "tiny-qmamba", {"num_queries": q}, None) for q in (4, 9, 16, 36)},
    **{f"qformer-q{q}": ("Q-Former", q, "tiny-qformer", {"num_queries": q}, None) for q in (4, 9, 16, 36)},
    **{f"cobra-t{36 // p ** 2}": ("Cobra (pooled)", 36 // p ** 2, "tiny-cobra", {"pool": p} if p > 1 else {}, None)
       for p in (1, 2, 3)},
    **{f"vlmamba-t{36 // p ** 2}": ("VL-Mamba (pooled)", 36 // p ** 2, "tiny-vlmamba", {"pool": p} if p > 1 else {},
                                    None) for p in (1, 2, 3)},
    "qmamba-local36": ("Q-Mamba local attention", 36, "tiny-qmamba", {"local_attention": True}, None),
    "qmamba-conn36": ("Q-Mamba + connector", 36, "tiny-qmamba", {"connector": "bidirectional"}, None),
    "qmamba-conn36-pre": ("Q-Mamba + pretrained connector", 36, "tiny-qmamba", {"connector": "bidirectional"},
                          "train=vision+connector"),
}


def plan(seeds=(0, 1, 2), extra_args=()) -> list[dict]:
    """``train-many`` jobs: every entry x seed, the same recipe for all (``extra_args`` appended to each)."""
    jobs = []
    for name, (_, _, preset, overrides, stage0) in ENTRIES.items():
        for seed in seeds:
            args = ["--model", preset, "--seed", str(seed)]
            if overrides:
                args += ["--projector", ",".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}"
                                                 for k, v in overrides.items())]
            if stage0:
                args += ["--stage0", stage0]
            jobs.append({"name": f"{name}-seed{seed}", "args": args + list(extra_args)})
    return jobs


def collect(runs: Path) -> list[dict]:
    """One row per finished job under ``runs`` (``train-many --out``): entry, family, tokens, seed, accuracy per
    benchmark and their mean, per visual-token order."""
    rows = []
    for table in sorted(Path(runs).glob("*/table/table.json")):
        job = table.parent.parent.name
        entry, _, seed = job.rpartition("-seed")
        if entry not in ENTRIES:
            continue
        family, tokens = ENTRIES[entry][:2]
        for r in json.loads(table.read_text())["rows"]:
            if r["model"] == "majority":
                continue
            acc = {t: v["accuracy"] for t, v in r["tasks"].items()}
            rows.append({"entry": entry, "family": family, "tokens": tokens, "seed": int(seed), "order": r["order"],
                         "accuracy": acc, "mean": statistics.mean(acc.values()), "run": str(table.parent)})
    return rows


def spotlight_task() -> str | None:
    """The task shown alone beside the mean (its TOML says ``spotlight = true``)."""
    from ..tasks import all_tasks

    return next((name for name, t in sorted(all_tasks().items()) if t.spotlight), None)


def summarise(rows: list[dict], spotlight: str | None = None) -> list[dict]:
    """Per entry and order: mean over seeds, min..max, of the mean accuracy and of the spotlight task (when there)."""
    spotlight = spotlight or spotlight_task()
    out = []
    keys = sorted({(r["entry"], r["order"]) for r in rows}, key=lambda k: (ENTRIES[k[0]][0], ENTRIES[k[0]][1], k[1]))
    for entry, order in keys:
        got = [r for r in rows if r["entry"] == entry and r["order"] == order]
        family, tokens = ENTRIES[entry][:2]
        row = {"entry": entry, "family": family, "tokens": tokens, "order": order, "seeds": len(got),
               "spotlight_task": spotlight}
        for label, values in (("mean", [r["mean"] for r in got]),
                              ("spotlight", [r["accuracy"][spotlight] for r in got if spotlight in r["accuracy"]])):
            if values:
                row[label] = {"mean": statistics.mean(values), "min": min(values), "max": max(values)}
        out.append(row)
    return out


def markdown(summary: list[dict], command: str) -> str:
    spot = next((s["spotlight_task"] for s in summary if s.get("spotlight_task")), "-")
    lines = ["Accuracy on the synthetic test split (NOT benchmark data), mean over seeds [min..max]; the scan-order "
             "probe's permuted rows beside the raster ones.", f"Made by: `{command}`", "",
             f"| system | LLM visual tokens | seeds | mean (raster) | {spot} (raster) | mean (permuted) |",
             "| --- | --- | --- | --- | --- | --- |"]

    def cell(s):
        return "—" if not s else f"{s['mean']:.1f} [{s['min']:.1f}..{s['max']:.1f}]"

    by = {(s["entry"], s["order"]): s for s in summary}
    for entry in dict.fromkeys(s["entry"] for s in summary):
        r, p = by.get((entry, "raster"), {}), by.get((entry, "permuted"), {})
        base = r or p
        lines.append(f"| {base['family']} | {base['tokens']} | {base['seeds']} | {cell(r.get('mean'))} | "
                     f"{cell(r.get('spotlight'))} | {cell(p.get('mean'))} |")
    return "\n".join(lines) + "\n"


def latency_rows(profile_json: Path, batch: int | None = None) -> list[dict]:
    """From a profile.json: per system family, TTFT and prefill against the visual tokens the LLM got (Q-Mamba's
    query sweep and the fixed-scan systems' image-token sweep), at one batch size."""
    doc = json.loads(Path(profile_json).read_text())
    rows = [r for r in doc["rows"] if r.get("status") == "ok" and r.get("visual_tokens_to_llm")]
    batch = batch or min(r["batch"] for r in rows)
    out = []
    for r in rows:
        if r["batch"] != batch or r["system"] in ("reference", "qmamba", "qformer"):
            continue  # the query projectors' own sweep is over image tokens at a fixed query count: not this axis
        family = "qmamba" if r["system"].startswith("qmamba") else r["system"]
        out.append({"family": family, "system": r["system"], "tokens": r["visual_tokens_to_llm"],
                    "ttft_ms": r.get("ttft_ms"), "prefill_ms": r.get("prefill_ms"), "batch": batch,
                    "device": (doc.get("environment") or {}).get("device_name")})
    return out
