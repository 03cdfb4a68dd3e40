"""The issue-13 goals, measured side by side in one run on one GPU (H200 here); writes JSON, prints a table.

    python scripts/bench_engine.py --out DIR [--rows 1024] [--skip eval,prefill,decode]

1. prefill: our ``MambaLM.prefill`` (mamba-ssm kernels) vs mamba-ssm's own ``MambaLMHeadModel`` on the same
   weights and shapes (also with a padded batch, and the whole-sequence ``forward``), and their agreement;
2. decode: our CUDA-graph step vs ``MambaLMHeadModel.generate(cg=True)`` per token, batch 1 and 64,
   against the HBM floor (weight bytes / measured copy bandwidth);
3. eval: a GQA-shaped local JSONL (real 640x480 JPEGs written here) through ``Runner`` with the CUDA kernels and
   DataLoader workers (qmamba-2.8b, 256 queries, batch 64, 8 new tokens) vs a batch-1 reference-kernel loop.
Random weights throughout (built on the device).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qmamba_eval.models.decode import GreedyDecoder  # noqa: E402
from qmamba_eval.models.mamba import MambaConfig, MambaLM  # noqa: E402
from qmamba_eval.models.ops import Kernels, set_kernels  # noqa: E402
from qmamba_eval.profiler.photos import photo_questions  # noqa: E402
from qmamba_eval.profiler.sweep import measure_floors  # noqa: E402
from qmamba_eval.profiler.timing import time_ms  # noqa: E402
from qmamba_eval.results import environment  # noqa: E402

DEV = "cuda"
BF16 = torch.bfloat16


def mamba_pair():
    """Our MambaLM (Mamba-2.8B dims, random, bf16, on the device) and mamba-ssm's model on the same weights."""
    from mamba_ssm.models.config_mamba import MambaConfig as MSConfig
    from mamba_ssm.models.mixer_seq_simple import MambaLMHeadModel

    torch.manual_seed(0)
    cfg = MambaConfig(d_model=2560, n_layer=64, vocab_size=50280)
    with torch.device(DEV):
        ours = MambaLM(cfg)
    for m in ours.modules():  # bf16 except A_log / D, as mamba-ssm keeps them
        for name, p in m.named_parameters(recurse=False):
            if name not in ("A_log", "D"):
                p.data = p.data.to(BF16)
    set_kernels(ours.eval(), Kernels.resolve("mamba_ssm", DEV))
    theirs = MambaLMHeadModel(MSConfig(**cfg.to_dict()), device=DEV, dtype=BF16).eval()
    missing, unexpected = theirs.load_state_dict(ours.state_dict(), strict=False)
    assert not unexpected and all("lm_head" in k for k in missing), (missing, unexpected)
    return ours, theirs


