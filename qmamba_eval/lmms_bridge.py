"""lmms-eval model class, so ``lmms-eval --model qmamba --model_args pretrained=tiny-qmamba`` drives our models.

Registered through the ``lmms_eval.models`` entry-point group (see pyproject.toml): lmms-eval 0.7.3 loads
``manifest()`` and imports ``QMambaLMMS`` by path. This module needs lmms-eval; the rest of the package
does not.

Differences from our own runner worth knowing: lmms-eval builds the prompts (its task YAML), scores with its
task functions (see README: POPE yes-ratio, MME parse), and keeps no resumable samples file.

What the bridge does about lmms-eval 0.7.3's own behaviour:

- ``loglikelihood`` answers each request with a ``GenerationResult`` whose ``text`` is the pair
  ``(loss, is_greedy)``, ``loss`` being the *negated* summed log-probability of the continuation. 0.7.3's
  evaluator passes every model output through ``unwrap_generation_output``, which turns a bare
  ``(float, bool)`` tuple into its string (so ``multiple_choice`` scoring breaks on it), but passes a
  ``GenerationResult``'s ``text`` through untouched; and its ``multiple_choice`` scoring picks
  ``argmin`` over the first elements, i.e. it expects losses. So ``acc`` is "the likeliest choice is the
  gold one", as our ``--answer-mode likelihood``.
- ``max_new_tokens`` given in ``--model_args`` wins over the task's ``generation_kwargs`` (and over
  ``--gen_kwargs``): it is the explicit per-model choice. Without it the task's value is used (16 when the
  task sets none). Each task's choice is logged once, with where it came from.
- Decoding is greedy. Generation kwargs asking for anything else (``temperature`` > 0, ``do_sample``,
  ``num_beams`` > 1, ``top_p`` < 1) and kwargs the bridge does not know are ignored with a warning (once per
  key and value).
- Parts of the model no weights were loaded for (no checkpoint; a Cobra ``.pt`` without ``vision_weights``; a
  bare LM state dict) are random: lmms-eval silences Python ``warnings``, so this is also logged through
  lmms-eval's logger (at load and again when the requests are done), and the class lmms-eval
  records as ``config.model_backend`` in its results file is then named ``QMambaLMMS[random_init=True]``.
  ``model_info`` holds the model's full identity (checkpoint, ``random_init``, kernels, dtype, ...).
"""

from __future__ import annotations

import json

from loguru import logger as eval_logger  # lmms-eval's logger (lmms_eval.utils.eval_logger is this one)

from lmms_eval.api.instance import GenerationResult
from lmms_eval.api.model import lmms

from .models import build_model, random_parts

DEFAULT_MAX_NEW_TOKENS = 16
USED_GEN_KWARGS = ("until", "max_new_tokens")
# generation kwargs we ignore, with the values under which ignoring them changes nothing (greedy decoding)
GREEDY_VALUES = {"temperature": lambda v: v in (None, 0, 0.0), "do_sample": lambda v: not v,
                 "num_beams": lambda v: v in (None, 1), "top_p": lambda v: v is None or float(v) >= 1.0,
                 "top_k": lambda v: v in (None, 0)}


def _vision_weights(value) -> dict | None:
    """``vision_weights`` in --model_args: JSON, ``'vision_weights={"siglip-so400m-14-384": "/hf/siglip", ...}'``
    (lmms-eval keeps a braced value whole)."""
    if value is None or isinstance(value, dict):
        return value
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as e:
        raise ValueError(f"vision_weights must be JSON {{backbone name: local folder}}, got {value!r}: {e}") from None
    if not isinstance(parsed, dict):
        raise ValueError(f"vision_weights must be a JSON object {{backbone name: local folder}}, got {value!r}")
    return parsed


def _as_bool(v) -> bool:
    return v if isinstance(v, bool) else str(v).strip().lower() in ("1", "true", "yes", "on")


