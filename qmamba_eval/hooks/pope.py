"""POPE: yes/no parse (``scoring.pope``), accuracy / precision / recall / F1 / yes-ratio per split, their mean
(``mean/*``, POPE's and LLaVA's headline) and pooled over all questions (``pooled/*``, lmms-eval's)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from ..readers.files import coco_image_root, read_jsonl
from ..scoring import pope
from . import Hooks
from .common import question_fields

SPLITS = ("adversarial", "popular", "random")
METRICS = ("accuracy", "precision", "recall", "f1", "yes_ratio")


def references(doc):
    return str(doc["answer"]).strip().lower()


def score_one(answer, label, opts):
    parsed = pope.parse(answer, opts.get("pope_parser", "llava"))
    return parsed, float(parsed == str(label).strip().lower())


def aggregate(samples, opts):
    out = {}
    per = defaultdict(list)
    for s in samples:
        per[s.get("split") or "all"].append((s["parsed"], s["references"]))
    for split, pairs in sorted(per.items()):
        m = pope.metrics(pairs)
        for k in METRICS:
            out[f"{split}/{k}"] = 100.0 * m[k]
        out[f"{split}/n"] = m["n"]
    for k in METRICS:
        out[f"mean/{k}"] = sum(out[f"{s}/{k}"] for s in per) / len(per)
    # lmms-eval's view: one confusion matrix over every question of every split (not the mean of the splits'
    # figures, which is POPE's and LLaVA's). Equal to lmms-eval 0.7.3's pope_* numbers under the strict parser,
    # except yes_ratio (lmms-eval counts ground-truth yes) and recall when answers are neither yes nor no.
    m = pope.metrics([pair for pairs in per.values() for pair in pairs])
    for k in METRICS:
        out[f"pooled/{k}"] = 100.0 * m[k]
    out["pooled/n"] = m["n"]
    return out


def _hub_rows(by_split: dict, image_root: Path) -> list:
    """POPE's own lines ``{question_id, image, text, label}`` per split -> rows in the hub schema."""
    return [{"question_id": f"{split}/{d['question_id']}", "question": d["text"], "answer": d["label"],
             "category": split, "image": str(image_root / d["image"])}
            for split, items in by_split.items() for d in items]


def load_layout(folder: Path):
    """``coco_pope_{adversarial,popular,random}.json`` (JSON lines) + COCO ``val2014/``; or one such file."""
    if folder.is_file():
        folder, files = folder.parent, {folder.stem.replace("coco_pope_", ""): folder}
    else:
        files = {s: folder / f"coco_pope_{s}.json" for s in SPLITS if (folder / f"coco_pope_{s}.json").is_file()}
    if not files:
        raise FileNotFoundError(f"{folder}: POPE layout needs coco_pope_{{adversarial,popular,random}}.json")
    rows = _hub_rows({s: read_jsonl(f) for s, f in files.items()}, coco_image_root(folder))
    return rows, list(files.values())


def rows_from_file(rows: list, path: Path):
    """A single ``coco_pope_<split>.json`` given with --data: POPE's raw lines (``label``, no ``answer``)."""
    if rows and "label" in rows[0] and "answer" not in rows[0]:
        return _hub_rows({path.stem.replace("coco_pope_", ""): rows}, coco_image_root(path.parent))
    return None


def from_lmms_target(row: dict) -> dict:
    """lmms-eval keeps the label (target) but not the category: metrics over all questions, no per-split
    figures (pass --references for adversarial / popular / random)."""
    return {"split": "all", "references": str(row.get("target", "")).strip().lower()}


def read_llava_answers(task, rows: list, labels_dir: Path, questions: Path | None) -> list:
    """LLaVA's eval: the answers of each category, in file order, pair with the lines of coco_pope_<cat>.json."""
    if questions is None:
        raise ValueError("POPE answers from LLaVA need --questions (LLaVA's llava_pope_test.jsonl, with categories)")
    if not labels_dir.is_dir():
        raise ValueError(f"--references {labels_dir}: for LLaVA's POPE answers, the folder holding "
                         f"coco_pope_{{{','.join(SPLITS)}}}.json (POPE's output/coco)")
    category = {}
    for n, q in enumerate(read_jsonl(questions), 1):
        if not isinstance(q, dict) or "question_id" not in q or q.get("category") not in SPLITS:
            raise ValueError(f"--questions {questions}: row {n}: expected question_id and category (one of "
                             f"{', '.join(SPLITS)}); is it LLaVA's llava_pope_test.jsonl?")
        category[q["question_id"]] = q["category"]
    by_cat = defaultdict(list)
    for r in rows:
        if r["question_id"] not in category:
            raise ValueError(f"answer for question {r['question_id']} not in {questions}")
        by_cat[category[r["question_id"]]].append(r)
    out = []
    for cat, answers in by_cat.items():
        label_file = labels_dir / f"coco_pope_{cat}.json"
        if not label_file.is_file():
            raise FileNotFoundError(f"POPE label file {label_file} missing (need {', '.join(SPLITS)})")
        labels = read_jsonl(label_file)
        if len(labels) != len(answers):
            raise ValueError(f"{cat}: {len(answers)} answers but {len(labels)} labels in {label_file} "
                             "(POPE files must be commit e3e3926: random = 2,910)")
        for a, lab in zip(answers, labels):
            out.append({"question_id": str(a["question_id"]), "split": cat, "answer": a["text"],
                        "references": lab["label"].strip().lower()})
    return out


HOOKS = Hooks(question_fields, references, score_one, aggregate, load_layout=load_layout,
              rows_from_file=rows_from_file, read_answers=read_llava_answers, from_lmms_target=from_lmms_target)
