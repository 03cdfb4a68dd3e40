"""lmms-eval model class, so ``lmms-eval --model qmamba --model_args pretrained=tiny-qmamba`` drives our models.

Registered through the ``lmms_eval.models`` entry-point group (see pyproject.toml): lmms-eval 0.7.3 loads
``manifest()`` and imports ``QMambaLMMS`` by path. This module needs lmms-eval; the rest of the package
does not.

Differences from our own runner worth knowing: lmms-eval builds the prompts (its task YAML), scores with its
task functions (see README: POPE yes-ratio, MME parse), and keeps no resumable samples file.
"""

from __future__ import annotations

from lmms_eval.api.model import lmms

from .models import build_model


def _as_bool(v) -> bool:
    return v if isinstance(v, bool) else str(v).strip().lower() in ("1", "true", "yes", "on")


class QMambaLMMS(lmms):
    def __init__(self, pretrained: str = "tiny-qmamba", checkpoint: str | None = None, tokenizer: str | None = None,
                 device: str = "cpu", dtype: str | None = None, batch_size: int | str = 1, backend: str = "auto",
                 max_new_tokens: int | str = 16, seed: int | str = 0, **kwargs) -> None:
        super().__init__()
        overrides = {k: int(v) if str(v).isdigit() else _as_bool(v) if str(v).lower() in ("true", "false") else v
                     for k, v in kwargs.items() if k in ("num_queries", "num_blocks", "local_attention")}
        self.model = build_model(pretrained, device=device, dtype=dtype, checkpoint=checkpoint, tokenizer=tokenizer,
                                 backend=backend, seed=int(seed), **overrides)
        self.batch_size_per_gpu = int(batch_size)
        self.default_max_new_tokens = int(max_new_tokens)

    def _image(self, doc_to_visual, doc_id, task, split):
        visuals = doc_to_visual(self.task_dict[task][split][doc_id])
        if not visuals:
            raise ValueError(f"{task}/{split} doc {doc_id}: no image")
        return visuals[0].convert("RGB")

    def generate_until(self, requests) -> list[str]:
        out: list[str] = []
        bs = self.batch_size_per_gpu
        for start in range(0, len(requests), bs):
            chunk = [r.args for r in requests[start:start + bs]]
            contexts = [c[0] for c in chunk]
            gen = chunk[0][1] or {}
            until = gen.get("until") or []
            until = [until] if isinstance(until, str) else list(until)
            images = [self._image(c[2], c[3], c[4], c[5]) for c in chunk]
            out.extend(self.model.generate(images, contexts, stop=until,
                                           max_new_tokens=int(gen.get("max_new_tokens", self.default_max_new_tokens))))
        return out

    def loglikelihood(self, requests) -> list[tuple[float, bool]]:
        res = []
        for context, target, doc_to_visual, doc_id, task, split in [r.args for r in requests]:
            doc = self.task_dict[task][split][doc_id]
            continuation = target if isinstance(target, str) else target(doc)
            image = self._image(doc_to_visual, doc_id, task, split)
            res.append(self.model.score_continuation([image], [context], [continuation])[0])
        return res

    def generate_until_multi_round(self, requests) -> list[str]:
        raise NotImplementedError("qmamba models answer single-turn questions only")


def manifest():
    """Entry-point payload for lmms-eval >= 0.7's model registry."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(model_id="qmamba", simple_class_path="qmamba_eval.lmms_bridge.QMambaLMMS")