@torch.no_grad()
def bench_prefill(ours, theirs) -> list:
    rows = []
    for b, l in ((1, 768), (64, 295), (64, 768), (8, 4096)):
        ids = torch.randint(0, 50280, (b, l), device=DEV)
        embeds = ours.backbone.embedding(ids)
        mask = torch.ones(b, l, dtype=torch.long, device=DEV)
        padded = mask.clone()
        padded[: b // 2, : l // 4] = 0  # half the rows left-padded by a quarter
        state = ours.allocate_inference_cache(b)
        r = {"batch": b, "length": l}
        r["mamba_ssm_ms"] = time_ms(lambda: theirs(ids, num_last_tokens=1), DEV, 2, 5)
        r["engine_ms"] = time_ms(lambda: ours.prefill(embeds, None, state), DEV, 2, 5)
        r["engine_padded_ms"] = time_ms(lambda: ours.prefill(embeds, padded, state), DEV, 2, 5)
        r["forward_ms"] = time_ms(lambda: ours(inputs_embeds=embeds, num_last_tokens=1), DEV, 1, 3)
        r["ratio_engine_to_mamba_ssm"] = r["engine_ms"] / r["mamba_ssm_ms"]
        a = ours.prefill(embeds, None, state).float()
        ref = theirs(ids, num_last_tokens=1).logits[:, -1].float()
        r["rel_diff_vs_mamba_ssm"] = float((a - ref).norm() / ref.norm())
        r["argmax_agreement"] = float((a.argmax(-1) == ref.argmax(-1)).float().mean())
        r["tflops_per_s_engine"] = b * l * ours.flops_per_token() / r["engine_ms"] / 1e9
        rows.append(r)
        print(f"prefill B{b}x{l}: engine {r['engine_ms']:.1f} ms (padded {r['engine_padded_ms']:.1f}), "
              f"mamba-ssm {r['mamba_ssm_ms']:.1f} ms, ratio {r['ratio_engine_to_mamba_ssm']:.3f}, "
              f"rel diff {r['rel_diff_vs_mamba_ssm']:.4f}", flush=True)
        del embeds, state
        torch.cuda.empty_cache()
    return rows


@torch.no_grad()
def bench_decode(ours, theirs, floors) -> list:
    rows = []
    wbytes = sum(p.numel() * p.element_size() for p in ours.parameters())
    for b in (1, 64):
        prompt = 16
        ids = torch.randint(0, 50280, (b, prompt), device=DEV)
        dec = GreedyDecoder(ours, -1, DEV, graphs=True)
        slot = dec._slot(b, prompt + 300, 256)
        ours.prefill(ours.backbone.embedding(ids), None, slot.cache)
        eng = time_ms(lambda: [slot.step() for _ in range(50)], DEV, 1, 5) / 50
        gen = lambda n: theirs.generate(ids, max_length=prompt + n, cg=True, top_k=1)  # noqa: E731
        t8 = time_ms(lambda: gen(8), DEV, 2, 5)
        t72 = time_ms(lambda: gen(72), DEV, 1, 5)
        ref = (t72 - t8) / 64
        floor = wbytes / (floors["copy_gbps"] * 1e6)
        # the same weights decode the same greedy tokens (bf16: most, not all, rows agree)
        ours_tokens = dec.generate(ours.backbone.embedding(ids), None, 16)
        their_tokens = theirs.generate(ids, max_length=prompt + 16, cg=True, top_k=1)[:, prompt:].tolist()
        agree = sum(a == t for a, t in zip(ours_tokens, their_tokens)) / b
        r = {"batch": b, "engine_ms_per_token": eng, "mamba_ssm_cg_ms_per_token": ref, "ratio": eng / ref,
             "hbm_floor_ms": floor, "engine_over_floor": eng / floor, "rows_same_16_tokens": agree}
        rows.append(r)
        print(f"decode B{b}: engine {eng:.2f} ms/token, mamba-ssm cg {ref:.2f}, ratio {eng / ref:.3f}, "
              f"floor {floor:.2f} ms ({eng / floor:.2f}x), same 16 tokens on {agree:.0%} of rows", flush=True)
    return rows


def bench_eval(rows: int, out: Path) -> dict:
    from qmamba_eval.models import build_model
    from qmamba_eval.runner import RunConfig, Runner

    t = time.perf_counter()
    data = photo_questions(Path("/tmp/gqa_shaped"), rows)
    make_s = time.perf_counter() - t
    t = time.perf_counter()
    model = build_model("qmamba-2.8b", device=DEV, dtype="bfloat16", init="device", num_queries=256)
    torch.cuda.synchronize()
    build_s = time.perf_counter() - t
    res = {"rows": rows, "jpeg_write_s": make_s, "model_build_s": build_s, "model": "qmamba-2.8b (256 queries)"}
    runs = (("engine_b64", "auto", 64, None), ("fused_b64", "fused", 64, None), ("reference_b1", "reference", 1, 32))
    for name, backend, batch, limit in runs:  # measured side by side on the same model
        cfg = RunConfig(tasks=["gqa"], model="qmamba-2.8b-q256", data=str(data), batch_size=batch, device=DEV,
                        dtype="bfloat16", output_dir=str(out / "runs"), run_name=name, backend=backend,
                        max_new_tokens=8, progress=False, plot=False, limit=limit)
        model.set_kernels(backend)  # a model handed to the Runner keeps its kernels: set them here
        r = Runner(cfg, model=model).run()["tasks"]["gqa"]
        res[name] = {"samples_per_s": r["timing"]["samples_per_s"], "wall_s": r["timing"]["wall_s"],
                     "model_s": r["timing"]["model_s"], "n": r["n_samples"], "errors": r["n_errors"],
                     "kernels": model.identity()["kernels"]}
        print(f"eval {name}: {r['timing']['samples_per_s']} samples/s over {r['n_samples']} rows "
              f"(model {r['timing']['model_s']:.1f} s of {r['timing']['wall_s']:.1f} s)", flush=True)
    res["speedup_vs_batch1"] = res["engine_b64"]["samples_per_s"] / res["reference_b1"]["samples_per_s"]
    res["fused_over_mamba_ssm"] = res["fused_b64"]["samples_per_s"] / res["engine_b64"]["samples_per_s"]
    # where one batch of 64 spends its time (the same model, pieces timed alone)
    from PIL import Image

    from qmamba_eval.models.vision import to_uint8

    model.set_kernels("auto")
    ims = [to_uint8(Image.open(f"/tmp/gqa_shaped/images/img_{i:05d}.jpg").convert("RGB")) for i in range(64)]
    prompts = ["Is the table to the left or to the right of the chair?\nAnswer the question using a single word "
               "or phrase."] * 64
    px = model.vision.pixels(ims, torch.device(DEV))
    feats = model.vision(px)
    visual = model.projector(feats)
    ids = model.text_ids(prompts)
    embeds, mask = model.assemble(visual, ids)
    state = model.llm.allocate_inference_cache(64)
    parts = {"device_preprocess_ms": time_ms(lambda: model.vision.pixels(ims, torch.device(DEV)), DEV, 1, 3),
             "vision_ms": time_ms(lambda: model.vision(px), DEV, 1, 3),
             "projector_ms": time_ms(lambda: model.projector(feats), DEV, 1, 3),
             "assemble_ms": time_ms(lambda: model.assemble(visual, ids), DEV, 1, 3),
             "prefill_ms": time_ms(lambda: model.llm.prefill(embeds, mask, state), DEV, 1, 3),
             "generate_8_ms": time_ms(lambda: model.generate(ims, prompts, 8), DEV, 1, 3),
             "llm_tokens": int(embeds.shape[1])}
    t = time.perf_counter()
    for i in range(64):
        Image.open(f"/tmp/gqa_shaped/images/img_{i:05d}.jpg").convert("RGB").load()
    parts["jpeg_decode_ms_per_image_one_core"] = (time.perf_counter() - t) / 64 * 1e3
    res["batch64_parts"] = parts
    print("batch-64 parts:", json.dumps({k: round(v, 1) for k, v in parts.items()}), flush=True)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="results/gpu")
    ap.add_argument("--rows", type=int, default=1024)
    ap.add_argument("--skip", default="")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    skip = set(a.skip.split(","))
    doc = {"command": " ".join(sys.argv), "environment": environment(DEV)}
    doc["floors"] = floors = measure_floors(DEV)
    print("floors:", floors, flush=True)

    def section(name, fn):
        if name in skip:
            return
        try:
            doc[name] = fn()
        except Exception as e:
            traceback.print_exc()
            doc[name] = {"error": f"{type(e).__name__}: {e}"}
        (out / "bench_engine.json").write_text(json.dumps(doc, indent=1, default=str))

    if not {"prefill", "decode"} <= skip:
        ours, theirs = mamba_pair()
        doc["kernels"] = ours.kernels.describe()
        section("prefill", lambda: bench_prefill(ours, theirs))
        section("decode", lambda: bench_decode(ours, theirs, floors))
        del ours, theirs
        torch.cuda.empty_cache()
    section("eval", lambda: bench_eval(a.rows, out))
    print(json.dumps({k: v for k, v in doc.items() if k != "environment"}, indent=1, default=str)[:6000])


if __name__ == "__main__":
    main()
