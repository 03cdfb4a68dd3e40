"""Our fused Triton selective scan (models/scan_triton.py) against mamba-ssm's ``selective_scan_fn``, alone and in
a whole Mamba-2.8B prefill; writes DIR/bench_scan.json and prints one line per shape.

    python scripts/bench_scan.py --out DIR [--skip scan,model]

1. scan: per (batch, length) in SHAPES, d_inner 5120, d_state 16, bf16 on CUDA: (a) causal_conv1d_fn + mamba-ssm's
   selective_scan_fn in their (b, d, l) layout, (b) the same conv on channel-last data + our scan (b, l, d);
   conv and scan also timed alone, our scan at other BLOCK_D too. CUDA events, warm-up, median and IQR of REPS
   calls. Both outputs against a float32 PyTorch reference on a subsample of channels, and their last states
   against each other; state updates per second and the bytes the scan must move.
2. model: MambaLM prefill (random bf16 weights built on the device; A_log / D float32, as mamba-ssm keeps them)
   with kernels "mamba_ssm" and "fused", and mamba-ssm's own MambaLMHeadModel on the same weights: times and
   the agreement of their last-position logits and greedy next tokens (and, for ours, under left padding).
Every section records its error and the script goes on. Needs torch, triton, mamba-ssm, causal-conv1d and this
repository only; about two minutes on an H100.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
import traceback
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qmamba_eval.models.mamba import MambaConfig, MambaLM  # noqa: E402
from qmamba_eval.models.ops import Kernels, causal_conv1d_available, selective_scan_reference, set_kernels  # noqa: E402
from qmamba_eval.models.scan_triton import launch_config, selective_scan_channel_last  # noqa: E402
from qmamba_eval.profiler.timing import iqr  # noqa: E402
from qmamba_eval.results import environment  # noqa: E402

DEV = "cuda"
BF16 = torch.bfloat16
SHAPES = [(64, 298), (8, 4096), (1, 9245)]
D_INNER, D_STATE, DT_RANK, D_CONV = 5120, 16, 160, 4
BLOCKS = (8, 16, 32, 64, 128)  # our BLOCK_D choices timed besides launch_config's
REF_CHANNELS = 64  # channels checked against the float32 reference
MODEL = {"d_model": 2560, "n_layer": 64, "vocab_size": 50280}  # Mamba-2.8B
MODEL_SHAPES = [(64, 298), (1, 768)]
WARMUP, REPS = 3, 12


def timed(fn) -> dict:
    """Median and IQR (ms) of REPS calls after WARMUP: CUDA events around each call (wall clock off CUDA)."""
    for _ in range(WARMUP):
        fn()
    cuda = torch.cuda.is_available()
    times = []
    for _ in range(REPS):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1e3)
    return {"median_ms": statistics.median(times), "iqr_ms": iqr(times), "reps": REPS}


def rel(a, b) -> float:
    a, b = a.float(), b.float()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


# -- 1. the scan alone ---------------------------------------------------------------------------------------


def scan_inputs(b, l, g):
    """Activations as the model makes them: x, z halves of the in_proj output (b, l, 2d), B, C column slices of
    the x_proj output (b*l, r + 2n), dt (b, l, d); mamba-ssm's (b, d, l) / (b, n, l) copies of the same values."""
    d, n, r = D_INNER, D_STATE, DT_RANK
    xz = torch.randn(b, l, 2 * d, device=DEV, generator=g).to(BF16)
    x_dbl = torch.randn(b * l, r + 2 * n, device=DEV, generator=g).to(BF16)
    dt = (0.1 * torch.randn(b, l, d, device=DEV, generator=g)).to(BF16)
    lo, hi = math.log(1e-3), math.log(0.1)  # mamba-ssm's step init: log-uniform in [1e-3, 0.1]
    step = torch.exp(lo + (hi - lo) * torch.rand(d, device=DEV, generator=g))
    cl = {"x": xz[..., :d], "z": xz[..., d:], "dt": dt, "B": x_dbl[:, r:r + n].view(b, l, n),
          "C": x_dbl[:, r + n:].view(b, l, n)}
    shared = {"A": -torch.exp(torch.log(torch.arange(1, n + 1, device=DEV, dtype=torch.float32)).expand(d, n)
                              + 0.1 * torch.randn(d, n, device=DEV, generator=g)),
              "D": torch.ones(d, device=DEV) + 0.1 * torch.randn(d, device=DEV, generator=g),
              "dt_bias": step + torch.log(-torch.expm1(-step)),
              "w": (0.5 * torch.randn(d, D_CONV, device=DEV, generator=g)).to(BF16),
              "w_bias": (0.1 * torch.randn(d, device=DEV, generator=g)).to(BF16)}
    xz_m = xz.reshape(b * l, 2 * d).t().contiguous().view(2 * d, b, l).transpose(0, 1)  # (b, 2d, l) as mamba-ssm
    ms = {"x": xz_m[:, :d], "z": xz_m[:, d:], "dt": dt.reshape(b * l, d).t().contiguous().view(d, b, l).transpose(0, 1),
          "B": cl["B"].transpose(1, 2).contiguous(), "C": cl["C"].transpose(1, 2).contiguous()}
    return cl, ms, shared


