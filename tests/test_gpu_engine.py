"""The engine's CUDA paths (Triton / CUDA kernels, CUDA graphs) against the reference on the same weights.
Skipped without CUDA + mamba-ssm (CI has neither; scripts/bench_engine.py runs these on the H200)."""

import pytest
import torch

from qmamba_eval.engine.decode import GreedyDecoder
from qmamba_eval.engine.kernels import Kernels
from qmamba_eval.engine.mamba_lm import FastMambaLM
from qmamba_eval.models.mamba import MambaConfig, MambaLM, mamba_ssm_available

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
def test_kernels_match_the_reference_path_bf16():
    torch.manual_seed(0)
    lm = MambaLM(MambaConfig(d_model=256, n_layer=4, vocab_size=1000), device="cuda", dtype=torch.bfloat16).eval()
    lm.set_backend("reference")
    embeds, mask = _batch(256, [64, 40, 9], "cuda", torch.bfloat16)
    ref, cache = lm.prefill(embeds, mask)
    fast = FastMambaLM(lm, Kernels.for_device("cuda"))
    assert fast.k.scan and fast.k.fused_norm
    state = fast.allocate_state(4)
    assert _rel(fast.prefill(embeds, mask, state), ref) < 2e-2  # bf16 through 4 layers (reference ~5e-3)
    sub = type(state)(state.conv[:, :3], state.ssm[:, :3])
    for t in range(4):
        ids = torch.tensor([t, 5, 900], device="cuda")
        assert _rel(fast.step(ids, sub), lm.decode(ids, cache)) < 2e-2


@torch.no_grad()
def test_cuda_graph_decoding_equals_eager_decoding():
    torch.manual_seed(0)
    lm = MambaLM(MambaConfig(d_model=256, n_layer=4, vocab_size=1000), device="cuda", dtype=torch.float32).eval()
    fast = FastMambaLM(lm, Kernels.for_device("cuda"))
    embeds, mask = _batch(256, [30, 12, 30], "cuda", torch.float32)
    eager = GreedyDecoder(fast, 0, "cuda", graphs=False).generate(embeds, mask, 20)
    graphs = GreedyDecoder(fast, 0, "cuda", graphs=True)
    assert graphs.generate(embeds, mask, 20) == eager
    assert graphs.generate(embeds[:2], mask[:2], 20) == eager[:2]  # another bucket, another graph
    assert graphs.graph_captures == 2


@pytest.mark.parametrize("name", ["tiny-qmamba", "tiny-cobra", "tiny-vlmamba", "tiny-qformer", "tiny-llava-style"])
def test_engine_on_cuda_answers_like_the_reference(name):
    from PIL import Image

    from qmamba_eval.engine import attach
    from qmamba_eval.models import build_model

    m = build_model(name, device="cuda")
    with torch.no_grad():
        for _, p in m.llm.named_parameters():
            if p.dim() == 2:
                p.mul_(5)
    g = torch.Generator().manual_seed(0)
    ims = [Image.fromarray((torch.rand(48, 48, 3, generator=g) * 255 * (i + 1) / 4).byte().numpy()) for i in range(4)]
    prompts = ["What color is it?", "How many shapes are there?", "Yes?", "Name the colour of the big square"]
    ref = m.generate(ims, prompts, max_new_tokens=8)
    engine = attach(m)
    assert engine.graphs
    visual = m.projector(engine.vision.features([p.cuda() for p in m.vision.preprocess(ims)]))
    embeds, mask = engine.assemble(visual, prompts)
    assert [m.tokenizer.decode(r).strip() for r in engine.decoder.generate(embeds, mask, 8)] == ref
