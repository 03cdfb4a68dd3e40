"""GPU check: mamba-ssm kernel path vs our reference path on the same weights (bf16), plus timings.

Run on a CUDA machine with mamba-ssm importable:
    python scripts/gpu_check.py --out results/gpu/gpu_check.json

Every comparison is against a float32 reference-path run on the same weights, so the kernel's error is
shown next to the error of the bf16 reference path itself (the honest bf16 tolerance).
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from qmamba_eval.models.mamba import MambaConfig, MambaLM
from qmamba_eval.models.ops import Kernels, causal_conv1d_available, set_kernels


def rel_err(a, b):
    return float((a.float() - b.float()).abs().max() / b.float().abs().max())


def timed(fn, reps=3):
    fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        ts.append(time.perf_counter() - t)
    return min(ts), fn()


@torch.no_grad()
def compare_lm(cfg: MambaConfig, batch: int, seqlen: int, decode_steps: int, pad: int, with_mamba_ssm_model: bool):
    torch.manual_seed(0)
    f32 = MambaLM(cfg, device="cuda", dtype=torch.float32).eval()
    bf = MambaLM(cfg, device="cuda", dtype=torch.bfloat16).eval()
    bf.load_state_dict(f32.state_dict())
    ids = torch.randint(0, cfg.vocab_size, (batch, seqlen), device="cuda")
    mask = torch.ones_like(ids)
    mask[0, :pad] = 0  # row 0 is left-padded
    nxt = torch.randint(0, cfg.vocab_size, (decode_steps, batch), device="cuda")
    res = {"config": {"d_model": cfg.d_model, "n_layer": cfg.n_layer, "batch": batch, "seqlen": seqlen,
                      "left_pad_row0": pad, "decode_steps": decode_steps}}

    def run(model, backend):
        set_kernels(model, Kernels.resolve(backend, "cuda"))
        cache = model.allocate_inference_cache(batch)
        logits = model(input_ids=ids, attention_mask=mask, cache=cache)
        steps = torch.stack([model.step(nxt[t], cache) for t in range(decode_steps)], 1)
        return logits, steps

    truth_pre, truth_dec = run(f32, "reference")
    ref_pre, ref_dec = run(bf, "reference")
    ker_pre, ker_dec = run(bf, "mamba_ssm")
    valid = mask.bool()
    res["prefill_rel_err"] = {"bf16_reference_vs_fp32": rel_err(ref_pre[valid], truth_pre[valid]),
                              "bf16_mamba_ssm_vs_fp32": rel_err(ker_pre[valid], truth_pre[valid]),
                              "bf16_mamba_ssm_vs_bf16_reference": rel_err(ker_pre[valid], ref_pre[valid])}
    res["decode_rel_err"] = {"bf16_reference_vs_fp32": rel_err(ref_dec, truth_dec),
                             "bf16_mamba_ssm_vs_fp32": rel_err(ker_dec, truth_dec),
                             "bf16_mamba_ssm_vs_bf16_reference": rel_err(ker_dec, ref_dec)}
    res["argmax_agreement_mamba_ssm_vs_fp32"] = {
        "prefill": float((ker_pre.argmax(-1) == truth_pre.argmax(-1))[valid].float().mean()),
        "decode": float((ker_dec.argmax(-1) == truth_dec.argmax(-1)).float().mean())}
    # padding: row 0 (padded) must equal the same tokens run alone
    set_kernels(bf, Kernels.resolve("mamba_ssm", "cuda"))
    alone = bf(input_ids=ids[:1, pad:])
    res["padded_row_vs_alone_rel_err_mamba_ssm"] = rel_err(ker_pre[0, pad:], alone[0])

    if with_mamba_ssm_model:
        from mamba_ssm.models.config_mamba import MambaConfig as MSConfig
        from mamba_ssm.models.mixer_seq_simple import MambaLMHeadModel

        ms = MambaLMHeadModel(MSConfig(**cfg.to_dict()), device="cuda", dtype=torch.bfloat16).eval()
        missing, unexpected = ms.load_state_dict(bf.state_dict(), strict=False)
        res["mamba_ssm_MambaLMHeadModel_load"] = {"missing": list(missing), "unexpected": list(unexpected)}
        theirs = ms(ids[1:]).logits
        res["prefill_rel_err"]["mamba_ssm_MambaLMHeadModel_vs_fp32"] = rel_err(theirs, truth_pre[1:])
        res["prefill_rel_err"]["ours_mamba_ssm_vs_MambaLMHeadModel"] = rel_err(ker_pre[1:], theirs)
        del ms
    del f32
    torch.cuda.empty_cache()

    # timings (bf16, batch as above, no padding)
    for backend in ("reference", "mamba_ssm"):
        set_kernels(bf, Kernels.resolve(backend, "cuda"))
        t, _ = timed(lambda: bf(input_ids=ids, num_last_tokens=1), reps=2 if backend == "reference" else 5)
        res.setdefault("prefill_ms", {})[backend] = round(t * 1e3, 2)
        cache = bf.allocate_inference_cache(batch)
        bf(input_ids=ids, cache=cache)
        t, _ = timed(lambda: bf.step(nxt[0], cache), reps=20)
        res.setdefault("decode_ms_per_token", {})[backend] = round(t * 1e3, 3)
    res["prefill_speedup_mamba_ssm"] = round(res["prefill_ms"]["reference"] / res["prefill_ms"]["mamba_ssm"], 1)
    del bf
    torch.cuda.empty_cache()
    return res


@torch.no_grad()
def compare_mllm():
    """Tiny Q-Mamba MLLM end to end on CUDA: kernel vs reference generate() and score_options()."""
    import warnings

    from PIL import Image

    from qmamba_eval.models import build_model

    warnings.simplefilter("ignore")
    g = torch.Generator().manual_seed(0)
    ims = [Image.fromarray((torch.rand(48, 48, 3, generator=g) * 255).byte().numpy()) for _ in range(4)]
    prompts = ["What is it?", "Is there a cat in the image?", "How many?", "Color?"]
    out = {}
    for name in ("tiny-qmamba", "tiny-vlmamba"):
        m = build_model(name, device="cuda", backend="reference")
        a = m.generate(ims, prompts, max_new_tokens=8)
        sa = m.score_options(ims, prompts, ["Yes", "No"])
        m.set_kernels("mamba_ssm")
        b = m.generate(ims, prompts, max_new_tokens=8)
        sb = m.score_options(ims, prompts, ["Yes", "No"])
        out[name] = {"generate_equal": a == b, "score_options_max_abs_diff": float((sa - sb).abs().max())}
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="results/gpu/gpu_check.json")
    ap.add_argument("--full", action="store_true", help="also the real Mamba-2.8B dimensions")
    args = ap.parse_args()
    assert torch.cuda.is_available(), "needs a CUDA device"
    report = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "python": platform.python_version(),
              "causal_conv1d": causal_conv1d_available()}
    import mamba_ssm

    report["mamba_ssm"] = mamba_ssm.__version__
    report["mid_768x24"] = compare_lm(MambaConfig(d_model=768, n_layer=24, vocab_size=50280), 2, 256, 16, 37, True)
    print(json.dumps(report, indent=1), flush=True)
    report["mllm_tiny"] = compare_mllm()
    if args.full:
        report["mamba_2.8b"] = compare_lm(MambaConfig(d_model=2560, n_layer=64, vocab_size=50280), 1 + 1, 800, 8,
                                          100, False)
    from pathlib import Path

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
