"""GPU smoke check of every real-scale preset (random weights, bf16): builds, generates, kernel == reference.

    python scripts/gpu_presets.py --out results/gpu/presets_check.json

For each preset: parameter count, answers from the mamba-ssm path and from the reference path on the same
weights (batched, 4 sample images), whether they agree, prefill+generate wall time and peak GPU memory.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import torch

from qmamba_eval.data.sources import load_docs  # noqa: E402
from qmamba_eval.readers.images import load_image
from qmamba_eval.models import build_model
from qmamba_eval.tasks import get_task

PRESETS = ["qmamba-2.8b", "qformer-2.8b", "cobra-3.5b", "vlmamba-2.8b", "llava-style-2.7b"]


def timed_generate(model, images, prompts, n):
    torch.cuda.synchronize()
    t = time.perf_counter()
    out = model.generate(images, prompts, max_new_tokens=n)
    torch.cuda.synchronize()
    return out, time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="results/gpu/presets_check.json")
    ap.add_argument("--presets", default=",".join(PRESETS))
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    task = get_task("pope")
    docs, info = load_docs(task, "sample", limit=4)
    images = [load_image(d["image"], info.image_root) for d in docs]
    prompts = [task.prompt(d) for d in docs]
    report = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "batch": len(images),
              "max_new_tokens": 8, "weights": "random (seed 0)", "dtype": "bfloat16", "presets": {}}
    for name in args.presets.split(","):
        torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter()
        model = build_model(name, device="cuda", dtype="bfloat16", backend="auto")
        build_s = time.perf_counter() - t
        r = {"parameters": sum(p.numel() for p in model.parameters()), "build_s": round(build_s, 1),
             "backend": model.kernels.backend, "visual_tokens": int(model.encode_images(images[:1]).shape[1])}
        timed_generate(model, images, prompts, 2)  # warm-up
        fast, fast_s = timed_generate(model, images, prompts, 8)
        r.update(answers=fast, generate_s=round(fast_s, 3),
                 peak_memory_gib=round(torch.cuda.max_memory_allocated() / 2**30, 2))
        if model.kernels.backend == "mamba_ssm":
            model.set_kernels("reference")
            ref, ref_s = timed_generate(model, images, prompts, 8)
            r.update(reference_answers=ref, reference_generate_s=round(ref_s, 3),
                     answers_equal_reference=ref == fast)
        report["presets"][name] = r
        print(name, json.dumps(r), flush=True)
        del model
        torch.cuda.empty_cache()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
