"""The run record, ``run.json``: what a run folder holds, checked before anything is resumed.

A folder holds one run: the same options (``RunConfig.identity``), the same weights (file digests), the same
task versions, and per task the same data (fingerprint) and prompt template as the samples already written.
Anything else is refused with a message naming what changed, so two models' or two datasets' answers are
never mixed. Written under the folder's lock, by rank 0 only.
"""

from __future__ import annotations

from pathlib import Path

from ..results import ResultsInputError, read_json_file, write_json_atomic

FIX = "use another --run-name or delete the folder"


class RunRecord:
    def __init__(self, run_dir: Path, config):
        self.run_dir, self.config = Path(run_dir), config
        self.path = self.run_dir / "run.json"

    def read(self) -> dict | None:
        if not self.path.is_file():
            return None
        old = read_json_file(self.path, "the run record", "delete the folder or choose another --run-name")
        if not isinstance(old, dict):
            raise ResultsInputError(f"{self.path}: not a run record; delete the folder or choose another --run-name")
        return old

    def weights(self) -> dict:
        """Digests of the weight and tokenizer files (content; size + mtime + first/last 16 MiB over 1 GiB)."""
        from ..readers.files import weights_digest

        cfg = self.config
        paths = [("model", cfg.model), ("checkpoint", cfg.checkpoint), ("tokenizer", cfg.tokenizer)]
        paths += [(f"vision_weights.{k}", v) for k, v in sorted((cfg.vision_weights or {}).items())]
        digests = {k: weights_digest(v) for k, v in paths}
        return {k: d for k, d in digests.items() if d is not None}

    def open(self, task_versions: dict) -> dict:
        """Check the folder holds this run (or nothing yet) and write run.json, keeping earlier tasks' entries."""
        meta = {"config": self.config.identity(), "task_versions": dict(task_versions), "weights": self.weights(),
                "task_inputs": {}}
        old = self.read()
        if old is not None:
            self._check_config(old.get("config"), meta["config"])
            for name, v in old.get("task_versions", {}).items():
                if name in task_versions and task_versions[name] != v:
                    raise RuntimeError(f"{self.run_dir}: task {name} was version {v} and is now "
                                       f"{task_versions[name]}; its samples cannot be resumed. {FIX}")
            old_w = old.get("weights")
            if old_w is not None and old_w != meta["weights"]:
                changed = [f"{k} {getattr(self.config, k)} (digest {old_w.get(k)} -> {meta['weights'].get(k)})"
                           for k in sorted(set(old_w) | set(meta["weights"])) if old_w.get(k) != meta["weights"].get(k)]
                raise RuntimeError(f"{self.run_dir}: the weights changed since its samples were written: "
                                   f"{'; '.join(changed)}; resuming would mix two models' answers: {FIX}")
            meta["task_versions"] = {**old.get("task_versions", {}), **meta["task_versions"]}
            meta["task_inputs"] = dict(old.get("task_inputs") or {})
        write_json_atomic(self.path, meta)
        return meta

    def _check_config(self, old, new) -> None:
        if old == new:
            return
        if not isinstance(old, dict):
            raise RuntimeError(f"{self.run_dir} holds a run record without options; {FIX}")
        if isinstance(old.get("options"), dict):  # earlier versions wrote every scoring option, unset ones as null
            old = {**old, "options": self.config.asked_options(old["options"])}
        defaults = type(self.config)(tasks=[]).identity_defaults()  # a key written by no older version: its default
        changed = [f"{k} ({old.get(k, defaults.get(k))!r} -> {new.get(k, defaults.get(k))!r})"
                   for k in sorted(set(old) | set(new)) if old.get(k, defaults.get(k)) != new.get(k, defaults.get(k))]
        if changed:
            raise RuntimeError(f"{self.run_dir} holds a different run: {'; '.join(changed)}; {FIX}")

    def check_task_inputs(self, task, info, template: str, samples_path: Path) -> None:
        """Resume only on the same data (fingerprint) and prompt template as the samples already there; record
        them in run.json."""
        meta = self.read() or {}
        now = {"data_fingerprint": info.fingerprint, "data_source": info.source, "prompt_template": template}
        if info.stamp:  # the image files' modification times: replaced in place since the samples were written?
            now["images_stamp"] = info.stamp
        old = (meta.get("task_inputs") or {}).get(task.name)
        if old and samples_path.is_file() and samples_path.stat().st_size > 0:
            what = [f"{label} ({old.get(k)!r} -> {now.get(k)!r})" for k, label in
                    (("data_fingerprint", "data fingerprint"), ("prompt_template", "prompt template"),
                     ("images_stamp", "image files (modification times) of the data"))
                    if k in old and old.get(k) != now.get(k)]
            if what:
                raise RuntimeError(f"{self.run_dir}: task {task.name} changed since its samples were written: "
                                   f"{'; '.join(what)}; its samples cannot be resumed: use another --run-name or "
                                   f"delete {samples_path}")
        if old != now:
            meta.setdefault("task_inputs", {})[task.name] = now
            write_json_atomic(self.path, meta)
