"""Helpers of the bad-input tests: data files of every task, the command line, its error line."""

import json
from pathlib import Path

from PIL import Image

from qmamba_eval.cli import main
from qmamba_eval.runner import RunConfig, Runner


def _image(path: Path, i: int) -> None:
    Image.new("RGB", (32, 32), ((37 * i) % 256, (91 * i) % 256, (53 * i) % 256)).save(path)


def rows_for(task: str, n: int = 8) -> list:
    out = []
    for i in range(n):
        img = f"im{i % 4}.png"
        if task == "pope":
            out.append({"question_id": str(100 + i), "question": f"Is there a thing {i}?", "answer": "yes" if i % 2
                        else "no", "category": ("adversarial", "popular")[i % 2 and i // 2 % 2], "image": img})
        elif task == "gqa":
            out.append({"id": f"g{i}", "question": f"What colour is thing {i}?", "answer": "red", "image": img})
        elif task == "vqav2":
            out.append({"question_id": 10 + i, "question": f"What colour is thing {i}?", "answer_type": "other",
                        "answers": [{"answer": "red", "answer_id": k} for k in range(1, 11)], "image": img})
        elif task == "textvqa":
            out.append({"question_id": 20 + i, "question": "What word is written?", "answers": ["stop"] * 10,
                        "ocr_tokens": ["STOP"], "image": img})
        elif task == "mme":
            out.append({"question_id": f"existence/{img}", "question": f"Is there a thing {i}? Please answer yes or no.",
                        "answer": "Yes" if i % 2 == 0 else "No", "category": "existence", "image": img})
    return out


def write_data(folder: Path, task: str, rows: list, name: str | None = None) -> Path:
    """A hub-schema JSONL file with its images beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(4):
        if not (folder / f"im{i}.png").exists():
            _image(folder / f"im{i}.png", i)
    path = folder / (name or f"{task}.jsonl")
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def cli(tmp_path, *args) -> int:
    return main([*args, "--output-dir", str(tmp_path / "out"), "--no-progress", "--no-plot"])


def run(tmp_path, tasks, **kw):
    cfg = RunConfig(tasks=tasks, output_dir=str(tmp_path / "out"), progress=False, plot=False, **kw)
    r = Runner(cfg)
    return r, r.run()


def err(capsys) -> str:
    e = capsys.readouterr().err.strip()
    assert "Traceback" not in e
    return e.splitlines()[-1] if e else ""
