"""The CUDA paths (mamba-ssm / causal-conv1d / Triton kernels, CUDA graphs, device resize) against the reference
kernels on the same weights. Skipped without CUDA + mamba-ssm (CI has neither; the GPU runs are in results/gpu)."""

import pytest
import torch

from qmamba_eval.models.decode import GreedyDecoder
from qmamba_eval.models.mamba import MambaConfig, MambaLM
from qmamba_eval.models.ops import Kernels, mamba_ssm_available, set_kernels

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not (torch.cuda.is_available() and mamba_ssm_available()),
                                                  reason="needs CUDA and mamba-ssm")]


def _batch(d, lengths, device, dtype):
    g = torch.Generator(device="cpu").manual_seed(3)
    embeds = torch.randn(len(lengths), max(lengths), d, generator=g).to(device, dtype)
    mask = torch.zeros(len(lengths), max(lengths), dtype=torch.long, device=device)
    for i, n in enumerate(lengths):
        mask[i, max(lengths) - n:] = 1
    return embeds, mask


def _rel(a, b):
    return float((a.float() - b.float()).norm() / b.float().norm())


@torch.no_grad()
def test_kernels_match_the_reference_kernels_bf16():
    torch.manual_seed(0)
    lm = MambaLM(MambaConfig(d_model=256, n_layer=4, vocab_size=1000), device="cuda", dtype=torch.bfloat16).eval()
    embeds, mask = _batch(256, [64, 40, 9], "cuda", torch.bfloat16)
    out = {}
    for kernels in (Kernels(), Kernels.resolve("mamba_ssm", "cuda")):
        set_kernels(lm, kernels)
        cache = lm.allocate_inference_cache(4)
        pre = lm.prefill(embeds, mask, cache)
        sub = type(cache)(cache.conv[:, :3], cache.ssm[:, :3])
        steps = [lm.step(torch.tensor([t, 5, 900], device="cuda"), sub) for t in range(4)]
        out[kernels.backend] = [pre, *steps]
    assert Kernels.resolve("mamba_ssm", "cuda").scan
    for a, b in zip(out["mamba_ssm"], out["reference"]):
        assert _rel(a, b) < 2e-2  # bf16 through 4 layers (reference ~5e-3)


@torch.no_grad()
def test_cuda_graph_decoding_equals_eager_decoding():
    torch.manual_seed(0)
    lm = MambaLM(MambaConfig(d_model=256, n_layer=4, vocab_size=1000), device="cuda", dtype=torch.float32).eval()
    set_kernels(lm, Kernels.resolve("auto", "cuda"))
    embeds, mask = _batch(256, [30, 12, 30], "cuda", torch.float32)
    eager = GreedyDecoder(lm, 0, "cuda", graphs=False).generate(embeds, mask, 20)
    graphs = GreedyDecoder(lm, 0, "cuda", graphs=True)
    assert graphs.generate(embeds, mask, 20) == eager
    assert graphs.generate(embeds[:2], mask[:2], 20) == eager[:2]  # another bucket, another graph
    assert graphs.graph_captures == 2


@pytest.mark.parametrize("name", ["tiny-qmamba", "tiny-cobra", "tiny-vlmamba", "tiny-qformer", "tiny-llava-style"])
def test_cuda_kernels_answer_like_the_reference_kernels(name):
    from PIL import Image

    from qmamba_eval.models import build_model

    m = build_model(name, device="cuda", backend="reference")
    with torch.no_grad():
        for _, p in m.llm.named_parameters():
            if p.dim() == 2:
                p.mul_(5)
    g = torch.Generator().manual_seed(0)
    ims = [Image.fromarray((torch.rand(48, 48, 3, generator=g) * 255 * (i + 1) / 4).byte().numpy()) for i in range(4)]
    prompts = ["What color is it?", "How many shapes are there?", "Yes?", "Name the colour of the big square"]
    ref = m.generate(ims, prompts, max_new_tokens=8)
    k = m.set_kernels("auto")
    assert k.graphs and k.scan
    # the PIL pixels (the device resize may move a pixel by one grey level): kernels and graphs alone compared
    visual = m.projector(m.vision([p.cuda() for p in m.vision.preprocess(ims)]))
    embeds, mask = m.assemble(visual, m.text_ids(prompts))
    assert [m.tokenizer.decode(r).strip() for r in m.decoder.generate(embeds, mask, 8)] == ref


@torch.no_grad()
def test_prefill_graph_replays_equal_eager_prefill_and_answers_follow():
    from qmamba_eval.models.prefill_graphs import PrefillGraphs, left_pad, padded_length

    torch.manual_seed(0)
    lm = MambaLM(MambaConfig(d_model=256, n_layer=4, vocab_size=1000), device="cuda", dtype=torch.bfloat16).eval()
    set_kernels(lm, Kernels.resolve("auto", "cuda"))
    graphs = PrefillGraphs(lm)
    for lengths in ([30, 12, 30], [5], [70, 64]):
        embeds, mask = _batch(256, lengths, "cuda", torch.bfloat16)
        pe, pm = left_pad(embeds, mask, padded_length(embeds.shape[1]))
        batch = 4 if len(lengths) > 1 else 1
        full_e, full_m = pe.new_zeros(batch, *pe.shape[1:]), pm.new_zeros(batch, pm.shape[1])
        full_e[:len(lengths)], full_m[:len(lengths)] = pe, pm  # the graph's rows: the same GEMM shapes
        eager = lm.prefill(full_e, full_m, lm.allocate_inference_cache(batch))[:len(lengths)]
        cache = lm.allocate_inference_cache(batch)
        replayed = graphs(pe, pm, cache, batch)
        torch.testing.assert_close(replayed, eager, rtol=0, atol=0)  # the same kernels on the same input
        assert _rel(replayed, lm.prefill(embeds, mask, lm.allocate_inference_cache(batch))) < 2e-2
    assert graphs.captures == 3