def reference(ms, s, idx):
    """float32 conv + SiLU + scan of channels ``idx``, from the same bf16 inputs -> y (b, k, l), last (b, k, n)."""
    x = ms["x"][:, idx].float()
    x = F.silu(F.conv1d(F.pad(x, (D_CONV - 1, 0)), s["w"][idx].float().unsqueeze(1), s["w_bias"][idx].float(),
                        groups=len(idx)))
    delta = F.softplus(ms["dt"][:, idx].float() + s["dt_bias"][idx, None])
    return selective_scan_reference(x, delta, s["A"][idx], ms["B"], ms["C"], s["D"][idx], ms["z"][:, idx])


def bench_scan_shape(b, l) -> dict:
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn

    conv = Kernels(conv1d=causal_conv1d_available()).conv  # causal-conv1d (the torch twin where it is missing)
    cl, ms, s = scan_inputs(b, l, torch.Generator(DEV).manual_seed(0))
    A, D, bias = s["A"], s["D"], s["dt_bias"]

    def conv_ms():  # (b, d, l)
        return conv(ms["x"], s["w"], s["w_bias"])

    def conv_cl():  # (b, l, d): the transpose of a channel-last (b, d, l) view
        return conv(cl["x"].transpose(1, 2), s["w"], s["w_bias"]).transpose(1, 2)

    def scan_ms(x):
        return selective_scan_fn(x, ms["dt"], A, ms["B"], ms["C"], D, z=ms["z"], delta_bias=bias,
                                 delta_softplus=True, return_last_state=True)

    def scan_cl(x, block_d=None):
        return selective_scan_channel_last(x, cl["dt"], A, cl["B"], cl["C"], D, cl["z"], bias, block_d=block_d)

    xm, xc = conv_ms(), conv_cl()
    (y_ms, last_ms), (y_cl, last_cl) = scan_ms(xm), scan_cl(xc)
    idx = torch.linspace(0, D_INNER - 1, REF_CHANNELS, device=DEV).round().long()
    y_ref, last_ref = reference(ms, s, idx)
    r = {"batch": b, "length": l, "d_inner": D_INNER, "d_state": D_STATE, "dtype": "bfloat16",
         "block_d_auto": launch_config(b, D_INNER, D_STATE, DEV),
         "conv_channel_last_vs_bdl_max_abs": float((xc.transpose(1, 2) - xm).abs().max()),
         "rel_err_vs_fp32_ref": {"mamba_ssm_y": rel(y_ms[:, idx], y_ref),
                                 "fused_y": rel(y_cl[:, :, idx].transpose(1, 2), y_ref),
                                 "mamba_ssm_last_state": rel(last_ms[:, idx], last_ref),
                                 "fused_last_state": rel(last_cl[:, idx], last_ref)},
         "rel_diff_fused_vs_mamba_ssm": {"y": rel(y_cl.transpose(1, 2), y_ms), "last_state": rel(last_cl, last_ms)}}
    del y_ms, y_cl, last_ms, last_cl
    r["mamba_ssm"] = {"conv_scan": timed(lambda: scan_ms(conv_ms())), "conv": timed(conv_ms),
                      "scan": timed(lambda: scan_ms(xm))}
    r["fused"] = {"conv_scan": timed(lambda: scan_cl(conv_cl())), "conv": timed(conv_cl),
                  "scan": timed(lambda: scan_cl(xc))}
    r["fused_scan_by_block_d"] = {bd: timed(lambda bd=bd: scan_cl(xc, bd))["median_ms"] for bd in BLOCKS}
    updates, tokens = b * l * D_INNER * D_STATE, b * l * D_INNER
    scan_bytes = 2 * 4 * tokens + 2 * 2 * b * l * D_STATE + 4 * b * D_INNER * D_STATE  # u dt z y, B C, last state
    for k in ("mamba_ssm", "fused"):
        t = r[k]["scan"]["median_ms"] / 1e3
        r[k]["state_updates_per_s"] = updates / t
        r[k]["scan_bytes"] = scan_bytes
        r[k]["scan_gb_per_s"] = scan_bytes / t / 1e9
    r["speedup_conv_scan"] = r["mamba_ssm"]["conv_scan"]["median_ms"] / r["fused"]["conv_scan"]["median_ms"]
    r["speedup_scan"] = r["mamba_ssm"]["scan"]["median_ms"] / r["fused"]["scan"]["median_ms"]
    e, f, m = r["rel_err_vs_fp32_ref"], r["fused"], r["mamba_ssm"]
    by_block = ", ".join(f"{k}: {v:.3f}" for k, v in r["fused_scan_by_block_d"].items())
    print(f"B{b}x{l}: conv+scan mamba-ssm {m['conv_scan']['median_ms']:.3f} ms, fused {f['conv_scan']['median_ms']:.3f}"
          f" ms: {r['speedup_conv_scan']:.2f}x (scan alone {m['scan']['median_ms']:.3f} vs {f['scan']['median_ms']:.3f}"
          f" ms: {r['speedup_scan']:.2f}x, BLOCK_D {r['block_d_auto']}; ms by BLOCK_D {by_block}); "
          f"{f['state_updates_per_s'] / 1e9:.0f} G state updates/s, {f['scan_gb_per_s']:.0f} GB/s; rel err vs fp32: "
          f"mamba-ssm {e['mamba_ssm_y']:.1e}, fused {e['fused_y']:.1e}; last states fused vs mamba-ssm "
          f"{r['rel_diff_fused_vs_mamba_ssm']['last_state']:.1e}", flush=True)
    return r


