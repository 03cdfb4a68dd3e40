"""Evaluation runs: batched inference that writes a predictions file, then scoring of that file.

Layout of a run folder (``<output-dir>/<run-name>/``):
* ``run.json``            -- what the run is (model, data, options); a resume must match it
* ``samples_<task>.jsonl`` -- one line per question: id, split, prompt, raw answer, parsed answer, score,
                             references (and ``error`` when the image could not be read)
* ``results.json``        -- metrics per task and split with everything needed to compare runs later

Lines are appended and fsync-ed batch by batch, so a crash or Ctrl-C loses at most the batch in flight and
re-running the same command resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .data.ids import question_id, question_ids, sample_keys
from .data.images import ImageLoadError, load_image
from .data.sources import load_docs
from .results import (RESULTS_SCHEMA, answers_digest, append_samples, environment, read_samples,
                      write_json_atomic)
from .tasks import Task, get_task, task_options


@dataclass
class RunConfig:
    tasks: list
    model: str = "tiny-qmamba"
    checkpoint: str | None = None
    tokenizer: str | None = None
    data: str = "sample"
    limit: int | None = None
    batch_size: int = 8
    device: str = "cpu"
    dtype: str | None = None
    backend: str = "auto"
    output_dir: str = "results/runs"
    run_name: str | None = None
    seed: int = 0
    prompt: dict = field(default_factory=dict)  # task -> prompt variant
    splits: dict = field(default_factory=dict)  # task -> hub split (e.g. vqav2 -> testdev)
    options: dict = field(default_factory=dict)  # e.g. pope_parser, vqa_rule
    cache_dir: str | None = None
    max_new_tokens: int | None = None
    answer_mode: str = "generate"  # or "likelihood": the likelier of the task's answer options
    progress: bool = True
    plot: bool = True  # summary.png beside results.json

    def identity(self) -> dict:
        """What makes two runs the same run (the limit is left out: a larger limit extends a run)."""
        keep = ("model", "checkpoint", "tokenizer", "data", "device", "dtype", "backend", "seed", "prompt",
                "splits", "options", "max_new_tokens", "answer_mode")
        return {k: getattr(self, k) for k in keep}

    def default_run_name(self) -> str:
        digest = hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()[:8]
        data = "sample" if self.data == "sample" else "hub" if self.data == "hub" else Path(self.data).name
        return f"{Path(self.model).name}-{data}-s{self.seed}-{digest}"


def score_samples(task: Task, samples: list[dict], options: dict) -> dict:
    """Aggregate metrics of scored samples (pure: the same samples give the same numbers)."""
    return task.hooks.aggregate(samples, options)


# -- the run ---------------------------------------------------------------------------------------


class Runner:
    def __init__(self, cfg: RunConfig, model=None):
        self.cfg = cfg
        self.run_dir = Path(cfg.output_dir) / (cfg.run_name or cfg.default_run_name())
        self._model = model

    @property
    def model(self):
        if self._model is None:
            from .models import build_model

            self._model = build_model(self.cfg.model, device=self.cfg.device, dtype=self.cfg.dtype,
                                      checkpoint=self.cfg.checkpoint, tokenizer=self.cfg.tokenizer,
                                      backend=self.cfg.backend, seed=self.cfg.seed)
        return self._model

    def _check_run_file(self, tasks: list[Task]) -> dict:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        run_file = self.run_dir / "run.json"
        meta = {"config": self.cfg.identity(), "task_versions": {t.name: t.version for t in tasks}}
        if run_file.is_file():
            old = json.loads(run_file.read_text())
            if old.get("config") != meta["config"]:
                raise RuntimeError(f"{self.run_dir} holds a different run ({old.get('config')}); "
                                   "choose another --run-name or delete the folder")
            for name, v in old.get("task_versions", {}).items():
                if name in meta["task_versions"] and meta["task_versions"][name] != v:
                    raise RuntimeError(f"{self.run_dir}: task {name} was version {v} and is now "
                                       f"{meta['task_versions'][name]}; its samples cannot be resumed. "
                                       "Use another --run-name or delete the folder")
            meta["task_versions"] = {**old.get("task_versions", {}), **meta["task_versions"]}
        write_json_atomic(run_file, meta)
        return meta

    def run(self) -> dict:
        tasks = [get_task(t) for t in self.cfg.tasks]
        self._check_run_file(tasks)
        results_path = self.run_dir / "results.json"
        results = json.loads(results_path.read_text()) if results_path.is_file() else {"tasks": {}}
        for task in tasks:
            results["tasks"][task.name] = self.run_task(task)
            self._write_results(results, results_path)
        if self.cfg.plot:
            from .report.plots import plot_run

            plot_run(results, self.run_dir / "summary.png")
        return results

    def _write_results(self, results: dict, path: Path) -> None:
        model = self._model
        results.update({
            "schema": RESULTS_SCHEMA,
            "run": {"name": self.run_dir.name, "command": " ".join(sys.argv), "config": self.cfg.identity(),
                    "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
            "model": model.identity() if model is not None else results.get("model"),
            "environment": environment(self.cfg.device),
        })
        write_json_atomic(path, results)

    def run_task(self, task: Task) -> dict:
        cfg = self.cfg
        variant = cfg.prompt.get(task.name, cfg.prompt.get("*", "default"))
        if variant not in task.prompts:
            from .registry import suggest

            raise ValueError(f"task {task.name} has no prompt variant {variant!r}.{suggest(variant, task.prompts)}")
        opts = task_options(task, cfg.options)
        if cfg.answer_mode not in ("generate", "likelihood"):
            raise ValueError(f"unknown answer mode {cfg.answer_mode!r}; use 'generate' or 'likelihood'")
        if cfg.answer_mode == "likelihood" and not task.answer_options:
            raise ValueError(f"task {task.name} has no closed answer set: --answer-mode likelihood works for "
                             "tasks with answer_options (pope, mme)")
        split = cfg.splits.get(task.name, cfg.splits.get("*"))
        docs, info = load_docs(task, cfg.data, cfg.limit, cfg.cache_dir, split)
        path = self.run_dir / f"samples_{task.name}.jsonl"
        done = {s["key"] for s in read_samples(path)}
        keys = sample_keys(question_ids(docs))
        todo = [i for i, k in enumerate(keys) if k not in done]
        if todo:
            self.model  # built (or loaded) before the clock starts
        t0 = time.perf_counter()
        model_s = self._infer(task, docs, todo, keys, variant, opts, info, path)
        wall = time.perf_counter() - t0
        wanted = set(keys)
        samples = [s for s in read_samples(path) if s["key"] in wanted]
        metrics = score_samples(task, samples, opts)
        extra = task.hooks.write_outputs(samples, self.run_dir) if task.hooks.write_outputs else {}
        return {**extra,
            "version": task.version, "n_samples": len(samples), "n_errors": sum(1 for s in samples if s.get("error")),
            "n_resumed": len(docs) - len(todo), "answer_mode": cfg.answer_mode, "prompt_variant": variant,
            "prompt_template": task.prompts[variant],
            "report": {"headline": task.headline, "score_max": task.score_max},
            "options": opts, "data": info.to_dict(), "limit": cfg.limit, "metrics": metrics,
            "samples_file": path.name, "answers_digest": answers_digest(samples),
            "timing": {"wall_s": round(wall, 3), "model_s": round(model_s, 3),
                       "samples_per_s": round(len(todo) / wall, 2) if todo and wall > 0 else None},
        }

    def _infer(self, task, docs, todo, keys, variant, opts, info, path) -> float:
        if not todo:
            return 0.0
        from tqdm import tqdm

        model = self.model
        max_new = self.cfg.max_new_tokens or task.max_new_tokens
        bar = tqdm(total=len(todo), desc=task.name, unit="sample", disable=not self.cfg.progress, dynamic_ncols=True)
        model_s = 0.0
        try:
            for start in range(0, len(todo), self.cfg.batch_size):
                idx = todo[start:start + self.cfg.batch_size]
                rows, ready = [], []
                for i in idx:
                    doc = docs[i]
                    row = {"key": keys[i], "question_id": question_id(doc), "split": task.split_of(doc),
                           "prompt": task.prompt(doc, variant), "references": task.hooks.references(doc)}
                    try:
                        ready.append((row, load_image(doc["image"], info.image_root)))
                    except ImageLoadError as e:
                        row.update(answer="", parsed="", score=0.0, error=f"image: {e}")
                        rows.append(row)
                if ready:
                    t = time.perf_counter()
                    ims, prompts = [im for _, im in ready], [r["prompt"] for r, _ in ready]
                    if self.cfg.answer_mode == "likelihood":
                        logp = model.score_options(ims, prompts, task.answer_options)  # (B, K)
                        answers = [task.answer_options[int(k)] for k in logp.argmax(-1)]
                    else:
                        answers = model.generate(ims, prompts, max_new_tokens=max_new)
                    model_s += time.perf_counter() - t
                    for (row, _), answer in zip(ready, answers):
                        parsed, score = task.hooks.score_one(answer, row["references"], opts)
                        row.update(answer=answer, parsed=parsed, score=score)
                        rows.append(row)
                append_samples(path, rows)
                bar.update(len(idx))
        finally:
            bar.close()
        return model_s
