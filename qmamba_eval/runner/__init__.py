"""Evaluation runs: batched inference that writes a predictions file, then scoring of that file.

Layout of a run folder (``<output-dir>/<run-name>/``):
* ``run.json``            -- what the run is (model, data, options); a resume must match it (``record.py``)
* ``samples_<task>.jsonl`` -- one line per question: id, split, prompt, raw answer, parsed answer, score,
                             references (and ``error`` when the image could not be read) (``predict.py``)
* ``results.json``        -- metrics per task and split with everything needed to compare runs later
                             (``scoring.py``)

Lines are appended and fsync-ed batch by batch, so a crash or Ctrl-C loses little, and re-running the same command resumes where it stopped (a crash loses at most the two batches in flight: one being
answered, one being written). ``Runner`` only orchestrates these parts, and the ranks of
a torchrun run (``distributed.py``).
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from ..readers.ids import question_ids, sample_keys
from ..data.sources import load_docs
from ..distributed import World, init_world, merge_shards, rank_device, shard_batches, shard_path
from ..results import read_samples, run_lock
from ..tasks import Task, get_task, task_options
from .config import RunConfig
from .output import ResultsFile, build_run_model, check_weights_given, make_run_folder, run_log
from .predict import Predictor, ShardProgress, TaskInputs, check_image_files, default_workers
from .record import RunRecord
from .scoring import first_rows, task_entry

__all__ = ["RunConfig", "Runner"]


class Runner:
    def __init__(self, cfg: RunConfig, model=None, world: World | None = None):
        self.cfg = cfg
        self.run_dir = Path(cfg.output_dir) / (cfg.run_name or cfg.default_run_name())
        self.record = RunRecord(self.run_dir, cfg)
        self._model = model
        self.world = world  # None: the one torchrun describes, started in run()

    @property
    def device(self) -> str:
        """Where this process computes: ``--device``, or ``cuda:LOCAL_RANK`` for a rank of a torchrun run."""
        return rank_device(self.cfg.device, self.world or World())

    @property
    def model(self):
        if self._model is None:
            self._model = build_run_model(self.cfg, self.device)
        return self._model

    # -- the run --------------------------------------------------------------------------------------------

    def run(self) -> dict | None:
        tasks = [get_task(t) for t in self.cfg.tasks]
        self.cfg.check([t.name for t in tasks], model_given=self._model is not None)
        if self._model is None:
            from ..models import check_projector_args

            check_projector_args(self.cfg.model, {k: v for k, v in self.cfg.model_args.items() if k != "init"})
            check_weights_given(self.cfg)
        for task in tasks:  # every task's choices checked before any work
            self._variant(task)
            if self.cfg.answer_mode == "likelihood" and not task.answer_options:
                raise ValueError(f"task {task.name} has no closed answer set: --answer-mode likelihood works for "
                                 "tasks with answer_options (pope, mme)")
        make_run_folder(self.run_dir)
        if self.world is None:
            self.world = init_world(self.cfg.device)
        world = self.world
        # rank 0 holds the folder's lock and writes run.json / results.json; every rank writes its own shard
        with run_lock(self.run_dir) if world.is_main else contextlib.nullcontext(), \
                run_log(self.run_dir / "run.log") if world.is_main else contextlib.nullcontext():
            versions = {t.name: t.version for t in tasks}
            self._on_every_rank(lambda: self.record.open(versions) if world.is_main else None)
            results_file = ResultsFile(self.run_dir / "results.json")
            for task in tasks:
                entry = self.run_task(task)
                if world.is_main:  # merged: never drop another task's entry
                    results_file.add(task.name, entry, self.cfg, self._model)
            if not world.is_main:
                return None
            results = results_file.read()
            results_file.write_summary(results)
            if self.cfg.plot:
                from ..report.plots import plot_run

                plot_run(results, self.run_dir / "summary.png")
        failed = [f"{name}: {w}" for name in self.cfg.tasks for w in results["tasks"].get(name, {}).get("failures", [])]
        if failed:  # written and kept, but not a number anyone should read as a score
            raise ValueError("; ".join(failed) + f" (results kept in {self.run_dir})")
        return results

    def _variant(self, task: Task) -> str:
        variant = self.cfg.prompt.get(task.name, self.cfg.prompt.get("*", "default"))
        if variant not in task.prompts:
            from ..registry import suggest

            raise ValueError(f"task {task.name} has no prompt variant {variant!r}.{suggest(variant, task.prompts)}")
        return variant

    def _on_every_rank(self, step):
        """Run ``step`` here; in a distributed run, stop every rank when it failed on any (the failing rank
        raises its own error, the others say where to look)."""
        try:
            out, error = step(), None
        except BaseException as e:  # noqa: BLE001  (re-raised below, after telling the other ranks)
            out, error = None, e
        if not (self.world or World()).all_ok(error is None):
            if error is not None:
                raise error
            raise RuntimeError("another rank of this torchrun run stopped with an error (see its message above)")
        return out

    # -- one task ---------------------------------------------------------------------------------------------

    def run_task(self, task: Task) -> dict | None:
        cfg, world = self.cfg, self.world or World()
        variant, opts = self._variant(task), task_options(task, cfg.options)
        split = cfg.splits.get(task.name, cfg.splits.get("*"))
        docs, info = load_docs(task, cfg.data, cfg.limit, cfg.cache_dir, split)
        inputs = TaskInputs(task, docs, sample_keys(question_ids(docs)), variant, opts, info.image_root)
        path = self.run_dir / f"samples_{task.name}.jsonl"

        def prepare():  # rank 0: fold in the shards of an interrupted run (any world size), then check inputs
            if world.is_main:
                rows = merge_shards(path, inputs.keys)
                self.record.check_task_inputs(task, info, task.prompts[variant], path)
                return rows
            return None

        earlier = self._on_every_rank(prepare)
        if earlier is None:  # the other ranks read what rank 0 merged
            earlier = read_samples(path)
        done = {s["key"] for s in earlier}
        todo = [i for i, k in enumerate(inputs.keys) if k not in done]
        check_image_files(inputs, todo, info, cfg.max_image_errors)  # before any model is built
        if todo:  # the prompt template against a row, before any model is built
            try:
                task.prompt(docs[todo[0]], variant)
            except ValueError as e:
                raise ValueError(f"{info.source}: row {todo[0] + 1}: {e}") from None
        mine = shard_batches(todo, cfg.batch_size, world) if world.distributed else todo
        if mine:
            self.model  # built (or loaded) before the clock starts
        self._on_every_rank(lambda: None)  # every rank ready: the clock starts together
        t0 = time.perf_counter()
        write_to = shard_path(path, world.rank) if world.distributed else path
        model_s, new = self._on_every_rank(lambda: self._predict(task, inputs, mine, write_to, len(todo)))
        if not world.is_main:
            return None
        # rank 0: every rank's answers, in question order (one process: the rows in hand, no second read)
        rows = merge_shards(path, inputs.keys, None if world.distributed else earlier + new)
        wall = time.perf_counter() - t0
        samples = first_rows(rows, inputs.keys)
        entry = task_entry(task, samples, opts, variant, cfg.max_image_errors)
        extra = task.hooks.write_outputs(samples, self.run_dir) if task.hooks.write_outputs else {}
        return {**extra, **entry, "n_resumed": len(docs) - len(todo), "answer_mode": cfg.answer_mode,
                "data": info.to_dict(), "limit": cfg.limit, "samples_file": path.name, "world_size": world.size,
                "timing": {"wall_s": round(wall, 3), "model_s": round(model_s, 3),
                           "samples_per_s": round(len(todo) / wall, 2) if todo and wall > 0 else None}}

    def _predict(self, task: Task, inputs: TaskInputs, todo: list, path: Path, total: int) -> tuple[float, list]:
        """Answer ``todo`` (this rank's share), appending to ``path``; the progress bar (rank 0 only) counts every
        rank's answers out of ``total``. Returns (seconds in the model, the rows written)."""
        if not todo:
            return 0.0, []
        from tqdm import tqdm

        cfg, world = self.cfg, self.world or World()
        self.model.set_token_order(cfg.token_order)
        predictor = Predictor(self.model, cfg.answer_mode, cfg.max_new_tokens or task.max_new_tokens,
                              task.answer_options)
        workers = default_workers(self.device) if cfg.workers is None else cfg.workers
        bar = tqdm(total=total or len(todo), desc=task.name, unit="sample", dynamic_ncols=True,
                   disable=not (cfg.progress and world.is_main))
        progress = ShardProgress(path) if world.distributed else None
        try:
            return predictor.run(inputs, todo, path, cfg.batch_size, workers,
                                 lambda n: bar.update(progress.new_rows() if progress else n))
        finally:
            bar.close()