def bench_scan() -> dict:
    out = {}
    for b, l in SHAPES:
        try:
            out[f"B{b}x{l}"] = bench_scan_shape(b, l)
        except Exception as e:
            traceback.print_exc()
            out[f"B{b}x{l}"] = {"error": f"{type(e).__name__}: {e}"}
        torch.cuda.empty_cache()
    return out


# -- 2. a whole prefill ----------------------------------------------------------------------------------------


def model_trio():
    """MambaLM (Mamba-2.8B dims, random, bf16 but A_log / D float32, on the device) and mamba-ssm's
    MambaLMHeadModel with our state dict (lm_head tied to the embedding)."""
    from mamba_ssm.models.config_mamba import MambaConfig as MSConfig
    from mamba_ssm.models.mixer_seq_simple import MambaLMHeadModel

    torch.manual_seed(0)
    cfg = MambaConfig(**MODEL)
    with torch.device(DEV):
        ours = MambaLM(cfg)
    for m in ours.modules():
        for name, p in m.named_parameters(recurse=False):
            if name not in ("A_log", "D"):
                p.data = p.data.to(BF16)
    theirs = MambaLMHeadModel(MSConfig(**cfg.to_dict()), device=DEV, dtype=BF16).eval()
    missing, unexpected = theirs.load_state_dict(ours.state_dict(), strict=False)
    assert not unexpected and all("lm_head" in k for k in missing), (missing, unexpected)
    return ours.eval(), theirs


