"""Re-score predictions made anywhere: our samples files, lmms-eval ``samples_*.jsonl``, LLaVA answer files.

    run_eval.py score --task pope --predictions answers.jsonl --references ../POPE/output/coco \
        --questions llava_pope_test.jsonl
    run_eval.py score --task mme --predictions mme_answers.jsonl --references MME/eval_tool/Your_Results

Every format is turned into our sample rows (answer, references, split) and scored by the task's hooks.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from .data.local import POPE_SPLITS
from .data.sources import read_jsonl
from .hooks import MME_SUFFIX
from .tasks import Task, get_task


def detect(rows: list[dict]) -> str:
    if not rows:
        raise ValueError("the predictions file is empty")
    first = rows[0]
    if "answer" in first and "references" in first:
        return "qmamba"
    if "doc" in first and ("filtered_resps" in first or "resps" in first):
        return "lmms_eval"
    if "question_id" in first and "text" in first:
        return "llava"
    raise ValueError(f"unrecognised predictions format (keys {sorted(first)}); expected our samples file, "
                     "lmms-eval samples (doc + filtered_resps) or LLaVA answers (question_id + text)")


def _lmms_answer(row) -> str:
    resp = row.get("filtered_resps") or row.get("resps")
    while isinstance(resp, list):
        resp = resp[0] if resp else ""
    return "" if resp is None else str(resp)


def from_lmms_eval(task: Task, rows: list[dict]) -> list[dict]:
    out = []
    for r in rows:
        doc = r["doc"]
        missing = [c for c in task.required_columns if c != "image" and c not in doc]
        if missing:
            raise ValueError(f"lmms-eval sample {r.get('doc_id')} lacks {missing} in its doc")
        out.append({"question_id": str(doc.get("question_id", doc.get("id", r.get("doc_id")))),
                    "split": task.split_of(doc), "answer": _lmms_answer(r), "references": task.hooks.references(doc)})
    return out


def from_llava_pope(rows: list[dict], labels_dir: Path, questions: Path) -> list[dict]:
    """LLaVA's eval: answers of each category, in file order, pair with the lines of coco_pope_<cat>.json."""
    if questions is None:
        raise ValueError("POPE answers from LLaVA need --questions (LLaVA's llava_pope_test.jsonl, with categories)")
    category = {q["question_id"]: q["category"] for q in read_jsonl(questions)}
    by_cat = defaultdict(list)
    for r in rows:
        if r["question_id"] not in category:
            raise ValueError(f"answer for question {r['question_id']} not in {questions}")
        by_cat[category[r["question_id"]]].append(r)
    out = []
    for cat, answers in by_cat.items():
        label_file = labels_dir / f"coco_pope_{cat}.json"
        if not label_file.is_file():
            raise FileNotFoundError(f"POPE label file {label_file} missing (need {', '.join(POPE_SPLITS)})")
        labels = read_jsonl(label_file)
        if len(labels) != len(answers):
            raise ValueError(f"{cat}: {len(answers)} answers but {len(labels)} labels in {label_file} "
                             "(POPE files must be commit e3e3926: random = 2,910)")
        for a, lab in zip(answers, labels):
            out.append({"question_id": str(a["question_id"]), "split": cat, "answer": a["text"],
                        "references": lab["label"].strip().lower()})
    return out


def read_mme_ground_truth(folder: Path) -> dict:
    """{(category, image, question stem): "yes"/"no"} from MME's eval-tool files <category>.txt."""
    gt = {}
    files = sorted(folder.glob("*.txt"))
    if not files:
        raise FileNotFoundError(f"{folder}: no <category>.txt ground-truth files")
    for f in files:
        for line in f.read_text().splitlines():
            if line.strip():
                image, question, answer = line.split("\t")
                stem = question.replace(MME_SUFFIX.strip(), "").strip()
                gt[(f.stem, image.strip(), stem)] = answer.strip().lower()
    return gt


