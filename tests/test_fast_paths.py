"""Every fast path against its plain reference on the same weights and inputs (CPU twins of the CUDA paths; the
CUDA kernels themselves are checked in test_gpu_engine.py)."""

import numpy as np
import pytest
import torch
from PIL import Image

from qmamba_eval.models import PRESETS, build_model
from qmamba_eval.models.decode import GreedyDecoder, bucket
from qmamba_eval.models.llama import LlamaLM
from qmamba_eval.models.ops import Kernels, set_kernels
from qmamba_eval.models.presets import TINY_LLAMA
from qmamba_eval.models.vision import ImagePrep, preprocess, resize_uint8, to_uint8

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
def naive_greedy(model, ims, prompts, n):
    """The plainest greedy decoder: the whole sequence through ``forward`` at every step, no cache at all."""
    embeds, mask = model.assemble(model.encode_images(ims), model.text_ids(prompts))
    out = []
    for _ in range(n):
        nxt = model.llm(inputs_embeds=embeds, attention_mask=mask)[:, -1].float().argmax(-1)
        out.append(nxt)
        embeds = torch.cat([embeds, model.llm.embed(nxt)[:, None].to(embeds.dtype)], 1)
        mask = torch.cat([mask, mask.new_ones(len(prompts), 1)], 1)
    return torch.stack(out, 1).tolist()


@torch.no_grad()
def test_llama_static_cache_matches_the_hugging_face_forward():
    torch.manual_seed(0)
    lm = LlamaLM(dict(TINY_LLAMA, vocab_size=101)).eval()
    embeds, mask = padded_batch(64, [9, 3, 6], garbage=False)  # HF's Llama reads pad embeddings: keep them 0
    cache = lm.allocate_inference_cache(3, 9 + 5)
    torch.testing.assert_close(lm.prefill(embeds, mask, cache), lm(inputs_embeds=embeds, attention_mask=mask)[:, -1],
                               rtol=1e-4, atol=1e-4)
    for t in range(5):
        ids = torch.tensor([t, 2 * t + 1, 7])
        embeds = torch.cat([embeds, lm.embed(ids)[:, None]], 1)
        mask = torch.cat([mask, mask.new_ones(3, 1)], 1)
        torch.testing.assert_close(lm.step(ids, cache), lm(inputs_embeds=embeds, attention_mask=mask)[:, -1],
                                   rtol=1e-4, atol=1e-4)


class CountingLM:
    """Stub LM: row r emits r+1, r+2, ... and EOS (0) after ``stop[r]`` tokens."""

    def __init__(self, stop, vocab=50):
        self.stop, self.vocab = stop, vocab

    def cache_key(self, total_len):
        return None

    def allocate_inference_cache(self, batch, total_len=0):
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


def test_pil_preparation_gives_the_reference_pixels_exactly():
    ims = images()
    m = build_model("tiny-qmamba")
    ref = [preprocess(ims, s.image_size, s.mean, s.std) for s in m.vision.specs]
    for got in (m.vision.preprocess(ims), m.vision.pixels([ImagePrep([48], False)(im) for im in ims])):
        for a, b in zip(got, ref):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("name", ["tiny-qmamba", "tiny-vlmamba"])
def test_vision_skipping_the_last_layer_gives_the_hidden_states_features(name):
    m = build_model(name)
    pixels = m.vision.preprocess(images())
    got = m.vision(pixels)
    ref = []
    for spec, backbone, px in zip(m.vision.specs, m.vision.backbones, pixels):
        h = backbone(pixel_values=px, output_hidden_states=True).hidden_states[-2]
        ref.append(h[:, 1 + spec.num_register_tokens:] if spec.family == "dinov2" else h)
    torch.testing.assert_close(got, torch.cat(ref, -1), rtol=0, atol=0)
    torch.testing.assert_close(m.vision(pixels), got, rtol=0, atol=0)  # the hook leaves the model as it was


