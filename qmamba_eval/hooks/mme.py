"""MME: official yes/no parse and 100*acc + 100*acc+ per category (``scoring.mme``)."""

from __future__ import annotations

from pathlib import Path

from ..readers.files import IMAGE_EXTS, read_text
from ..scoring import mme
from . import Hooks
from .common import question_fields

SUFFIX = "Please answer yes or no."


def question_stem(question: str) -> str:
    """The question without MME's closing instruction (the prompt variants add their own)."""
    return str(question).replace(SUFFIX, "").strip()


def fields(doc):
    f = question_fields(doc)
    f["question_stem"] = question_stem(f["question"])
    return f


def references(doc):
    # question_id is "<category>/<image>" in the hub data: the image key for acc+
    return {"label": str(doc["answer"]).strip().lower(), "image": str(doc["question_id"])}


def score_one(answer, refs, opts):
    parsed = mme.parse(answer)
    return parsed, float(parsed == refs["label"])


def aggregate(samples, opts):
    res = mme.scores((s["split"], s["references"]["image"], s["parsed"], s["references"]["label"]) for s in samples)
    out = {"perception": res["perception"], "cognition": res["cognition"], "total": res["total"]}
    for cat, c in res["categories"].items():
        out[f"{cat}/score"] = c["score"]
        out[f"{cat}/acc"] = 100.0 * c["acc"]
        out[f"{cat}/acc_plus"] = 100.0 * c["acc_plus"]
    out.update(mme.irregular_image_warnings((s["split"], s["references"]["image"]) for s in samples))
    return out


def load_layout(folder: Path):
    """The release folder: one sub-folder per category holding images and a ``.txt`` of ``question<TAB>answer``
    lines each, or ``images/`` + ``questions_answers_YN/``."""
    rows, files = [], []
    for cat in mme.PERCEPTION + mme.COGNITION:
        cdir = folder / cat
        if not cdir.is_dir():
            continue
        qa_dir = cdir / "questions_answers_YN" if (cdir / "questions_answers_YN").is_dir() else cdir
        img_dir = cdir / "images" if (cdir / "images").is_dir() else cdir
        for txt in sorted(qa_dir.glob("*.txt")):
            img = next((img_dir / (txt.stem + e) for e in IMAGE_EXTS if (img_dir / (txt.stem + e)).is_file()), None)
            if img is None:
                raise FileNotFoundError(f"{txt}: no image named {txt.stem}.* in {img_dir}")
            files.append(txt)
            for n, line in enumerate(read_text(txt).splitlines(), 1):
                if line.strip():
                    if "\t" not in line:
                        raise ValueError(f"{txt}:{n}: expected question<TAB>answer, found no tab")
                    q, a = line.rsplit("\t", 1)
                    rows.append({"question_id": f"{cat}/{img.name}", "question": q.strip(), "answer": a.strip(),
                                 "category": cat, "image": str(img)})
    if not rows:
        raise FileNotFoundError(f"{folder}: MME layout needs category folders (existence/, count/, ...)")
    return rows, files


def from_lmms_target(row: dict) -> dict:
    """lmms-eval keeps the label (target) and, in its metric dicts, the category and image (question id)."""
    meta = next((v for v in row.values() if isinstance(v, dict) and "category" in v), {})
    return {"split": str(meta.get("category", "")),
            "references": {"label": str(row.get("target", "")).strip().lower(), "image": str(meta.get("question_id"))}}


def read_ground_truth(folder: Path) -> dict:
    """{(category, image, question stem): "yes"/"no"} from MME's eval-tool files <category>.txt."""
    gt = {}
    files = sorted(Path(folder).glob("*.txt"))
    if not files:
        raise FileNotFoundError(f"{folder}: no <category>.txt ground-truth files")
    for f in files:
        for n, line in enumerate(read_text(f).splitlines(), 1):
            if line.strip():
                if line.count("\t") != 2:
                    raise ValueError(f"{f}:{n}: expected image<TAB>question<TAB>answer, found "
                                     f"{line.count(chr(9)) + 1} field(s)")
                image, question, answer = line.split("\t")
                gt[(f.stem, image.strip(), question_stem(question))] = answer.strip().lower()
    return gt


def read_llava_answers(task, rows: list, gt_dir: Path, questions=None) -> list:
    """LLaVA's MME answers (``question_id`` = ``<category>/.../<image>``, ``prompt``, ``text``) joined to the
    eval tool's ground truth on (category, image, question stem)."""
    gt = read_ground_truth(gt_dir)
    out = []
    for r in rows:
        qid = str(r["question_id"])
        cat, image = qid.split("/", 1)[0], qid.rsplit("/", 1)[-1]
        stem = question_stem(task.template_field(r.get("prompt", ""), "question_stem"))
        key = (cat, image, stem)
        if key not in gt:
            raise ValueError(f"MME answer {qid!r} / {stem!r} has no ground truth in {gt_dir}")
        out.append({"question_id": qid, "split": cat, "answer": r["text"],
                    "references": {"label": gt.pop(key), "image": f"{cat}/{image}"}})
    if gt:
        missing_cats = sorted({k[0] for k in gt})
        raise ValueError(f"{len(gt)} MME questions have no answer (categories {missing_cats})")
    return out


HOOKS = Hooks(fields, references, score_one, aggregate, load_layout=load_layout, read_answers=read_llava_answers,
              from_lmms_target=from_lmms_target)