def from_llava_mme(rows: list[dict], gt_dir: Path) -> list[dict]:
    gt = read_mme_ground_truth(gt_dir)
    out = []
    for r in rows:
        qid = str(r["question_id"])
        cat, image = qid.split("/", 1)[0], qid.rsplit("/", 1)[-1]
        stem = r.get("prompt", "").split("\nAnswer the question")[0].replace(MME_SUFFIX.strip(), "").strip()
        key = (cat, image, stem)
        if key not in gt:
            raise ValueError(f"MME answer {qid!r} / {stem!r} has no ground truth in {gt_dir}")
        out.append({"question_id": qid, "split": cat, "answer": r["text"],
                    "references": {"label": gt.pop(key), "image": f"{cat}/{image}"}})
    if gt:
        missing_cats = sorted({k[0] for k in gt})
        raise ValueError(f"{len(gt)} MME questions have no answer (categories {missing_cats})")
    return out


def load_predictions(task: Task, predictions: Path, references: Path | None = None,
                     questions: Path | None = None) -> tuple[str, list[dict]]:
    rows = read_jsonl(predictions)
    fmt = detect(rows)
    if fmt == "qmamba":
        return fmt, rows
    if fmt == "lmms_eval":
        return fmt, from_lmms_eval(task, rows)
    if references is None:
        raise ValueError(f"LLaVA answer files carry no ground truth: pass --references for task {task.name}")
    if task.name == "pope":
        return fmt, from_llava_pope(rows, references, questions)
    if task.name == "mme":
        return fmt, from_llava_mme(rows, references)
    return fmt, from_answers_and_data(task, rows, references)


def from_answers_and_data(task: Task, rows: list[dict], references: Path) -> list[dict]:
    """``{question_id, text}`` answers joined by question id to any data source we can load (official layout,
    hub-schema jsonl/parquet) -- VQAv2, GQA, TextVQA."""
    from .data import load_docs
    from .runner import question_id

    docs, _ = load_docs(task, str(references))
    by_id = {question_id(d): d for d in docs}
    out = []
    for r in rows:
        doc = by_id.get(str(r["question_id"]))
        if doc is None:
            raise ValueError(f"answer for question {r['question_id']} has no reference in {references}")
        out.append({"question_id": str(r["question_id"]), "split": task.split_of(doc), "answer": r["text"],
                    "references": task.hooks.references(doc)})
    return out


def rescore(task_name: str, predictions, references=None, questions=None, options: dict | None = None) -> dict:
    task = get_task(task_name)
    opts = dict(task.options)
    opts.update({k: v for k, v in (options or {}).items() if v is not None and k in task.options})
    fmt, samples = load_predictions(task, Path(predictions), references and Path(references),
                                    questions and Path(questions))
    for s in samples:
        s["parsed"], s["score"] = task.hooks.score_one(s.get("answer", ""), s["references"], opts)
        if s.get("error"):
            s["score"] = 0.0
    return {"task": task.name, "version": task.version, "format": fmt, "options": opts,
            "n_samples": len(samples), "metrics": task.hooks.aggregate(samples, opts)}


def cmd_score(argv) -> int:
    p = argparse.ArgumentParser(prog="run_eval.py score", description="Re-score a predictions file.")
    p.add_argument("--task", required=True)
    p.add_argument("--predictions", required=True)
    p.add_argument("--references", help="POPE: folder of coco_pope_*.json; MME: ground-truth folder; "
                   "VQAv2/GQA/TextVQA: the data (official layout or hub-schema file)")
    p.add_argument("--questions", help="POPE: LLaVA's question file (question_id -> category)")
    p.add_argument("--pope-parser", choices=["llava", "strict"])
    p.add_argument("--vqa-rule", choices=["lmms", "official"])
    a = p.parse_args(argv)
    res = rescore(a.task, a.predictions, a.references, a.questions,
                  {"pope_parser": a.pope_parser, "vqa_rule": a.vqa_rule})
    print(json.dumps(res, indent=1))
    print()
    for k, v in res["metrics"].items():
        print(f"{res['task']:<8} {k:<28} {v:>9.2f}")
    return 0
