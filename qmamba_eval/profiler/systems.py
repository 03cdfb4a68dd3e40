"""What the profiler runs: the project's systems (their CUDA kernels, graphs and static caches), and an outside
reference pipeline.

Every system offers the same steps for one sweep point (``prepare(n_tokens, batch)`` first):
``vision()`` -> features, ``project(features)`` -> visual tokens, ``prefill(visual)`` -> first-token logits,
``decode_steps(k)`` (k steps on the state the last prefill left), ``generate(max_new)`` (the whole pipeline from
pixels to ``max_new`` tokens, EOS ignored). Image-token counts N are square grids: the encoders run at
``patch * sqrt(N)`` pixels with interpolated position embeddings.

``reference``: on CUDA with mamba-ssm, transformers' encoders + Cobra's MLP in ``nn.Sequential`` + mamba-ssm's
own ``MambaLMHeadModel`` (``generate(cg=True)``), no project code; it feeds token ids of the same length as
the visual + text sequence (``MambaLMHeadModel`` takes no embeddings; the compute is the same). Without
mamba-ssm (CPU tests) it is the project's readable reference path: ``MLLM`` pieces and a Python token loop.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from ..models.flops import llm_decode_flops, llm_prefill_flops
from ..models.ops import mamba_ssm_available
from ..models.vision import BACKBONES, ENCODERS

PROMPT = "Describe the image specifically"  # Cobra's speed protocol


def _bytes(module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


def _pixels(spec_names, n_tokens, batch, device, dtype):
    side = math.isqrt(n_tokens)
    if side * side != n_tokens:
        raise ValueError(f"image-token counts must be square grids, got {n_tokens}")
    g = torch.Generator(device="cpu").manual_seed(n_tokens * 1000 + batch)
    return [torch.randn(batch, 3, BACKBONES[s].patch_size * side, BACKBONES[s].patch_size * side,
                        generator=g).to(device, dtype) for s in spec_names]


class ProjectSystem:
    """A preset with its fast kernels (random weights built on the device); decoding ignores EOS."""

    kind = "project"

    def __init__(self, name, preset, device, dtype, seed=0, **overrides):
        from ..models import build_model
        from ..models.decode import GreedyDecoder

        self.name, self.preset, self.device = name, preset, torch.device(device)
        self.model = build_model(preset, device=str(device), dtype=dtype, init="device", seed=seed, **overrides)
        self.decoder = GreedyDecoder(self.model.llm, -1, self.device, self.model.kernels.graphs)  # EOS never ends
        self.specs = list(ENCODERS[self.model.config.vision])
        self.slot = None

    def info(self) -> dict:
        return {"preset": self.preset, "projector": self.model.config.projector,
                "projector_kwargs": self.model.config.projector_kwargs, "kernels": self.model.kernels.describe(),
                "llm_kernels": self.model.llm.kernel_info(), "parameters": self.model.identity()["parameters"]}

    def prepare(self, n_tokens, batch):
        self.batch = batch
        self.px = _pixels(self.specs, n_tokens, batch, self.device, self.model.dtype)

    def vision(self):
        return self.model.vision(self.px, any_size=True)

    def project(self, feats):
        return self.model.projector(feats.to(self.model.dtype))

    def _embeds(self, visual):
        return self.model.assemble(visual, self.model.text_ids([PROMPT] * visual.shape[0]))

    def llm_length(self, visual) -> int:
        return self._embeds(visual)[0].shape[1]

    def prefill(self, visual):
        embeds, mask = self._embeds(visual)
        self.slot = self.decoder._slot(embeds.shape[0], embeds.shape[1] + 256, 256)
        return self.model.llm.prefill(embeds, mask, self.slot.cache)

    def decode_steps(self, k):
        for _ in range(k):
            self.slot.step()

    def generate(self, max_new):
        with torch.no_grad():
            embeds, mask = self._embeds(self.project(self.vision()))
            return self.decoder.generate(embeds, mask, max_new)

    def prefill_flops(self, batch, length) -> float:
        return llm_prefill_flops(self.model.llm, batch, length)

    def decode_flops(self, batch, context) -> float:
        return llm_decode_flops(self.model.llm, batch, context)

    def llm_weight_bytes(self) -> int:
        return _bytes(self.model.llm)

    def close(self):
        del self.model, self.decoder, self.slot


class ReferencePipeline:
    """transformers encoders + nn.Sequential MLP + mamba-ssm ``MambaLMHeadModel`` (Cobra's stack, no project code)."""

    kind = "reference"
    decode_by_length = True  # mamba-ssm owns its decode graph: per-token time from two generate lengths

    def __init__(self, device, dtype, seed=0, vocab=50280):
        import transformers as tf
        from mamba_ssm.models.config_mamba import MambaConfig
        from mamba_ssm.models.mixer_seq_simple import MambaLMHeadModel

        from ..models import _dtype

        torch.manual_seed(seed)
        dtype = _dtype(dtype) or torch.float32
        self.name, self.device, self.dtype, self.vocab = "reference", torch.device(device), dtype, vocab
        self.specs = list(ENCODERS["dinosiglip-384"])
        with self.device:
            encs = []
            for s in self.specs:
                b = BACKBONES[s]
                if b.family == "siglip":
                    cfg = tf.SiglipVisionConfig(hidden_size=b.hidden_size, num_hidden_layers=b.num_layers,
                                                num_attention_heads=b.num_heads, image_size=b.image_size,
                                                patch_size=b.patch_size, intermediate_size=b.intermediate_size)
                    encs.append(tf.SiglipVisionModel(cfg))
                else:
                    cfg = tf.Dinov2WithRegistersConfig(hidden_size=b.hidden_size, num_hidden_layers=b.num_layers,
                                                       num_attention_heads=b.num_heads, image_size=b.image_size,
                                                       patch_size=b.patch_size, num_register_tokens=4,
                                                       mlp_ratio=b.intermediate_size // b.hidden_size)
                    encs.append(tf.Dinov2WithRegistersModel(cfg))
            self.encoders = [e.to(dtype).eval() for e in encs]
            v = sum(BACKBONES[s].hidden_size for s in self.specs)
            self.mlp = nn.Sequential(nn.Linear(v, 4 * v), nn.GELU(), nn.Linear(4 * v, 2560), nn.GELU(),
                                     nn.Linear(2560, 2560)).to(dtype).eval()
        cfg = MambaConfig(d_model=2560, n_layer=64, vocab_size=vocab, pad_vocab_size_multiple=8)
        self.lm = MambaLMHeadModel(cfg, device=self.device, dtype=dtype).eval()
        self.text_tokens = 12  # "<|user|>\nDescribe the image specifically<|endoftext|>\n<|assistant|>\n" in NeoX

    def info(self) -> dict:
        import mamba_ssm

        return {"pipeline": "transformers SiglipVisionModel + Dinov2WithRegistersModel, nn.Sequential MLP, "
                            "mamba_ssm MambaLMHeadModel (generate cg=True)", "mamba_ssm": mamba_ssm.__version__}

    def prepare(self, n_tokens, batch):
        self.batch, self.n = batch, n_tokens
        self.px = _pixels(self.specs, n_tokens, batch, self.device, self.dtype)
        g = torch.Generator(device="cpu").manual_seed(7)
        self.ids = torch.randint(0, self.vocab, (batch, n_tokens + self.text_tokens), generator=g).to(self.device)

    @torch.no_grad()
    def vision(self):
        feats = []
        for enc, s, px in zip(self.encoders, self.specs, self.px):
            b = BACKBONES[s]
            kw = {"interpolate_pos_encoding": True} if b.family == "siglip" else {}
            h = enc(pixel_values=px, output_hidden_states=True, **kw).hidden_states[-2]
            feats.append(h[:, 1 + b.num_register_tokens:] if b.family == "dinov2" else h)
        return torch.cat(feats, -1)

    @torch.no_grad()
    def project(self, feats):
        return self.mlp(feats)

    def llm_length(self, visual) -> int:
        return self.ids.shape[1]

    @torch.no_grad()
    def prefill(self, visual):
        return self.lm(self.ids, num_last_tokens=1).logits[:, -1]

    def decode_steps(self, k):
        raise NotImplementedError  # measured from generate() lengths instead (mamba-ssm owns its graph)

    @torch.no_grad()
    def generate(self, max_new):
        self.project(self.vision())
        return self.lm.generate(self.ids, max_length=self.ids.shape[1] + max_new, cg=True, top_k=1)

    def _per_token(self) -> float:
        from ..models.mamba import MambaConfig, MambaLM

        cfg = MambaConfig(d_model=2560, n_layer=64, vocab_size=self.vocab)  # mamba-ssm's model's dimensions
        return MambaLM(cfg, device="meta").flops_per_token()

    def prefill_flops(self, batch, length) -> float:
        return batch * length * self._per_token()

    def decode_flops(self, batch, context) -> float:
        return batch * self._per_token()

    def llm_weight_bytes(self) -> int:
        return _bytes(self.lm)

    def close(self):
        del self.encoders, self.mlp, self.lm


class ProjectReference(ProjectSystem):
    """Without mamba-ssm (CPU): tiny-cobra on the reference kernels, ``MambaLM.prefill`` and a Python token loop
    over ``MambaLM.step`` (no static decoder, no graphs)."""

    kind = "reference"

    def __init__(self, device, dtype, seed=0):
        super().__init__("reference", "tiny-cobra", device, dtype, seed)
        self.model.set_kernels("reference")

    def info(self) -> dict:
        return {"pipeline": "project reference path (reference kernels, Python decode loop): mamba-ssm not available",
                "preset": self.preset}

    def prefill(self, visual):
        embeds, mask = self._embeds(visual)
        self.cache = self.model.llm.allocate_inference_cache(embeds.shape[0], embeds.shape[1] + 256)
        return self.model.llm.prefill(embeds, mask, self.cache)

    def decode_steps(self, k):
        ids = torch.zeros(self.batch, dtype=torch.long, device=self.device)
        for _ in range(k):
            ids = self.model.llm.step(ids, self.cache).float().argmax(-1)

    def generate(self, max_new):
        with torch.no_grad():
            logits = self.prefill(self.project(self.vision()))
            out = []
            for _ in range(max_new):
                ids = logits.float().argmax(-1)
                out.append(ids)
                logits = self.model.llm.step(ids, self.cache)
            return torch.stack(out, 1).tolist()


GPU_SYSTEMS = {  # name -> (preset, projector overrides)
    "qmamba": ("qmamba-2.8b", {}),
    "qformer": ("qformer-2.8b", {}),
    "cobra": ("cobra-3.5b", {}),
    "vlmamba": ("vlmamba-2.8b", {}),
    "llava-style": ("llava-style-2.7b", {}),
}
TINY_SYSTEMS = {name: (f"tiny-{name}", {}) for name in GPU_SYSTEMS}


def reference_available(device) -> bool:
    return torch.device(device).type == "cuda" and mamba_ssm_available()
