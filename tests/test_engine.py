"""The engine against the reference model on the same weights (CPU; the GPU twins are in test_gpu_engine.py)."""

import numpy as np
import pytest
import torch
from PIL import Image

from qmamba_eval.engine import Engine, attach, to_uint8
from qmamba_eval.engine.decode import GreedyDecoder, bucket
from qmamba_eval.engine.kernels import Kernels
from qmamba_eval.engine.llama_lm import FastLlama
from qmamba_eval.engine.mamba_lm import FastMambaLM
from qmamba_eval.engine.vision import resize_uint8
from qmamba_eval.models import PRESETS, build_model
from qmamba_eval.models.llm import LlamaLM
from qmamba_eval.models.mamba import MambaConfig, MambaLM
from qmamba_eval.models.presets import TINY_LLAMA
from qmamba_eval.models.vision import preprocess

TINY = [n for n in PRESETS if n.startswith("tiny-")]
PROMPTS = ["What color is it?", "How many shapes are there?", "Yes?", "Name the colour of the big square on the left"]


def images(n=4, size=48):
    g = torch.Generator().manual_seed(0)
    return [Image.fromarray((torch.rand(size, size + 8 * i, 3, generator=g) * 255 * (i + 1) / n).byte().numpy())
            for i in range(n)]


def sharpen(model, factor=5.0):
    """Larger LLM weights make answers differ from row to row on these unnatural images (tiny presets load their
    shipped weights; ``checkpoint="random"`` ones barely use their context), so equality checks can fail."""
    with torch.no_grad():
        for name, p in model.llm.named_parameters():
            if p.dim() == 2:
                p.mul_(factor)
    return model


def padded_batch(d, lengths, garbage=True):
    g = torch.Generator().manual_seed(1)
    embeds = torch.randn(len(lengths), max(lengths), d, generator=g)
    mask = torch.zeros(len(lengths), max(lengths), dtype=torch.long)
    for i, n in enumerate(lengths):
        mask[i, max(lengths) - n:] = 1
    if not garbage:
        embeds = embeds * mask[..., None]
    return embeds, mask  # padded positions hold random garbage: the engine must ignore it


@torch.no_grad()
def test_fast_mamba_prefill_and_steps_match_the_reference():
    torch.manual_seed(0)
    lm = MambaLM(MambaConfig(d_model=32, n_layer=3, vocab_size=101)).eval()
    fast = FastMambaLM(lm, Kernels())
    embeds, mask = padded_batch(32, [9, 3, 6])
    ref_logits, cache = lm.prefill(embeds, mask)
    state = fast.allocate_state(4)  # a bucket larger than the batch
    logits = fast.prefill(embeds, mask, state)
    torch.testing.assert_close(logits, ref_logits, rtol=1e-5, atol=1e-5)
    sub = type(state)(state.conv[:, :3], state.ssm[:, :3])
    for t in range(5):
        ids = torch.tensor([t, 2 * t + 1, 7])
        torch.testing.assert_close(fast.step(ids, sub), lm.decode(ids, cache), rtol=1e-5, atol=1e-5)


@torch.no_grad()
def test_fast_llama_prefill_and_steps_match_the_reference():
    torch.manual_seed(0)
    lm = LlamaLM(dict(TINY_LLAMA, vocab_size=101)).eval()
    fast = FastLlama(lm)
    embeds, mask = padded_batch(64, [9, 3, 6], garbage=False)  # HF's Llama reads pad embeddings: keep them 0
    ref_logits, cache = lm.prefill(embeds, mask)
    state = fast.allocate_state(3, 9 + 5)
    torch.testing.assert_close(fast.prefill(embeds, mask, state), ref_logits, rtol=1e-4, atol=1e-4)
    for t in range(5):
        ids = torch.tensor([t, 2 * t + 1, 7])
        torch.testing.assert_close(fast.step(ids, state), lm.decode(ids, cache), rtol=1e-4, atol=1e-4)


class CountingLM:
    """Stub LM: row r emits r+1, r+2, ... and EOS (0) after ``stop[r]`` tokens."""

    def __init__(self, stop, vocab=50):
        self.stop, self.vocab = stop, vocab

    def state_key(self, total_len):
        return None

    def allocate_state(self, batch, total_len=0):
        return {"t": torch.zeros(batch, dtype=torch.long)}

    def _logits(self, state):
        b = state["t"].shape[0]
        rows = torch.arange(b)
        stop = torch.tensor(list(self.stop) + [1] * (b - len(self.stop)))
        tok = torch.where(state["t"] >= stop, torch.zeros_like(rows), rows + 1 + state["t"])
        return torch.nn.functional.one_hot(tok, self.vocab).float()

    def prefill(self, embeds, mask, state):
        state["t"].zero_()
        return self._logits(state)[: embeds.shape[0]]

    def step(self, ids, state):
        state["t"].add_(1)
        return self._logits(state)


def test_decoder_stops_each_row_at_its_eos_on_the_device():
    dec = GreedyDecoder(CountingLM([2, 0, 5]), eos_id=0, device="cpu", graphs=False, check_every=4)
    out = dec.generate(torch.zeros(3, 4, 2), torch.ones(3, 4), max_new_tokens=8)
    assert out == [[1, 2], [], [3, 4, 5, 6, 7]]
    assert dec.generate(torch.zeros(3, 4, 2), torch.ones(3, 4), max_new_tokens=3) == [[1, 2], [], [3, 4, 5]]
    assert list(dec.slots) == [(4, None)] and bucket(3) == 4 and bucket(65) == 128