def test_assemble_matches_a_row_by_row_layout():
    m = build_model("tiny-qmamba")
    visual = torch.randn(4, 16, 64)
    ids = m.text_ids(PROMPTS)
    embeds, mask = m.assemble(visual, ids)
    longest = max(len(x) for x in ids)
    for i, row in enumerate(ids):
        start = longest - len(row)
        assert mask[i].tolist() == [0] * start + [1] * (16 + len(row))
        torch.testing.assert_close(embeds[i, start:start + 16], visual[i], rtol=0, atol=0)
        torch.testing.assert_close(embeds[i, start + 16:], m.llm.embed(torch.tensor(row)), rtol=0, atol=0)


@pytest.mark.parametrize("name", TINY)
def test_static_decoder_answers_equal_the_plainest_greedy_loop(name):
    ims = images()
    m = sharpen(build_model(name))  # the shipped weights (a seed would change nothing)
    ref = naive_greedy(m, ims, PROMPTS, 6)
    embeds, mask = m.assemble(m.encode_images(ims), m.text_ids(PROMPTS))
    rows = GreedyDecoder(m.llm, -1, "cpu", graphs=False).generate(embeds, mask, 6)  # EOS never ends a row
    assert rows == ref
    texts = m.generate(ims, PROMPTS, max_new_tokens=6)
    if name in ("tiny-qmamba", "tiny-llava-style"):
        assert len(set(texts)) > 1  # the answers depend on the input: the comparison can fail


@pytest.mark.parametrize("name", ["tiny-qformer", "tiny-llava-style"])
def test_device_resize_kernels_answer_like_the_pil_reference(name):
    """The CUDA choice of image resize (bicubic + antialias on the device), on the CPU: answers as PIL's."""
    ims = images()
    m = sharpen(build_model(name))
    ref = m.generate(ims, PROMPTS, max_new_tokens=6, stop=["zz"])
    m._kernels = set_kernels(m, Kernels(device_resize=True))
    assert m.identity()["kernels"]["image_resize"] == "device bicubic+antialias"
    assert m.generate(ims, PROMPTS, max_new_tokens=6, stop=["zz"]) == ref


@pytest.mark.slow
def test_runner_with_workers_gives_the_in_process_answers(tmp_path):
    from qmamba_eval.results import read_samples
    from qmamba_eval.runner import RunConfig, Runner

    answers = {}
    for name, workers in (("inline", 0), ("workers", 2)):
        cfg = RunConfig(tasks=["gqa"], output_dir=str(tmp_path), run_name=name, limit=12, workers=workers,
                        progress=False, plot=False, batch_size=5)
        Runner(cfg).run()
        answers[name] = [s["answer"] for s in read_samples(tmp_path / name / "samples_gqa.jsonl")]
    assert answers["workers"] == answers["inline"]


def test_pin_norm_configs_leaves_one_config(monkeypatch):
    """The Triton norm kernels' autotuners get one fixed config (same kernel in every torchrun process)."""
    import sys
    import types

    from qmamba_eval.models import ops as kernels

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

    from qmamba_eval.models import ops as kernels

    class Autotuner:
        def __init__(self):
            self.configs = [types.SimpleNamespace(kwargs={"BLOCK_SIZE_M": m}) for m in (16, 32)]

    monkeypatch.setitem(sys.modules, "triton", types.SimpleNamespace(Config=lambda kwargs, num_warps: None))
    module = types.SimpleNamespace(scan=Autotuner())
    assert not kernels.pin_norm_configs(num_warps=8, module=module) and len(module.scan.configs) == 2


@torch.no_grad()
def test_left_padding_to_a_length_bucket_is_exact():
    """What the CUDA prefill graphs do to a prompt (left-pad it to a multiple of 64 tokens) changes no logit of the
    real tokens beyond float rounding, for both LLMs."""
    from qmamba_eval.models.prefill_graphs import left_pad, padded_length

    for name in ("tiny-qmamba", "tiny-llava-style"):
        m = sharpen(build_model(name))
        embeds, mask = m.assemble(m.encode_images(images()), m.text_ids(PROMPTS))
        ref = m.llm.prefill(embeds, mask, m.llm.allocate_inference_cache(4, 200))
        pe, pm = left_pad(embeds, mask, padded_length(embeds.shape[1]))
        assert pe.shape[1] % 64 == 0 and pe.shape[1] > embeds.shape[1]
        got = m.llm.prefill(pe, pm, m.llm.allocate_inference_cache(4, 200))
        torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4)
