"""Prediction over batches: images decoded (and PIL-resized) by data-loader workers, one model call per batch,
the rows scored and appended (fsync-ed) by a writer thread while the model answers the next batch (a crash loses
at most the two batches in flight).

The answer mode is chosen once: ``generate`` (greedy text) or ``likelihood`` (the likelier of the task's closed
answer set, through ``score_options``).
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..readers.ids import question_id
from ..readers.images import ImageLoadError, load_image
from ..distributed import shard_files
from ..results import append_samples


@dataclass
class TaskInputs:
    """One task's questions as a run sees them."""

    task: object  # tasks.Task
    docs: Sequence  # rows in the task's hub schema
    keys: list  # one unique sample key per row
    variant: str  # prompt variant
    options: dict  # scoring options
    image_root: str | None = None

    def row(self, i: int) -> dict:
        doc, task = self.docs[i], self.task
        return {"key": self.keys[i], "question_id": question_id(doc), "split": task.split_of(doc),
                "prompt": task.prompt(doc, self.variant), "references": task.hooks.references(doc)}


class Predictor:
    def __init__(self, model, answer_mode: str, max_new_tokens: int, answer_options: Sequence[str] = ()):
        self.model, self.max_new_tokens, self.options = model, max_new_tokens, list(answer_options)
        self.answer = self._likelihood if answer_mode == "likelihood" else self._generate

    def _generate(self, images, prompts) -> list[str]:
        return self.model.generate(images, prompts, max_new_tokens=self.max_new_tokens)

    def _likelihood(self, images, prompts) -> list[str]:
        logp = self.model.score_options(images, prompts, self.options)  # (B, K)
        return [self.options[int(k)] for k in logp.argmax(-1)]

    def run(self, inputs: TaskInputs, todo: list, path: Path, batch_size: int, workers: int,
            on_batch) -> tuple[float, list]:
        """Answer the rows ``todo`` of ``inputs``, appending to ``path``; ``on_batch(n)`` after each batch.
        Returns (the seconds spent in the model, the rows written)."""
        from .batches import image_batches

        hooks = inputs.task.hooks
        prep, root = self.model.vision.prep, inputs.image_root
        batches = image_batches(lambda i: inputs.docs[i]["image"], todo, lambda v: prep(load_image(v, root)),
                                batch_size, workers, errors=(ImageLoadError,))
        model_s, written = 0.0, []

        def finish(rows, ready, answers, n):  # scoring and the fsync-ed write, beside the next batch's model work
            for (row, _), answer in zip(ready, answers):
                parsed, score = hooks.score_one(answer, row["references"], inputs.options)
                row.update(answer=answer, parsed=parsed, score=score)
                rows.append(row)
            append_samples(path, rows)
            written.extend(json.loads(json.dumps(r, ensure_ascii=False, default=str)) for r in rows)  # as read back
            on_batch(n)

        with ThreadPoolExecutor(1) as writer:  # one thread: rows reach the file in batch order
            pending = None
            try:
                for batch in batches:  # [(doc index, prepared image | None, error | None)], decoded by the workers
                    rows, ready = [], []
                    for i, image, error in batch:
                        row = inputs.row(i)
                        if error is not None:
                            row.update(answer="", parsed="", score=0.0, error=f"image: {error}")
                            rows.append(row)
                        else:
                            ready.append((row, image))
                    self._check_lengths([r for r, _ in ready])
                    answers = []
                    if ready:
                        t = time.perf_counter()
                        answers = self.answer([im for _, im in ready], [r["prompt"] for r, _ in ready])
                        model_s += time.perf_counter() - t
                    if pending is not None:
                        pending.result()  # the previous batch is on disk before another is queued
                    pending = writer.submit(finish, rows, ready, answers, len(batch))
            finally:
                if pending is not None:  # nothing answered is lost, whatever stopped the loop
                    pending.result()
        return model_s, written

    def _check_lengths(self, rows: list) -> None:
        """A prompt that, with the image's tokens and the answer, needs more positions than the LLM has is marked
        on its row (the answer is still asked for; the task's results say how many)."""
        limit = getattr(self.model, "max_positions", None)
        if not limit:
            return
        for r in rows:
            n = len(self.model.text_ids([r["prompt"]])[0]) + self.model.visual_tokens + self.max_new_tokens
            if n > limit:
                r["warning"] = f"{n} positions (image, prompt and answer) for a model of {limit}"


def check_image_files(inputs: TaskInputs, todo: list, info, threshold: float) -> None:
    """Image paths that do not exist, found before any model is built: more than ``threshold`` of the questions
    to answer is an error naming the first one (a run of error samples would score 0 and look like a result)."""
    if not todo or not isinstance(inputs.docs, list):
        return
    missing = []
    for i in todo:
        value = inputs.docs[i].get("image")
        if isinstance(value, (str, Path)):
            p = Path(value)
            p = p if p.is_absolute() or inputs.image_root is None else Path(inputs.image_root) / p
            if not p.is_file():
                missing.append((i, p))
    if missing and len(missing) > threshold * len(todo):
        i, p = missing[0]
        raise ValueError(f"{info.source}: {len(missing)} of {len(todo)} {inputs.task.name} images do not exist "
                         f"(first: row {i + 1}, {p}); fix the image paths or --data (a share above "
                         f"--max-image-errors {threshold:g} fails the run)")


def default_workers(device: str) -> int:
    """Image-decoding processes: none on the CPU (the model needs the cores), up to 8 beside a GPU."""
    return min(8, max(0, (os.cpu_count() or 1) - 2)) if str(device).startswith("cuda") else 0


class ShardProgress:
    """Rows written to all shards since the last call (reads only the new bytes): a global progress bar."""

    def __init__(self, path: Path):
        self.base = path.with_name(path.name.split(".shard")[0] + path.suffix)
        self.offsets: dict = {}

    def new_rows(self) -> int:
        n = 0
        for f in shard_files(self.base):
            with open(f, "rb") as fh:
                fh.seek(self.offsets.get(f, 0))
                chunk = fh.read()
            end = chunk.rfind(b"\n") + 1  # whole lines only: a line being written is counted next time
            n += chunk[:end].count(b"\n")
            self.offsets[f] = self.offsets.get(f, 0) + end
        return n