def test_device_resize_matches_pil_within_one_level():
    g = np.random.default_rng(0)
    im = Image.fromarray(g.integers(0, 255, (60, 80, 3)).astype(np.uint8)).resize((640, 480), Image.BILINEAR)
    for size in (48, 384):
        ref = preprocess([im], size, (0, 0, 0), (1, 1, 1))
        fast = resize_uint8([to_uint8(im)], size, "cpu")
        diff = (ref - fast).abs() * 255
        assert diff.max() <= 1.01 and diff.mean() < 0.3, (size, diff.max(), diff.mean())


@pytest.mark.parametrize("name", ["tiny-qmamba", "tiny-vlmamba"])
def test_vision_skipping_the_last_layer_gives_the_reference_features(name):
    m = build_model(name)
    pixels = m.vision.preprocess(images())
    fresh = build_model(name)  # the fast path runs first: it must not change the reference model either
    fast = attach(m).vision.features(pixels)
    torch.testing.assert_close(fast, m.vision(pixels), rtol=0, atol=0)
    torch.testing.assert_close(fast, fresh.vision(pixels), rtol=0, atol=0)


def test_assemble_matches_the_reference_layout():
    m = build_model("tiny-qmamba")
    e = Engine(m)
    visual = torch.randn(4, 16, 64)
    embeds, mask = e.assemble(visual, PROMPTS)
    ref_embeds, ref_mask = m._assemble(visual, m._text_ids(PROMPTS))
    torch.testing.assert_close(embeds, ref_embeds, rtol=0, atol=0)
    assert torch.equal(mask, ref_mask)


@pytest.mark.parametrize("name", TINY)
def test_engine_answers_equal_the_reference(name):
    ims = images()
    m = sharpen(build_model(name))  # the shipped weights (a seed would change nothing)
    ref = m.generate(ims, PROMPTS, max_new_tokens=6)
    engine = attach(m)
    # the same pixels as the reference (PIL preprocessing), so answers must be identical
    pixels = m.vision.preprocess(ims)
    visual = m.projector(engine.vision.features(pixels))
    embeds, mask = engine.assemble(visual, PROMPTS)
    rows = engine.decoder.generate(embeds, mask, 6)
    assert [m.tokenizer.decode(r).strip() for r in rows] == ref
    assert engine.generate(ims, PROMPTS, max_new_tokens=6, stop=["zz"]) == m.generate(ims, PROMPTS, 6, stop=["zz"])
    if name in ("tiny-qmamba", "tiny-llava-style"):
        assert len(set(ref)) > 1  # the answers depend on the input: the comparison can fail
    assert m.identity()["engine"]["name"] == "engine"


@pytest.mark.slow
def test_runner_with_the_engine_and_workers_gives_the_reference_answers(tmp_path):
    from qmamba_eval.results import read_samples
    from qmamba_eval.runner import RunConfig, Runner

    answers = {}
    for engine, workers in (("reference", 0), ("engine", 2)):
        cfg = RunConfig(tasks=["gqa"], output_dir=str(tmp_path), run_name=engine, engine=engine, limit=12,
                        workers=workers, progress=False, plot=False, batch_size=5)
        res = Runner(cfg).run()
        answers[engine] = {t: [s["answer"] for s in read_samples(tmp_path / engine / f"samples_{t}.jsonl")]
                           for t in ("gqa",)}
        assert res["model"]["engine"]["name"] == engine
    assert answers["engine"] == answers["reference"]


def test_pin_norm_configs_leaves_one_config(monkeypatch):
    """The Triton norm kernels' autotuners get one fixed config (same kernel in every torchrun process)."""
    import sys
    import types

    from qmamba_eval.engine import kernels

    class Autotuner:  # stands in for triton.runtime.autotuner.Autotuner: only the class name and .configs count
        def __init__(self, n):
            self.configs = [f"cfg{i}" for i in range(n)]

    fake_triton = types.SimpleNamespace(Config=lambda kwargs, num_warps: ("Config", kwargs, num_warps))
    monkeypatch.setitem(sys.modules, "triton", fake_triton)
    module = types.SimpleNamespace(fwd=Autotuner(6), bwd=Autotuner(6), single=Autotuner(1), other=object())
    assert kernels.pin_norm_configs(num_warps=8, module=module)
    assert module.fwd.configs == [("Config", {}, 8)] and module.bwd.configs == [("Config", {}, 8)]
    assert module.single.configs == ["cfg0"]  # already one config: untouched
    assert not kernels.pin_norm_configs(num_warps=8, module=module)  # nothing left to pin


def test_pin_norm_configs_leaves_block_size_configs_alone(monkeypatch):
    import sys
    import types

    from qmamba_eval.engine import kernels

    class Autotuner:
        def __init__(self):
            self.configs = [types.SimpleNamespace(kwargs={"BLOCK_SIZE_M": m}) for m in (16, 32)]

    monkeypatch.setitem(sys.modules, "triton", types.SimpleNamespace(Config=lambda kwargs, num_warps: None))
    module = types.SimpleNamespace(scan=Autotuner())
    assert not kernels.pin_norm_configs(num_warps=8, module=module) and len(module.scan.configs) == 2