@torch.no_grad()
def bench_model() -> dict:
    ours, theirs = model_trio()
    kernels = {name: Kernels.resolve(name, DEV) for name in ("mamba_ssm", "fused")}
    out = {"kernels": {k: v.describe() for k, v in kernels.items()}}
    for b, l in MODEL_SHAPES:
        ids = torch.randint(0, MODEL["vocab_size"], (b, l), device=DEV, generator=torch.Generator(DEV).manual_seed(1))
        embeds = ours.backbone.embedding(ids)
        padded = torch.ones(b, l, dtype=torch.long, device=DEV)
        padded[: (b + 1) // 2, : l // 4] = 0  # half the rows (at least one) left-padded by a quarter
        cache = ours.allocate_inference_cache(b)
        r, logits = {}, {"mamba_ssm_model": theirs(ids, num_last_tokens=1).logits[:, -1].float()}
        r["mamba_ssm_model"] = timed(lambda: theirs(ids, num_last_tokens=1))
        for name, k in kernels.items():
            set_kernels(ours, k)
            logits[name] = ours.prefill(embeds, None, cache).float()
            logits[name + "_padded"] = ours.prefill(embeds, padded, cache).float()
            r[name] = timed(lambda: ours.prefill(embeds, None, cache))
            r[name + "_padded"] = timed(lambda: ours.prefill(embeds, padded, cache))
        pairs = [("fused", "mamba_ssm"), ("fused", "mamba_ssm_model"), ("mamba_ssm", "mamba_ssm_model"),
                 ("fused_padded", "mamba_ssm_padded")]
        r["logits_rel_diff"] = {f"{a}_vs_{c}": rel(logits[a], logits[c]) for a, c in pairs}
        r["same_greedy_token"] = {f"{a}_vs_{c}": float((logits[a].argmax(-1) == logits[c].argmax(-1)).float().mean())
                                  for a, c in pairs}
        r["speedup_fused_vs_mamba_ssm_kernels"] = r["mamba_ssm"]["median_ms"] / r["fused"]["median_ms"]
        r["speedup_fused_vs_mamba_ssm_model"] = r["mamba_ssm_model"]["median_ms"] / r["fused"]["median_ms"]
        out[f"B{b}x{l}"] = r
        print(f"prefill B{b}x{l}: fused {r['fused']['median_ms']:.1f} ms, mamba_ssm kernels "
              f"{r['mamba_ssm']['median_ms']:.1f} ms ({r['speedup_fused_vs_mamba_ssm_kernels']:.2f}x), "
              f"MambaLMHeadModel {r['mamba_ssm_model']['median_ms']:.1f} ms "
              f"({r['speedup_fused_vs_mamba_ssm_model']:.2f}x); logits rel diff {r['logits_rel_diff']}; "
              f"same greedy token {r['same_greedy_token']}", flush=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="folder for bench_scan.json")
    ap.add_argument("--skip", default="", help="comma-separated sections to skip: scan, model")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    doc = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "environment": environment(DEV)}
    print(f"device: {doc['environment']['device_name']}; versions: {doc['environment']['versions']}", flush=True)
    for name, fn in (("scan", bench_scan), ("model", bench_model)):
        if name in a.skip.split(","):
            continue
        t = time.perf_counter()
        try:
            doc[name] = fn()
        except Exception as e:
            traceback.print_exc()
            doc[name] = {"error": f"{type(e).__name__}: {e}"}
        doc[f"{name}_wall_s"] = time.perf_counter() - t
        if torch.cuda.is_available():
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
        (out / "bench_scan.json").write_text(json.dumps(doc, indent=1, default=str))
    print(f"wrote {out / 'bench_scan.json'}", flush=True)


if __name__ == "__main__":
    main()