class QMambaLMMS(lmms):
    def __init__(self, pretrained: str = "tiny-qmamba", checkpoint: str | None = None, tokenizer: str | None = None,
                 device: str = "cpu", dtype: str | None = None, batch_size: int | str = 1, backend: str = "auto",
                 max_new_tokens: int | str | None = None, seed: int | str = 0, vision_weights: dict | str | None = None,
                 **kwargs) -> None:
        super().__init__()
        overrides = {k: int(v) if str(v).isdigit() else _as_bool(v) if str(v).lower() in ("true", "false") else v
                     for k, v in kwargs.items() if k in ("num_queries", "num_blocks", "local_attention")}
        unknown = sorted(set(kwargs) - set(overrides))
        if unknown:
            eval_logger.warning(f"qmamba: model_args {unknown} are not used")
        self.model = build_model(pretrained, device=device or "cpu", dtype=dtype, checkpoint=checkpoint,
                                 tokenizer=tokenizer, backend=backend, seed=int(seed),
                                 vision_weights=_vision_weights(vision_weights), **overrides)
        self.model_info = self.model.identity()
        self.random_parts = random_parts(self.model_info)
        self.random_init = bool(self.random_parts)
        self.batch_size_per_gpu = int(batch_size)
        self.max_new_tokens = None if max_new_tokens in (None, "") else int(max_new_tokens)
        self._logged: set = set()
        if self.random_init:
            self._warn_random()
            # lmms-eval writes f"{type(lm).__module__}.{type(lm).__name__}" as config.model_backend
            self.__class__ = _random_init_class(type(self))

    @classmethod
    def create_from_arg_string(cls, arg_string: str, additional_config: dict | None = None):
        """As lmms-eval's, except that a key given both in ``--model_args`` and as a CLI option (``batch_size``:
        the CLI always passes ``--batch_size``, default 1) is taken from ``--model_args``, with a log line,
        instead of failing with "got multiple values for keyword argument"."""
        from lmms_eval import utils

        args = utils.simple_parse_args_string(arg_string)
        extra = {k: v for k, v in (additional_config or {}).items() if v is not None}
        for k in sorted(set(args) & set(extra)):
            if str(args[k]) != str(extra.pop(k)):
                eval_logger.warning(f"qmamba: {k}={args[k]} from --model_args wins over the --{k} option "
                                    "(use the option: other lmms-eval models reject both)")
        return cls(**args, **extra)

    # -- logging ------------------------------------------------------------------------

    def _warn_random(self) -> None:
        eval_logger.warning(f"qmamba: model {self.model_info.get('name')} has RANDOM weights "
                            f"({', '.join(self.random_parts)}) -- its scores are not meaningful")

    def _once(self, key, level: str, message: str) -> None:
        if key not in self._logged:
            self._logged.add(key)
            getattr(eval_logger, level)(message)

    def _max_new_tokens(self, gen: dict, task: str) -> int:
        asked = gen.get("max_new_tokens")
        if self.max_new_tokens is not None:
            n, why = self.max_new_tokens, "from --model_args" + (
                f", overriding the task's {asked}" if asked is not None and int(asked) != self.max_new_tokens else "")
        elif asked is not None:
            n, why = int(asked), "from the task's generation_kwargs (max_new_tokens in --model_args overrides it)"
        else:
            n, why = DEFAULT_MAX_NEW_TOKENS, "the bridge's default (the task sets none)"
        self._once(("max_new_tokens", task, n), "info", f"qmamba: {task}: max_new_tokens={n} {why}")
        return n

    def _check_gen_kwargs(self, gen: dict, task: str) -> None:
        for k, v in sorted(gen.items()):
            if k in USED_GEN_KWARGS:
                continue
            greedy = GREEDY_VALUES.get(k)
            try:
                harmless = greedy is not None and greedy(v)
            except (TypeError, ValueError):
                harmless = False
            if not harmless:
                self._once(("gen_kwarg", task, k, repr(v)), "warning",
                           f"qmamba: {task}: generation kwarg {k}={v!r} is ignored (decoding is greedy; "
                           f"the bridge uses only {', '.join(USED_GEN_KWARGS)})")

    def clean(self):
        if self.random_init:
            self._warn_random()
        super().clean()

    # -- requests -----------------------------------------------------------------------

    def _image(self, doc_to_visual, doc_id, task, split):
        visuals = doc_to_visual(self.task_dict[task][split][doc_id])
        if not visuals:
            raise ValueError(f"{task}/{split} doc {doc_id}: no image")
        return visuals[0].convert("RGB")

    def _batches(self, keys: list) -> list[list[int]]:
        """Request indices grouped by key (first-seen order), cut into batches of the batch size."""
        groups: dict = {}
        for i, k in enumerate(keys):
            groups.setdefault(k, []).append(i)
        bs = max(1, self.batch_size_per_gpu)
        return [idx[s:s + bs] for idx in groups.values() for s in range(0, len(idx), bs)]

    def generate_until(self, requests) -> list[str]:
        args = [r.args for r in requests]
        settings = []
        for context, gen, _visual, _doc_id, task, _split in args:
            gen = dict(gen or {})
            self._check_gen_kwargs(gen, task)
            until = gen.get("until") or []
            until = (until,) if isinstance(until, str) else tuple(until)
            settings.append((until, self._max_new_tokens(gen, task)))
        out: list = [None] * len(requests)
        bar = self._bar(len(requests), "qmamba generate")
        for batch in self._batches(settings):
            until, n = settings[batch[0]]
            images = [self._image(*args[i][2:]) for i in batch]
            texts = self.model.generate(images, [args[i][0] for i in batch], stop=list(until), max_new_tokens=n)
            for i, t in zip(batch, texts):
                out[i] = t
            bar.update(len(batch))
        bar.close()
        return out

    def _bar(self, total: int, desc: str):
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit="request", dynamic_ncols=True, disable=getattr(self, "rank", 0) != 0)

    def loglikelihood(self, requests) -> list[GenerationResult]:
        """Per request ``GenerationResult(text=(loss, is_greedy))``, ``loss`` = -(summed log-probability of the
        continuation): the shape lmms-eval 0.7.3's evaluator and ``multiple_choice`` scoring need (module doc)."""
        rows = []
        for context, target, doc_to_visual, doc_id, task, split in [r.args for r in requests]:
            doc = self.task_dict[task][split][doc_id]
            continuation = target if isinstance(target, str) else target(doc)
            rows.append((context, str(continuation), doc_to_visual, doc_id, task, split))
        out: list = [None] * len(rows)
        bar = self._bar(len(rows), "qmamba loglikelihood")
        for batch in self._batches([r[4] for r in rows]):
            images = [self._image(*rows[i][2:]) for i in batch]
            scored = self.model.score_continuation(images, [rows[i][0] for i in batch], [rows[i][1] for i in batch])
            for i, (logprob, greedy) in zip(batch, scored):
                out[i] = GenerationResult(text=(-float(logprob), bool(greedy)))
            bar.update(len(batch))
        bar.close()
        return out

    def generate_until_multi_round(self, requests) -> list[str]:
        raise NotImplementedError("qmamba models answer single-turn questions only")


_RANDOM_CLASSES: dict = {}


def _random_init_class(cls: type) -> type:
    if cls.__name__.endswith("[random_init=True]"):
        return cls
    if cls not in _RANDOM_CLASSES:
        _RANDOM_CLASSES[cls] = type(f"{cls.__name__}[random_init=True]", (cls,), {"__module__": cls.__module__})
    return _RANDOM_CLASSES[cls]


def manifest():
    """Entry-point payload for lmms-eval >= 0.7's model registry."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(model_id="qmamba", simple_class_path="qmamba_eval.lmms_bridge.QMambaLMMS")
