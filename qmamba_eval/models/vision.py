"""Vision encoders built through transformers (SigLIP, DINOv2 with registers) and Cobra's fusion.

Every encoder returns patch features (B, N, feature_dim) from its second-to-last layer (as Cobra /
Prismatic do), without CLS or register tokens, and owns its preprocessing (resize + normalisation).
Weights come from a local folder in Hugging Face layout (``config.json`` + safetensors); without one the
encoder is randomly initialised and says so loudly.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
from PIL import Image


SIGLIP_MEAN, SIGLIP_STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class BackboneSpec:
    family: str  # "siglip" | "dinov2"
    image_size: int
    patch_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    mean: tuple
    std: tuple
    num_register_tokens: int = 0

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2


BACKBONES = {
    "siglip-so400m-14-384": BackboneSpec("siglip", 384, 14, 1152, 27, 16, 4304, SIGLIP_MEAN, SIGLIP_STD),
    "dinov2-l-14-reg4-384": BackboneSpec("dinov2", 384, 14, 1024, 24, 16, 4096, IMAGENET_MEAN, IMAGENET_STD, 4),
    "tiny-siglip": BackboneSpec("siglip", 48, 8, 32, 2, 2, 64, SIGLIP_MEAN, SIGLIP_STD),
    "tiny-dinov2": BackboneSpec("dinov2", 48, 8, 24, 2, 2, 48, IMAGENET_MEAN, IMAGENET_STD, 4),
}
# name -> the backbones whose features are concatenated along channels
ENCODERS = {
    "siglip-so400m-14-384": ("siglip-so400m-14-384",),
    "dinov2-l-14-reg4-384": ("dinov2-l-14-reg4-384",),
    "dinosiglip-384": ("dinov2-l-14-reg4-384", "siglip-so400m-14-384"),  # Cobra: 1024 + 1152 = 2176
    "tiny-siglip": ("tiny-siglip",),
    "tiny-dinosiglip": ("tiny-dinov2", "tiny-siglip"),
}


def preprocess(images: Sequence[Image.Image], size: int, mean, std) -> torch.Tensor:
    """Naive resize to size x size (bicubic), scale to [0, 1], normalise. -> (B, 3, size, size) float32."""
    out = []
    for im in images:
        arr = np.asarray(im.convert("RGB").resize((size, size), Image.BICUBIC), dtype=np.float32) / 255.0
        out.append(torch.from_numpy((arr - np.array(mean, np.float32)) / np.array(std, np.float32)))
    return torch.stack(out).permute(0, 3, 1, 2).contiguous()


def _hf_backbone(spec: BackboneSpec, weights: Optional[str], device=None, dtype=None) -> nn.Module:
    import transformers as tf

    if spec.family == "siglip":
        cfg_cls, model_cls = tf.SiglipVisionConfig, tf.SiglipVisionModel
        cfg_kw = dict(intermediate_size=spec.intermediate_size)
    else:
        cfg_cls, model_cls = tf.Dinov2WithRegistersConfig, tf.Dinov2WithRegistersModel
        cfg_kw = dict(mlp_ratio=spec.intermediate_size // spec.hidden_size,
                      num_register_tokens=spec.num_register_tokens)
    if weights:
        model = model_cls.from_pretrained(weights, torch_dtype=dtype)
    else:
        cfg = cfg_cls(hidden_size=spec.hidden_size, num_hidden_layers=spec.num_layers,
                      num_attention_heads=spec.num_heads, image_size=spec.image_size,
                      patch_size=spec.patch_size, **cfg_kw)
        model = model_cls(cfg)
        if dtype is not None:
            model = model.to(dtype)
    return model.to(device) if device is not None else model


class VisionEncoder(nn.Module):
    """One or more ViT backbones whose second-to-last-layer patch features are concatenated."""

    def __init__(self, name: str, weights: Optional[dict] = None, device=None, dtype=None):
        super().__init__()
        from ..registry import lookup

        self.name = name
        self.specs = [BACKBONES[b] for b in lookup(ENCODERS, name, "vision encoder")]
        weights = weights or {}
        missing = [b for b in ENCODERS[name] if not weights.get(b)]
        if missing:
            msg = (f"vision encoder {name!r}: no weights for {missing}; using RANDOM initialisation "
                   f"(scores will be meaningless). Pass a local Hugging Face folder per backbone.")
            warnings.warn(msg, stacklevel=2)
        self.random_init = bool(missing)
        self.backbones = nn.ModuleList(_hf_backbone(s, weights.get(b), device, dtype)
                                       for b, s in zip(ENCODERS[name], self.specs))
        sizes = {s.num_patches for s in self.specs}
        if len(sizes) != 1:
            raise ValueError(f"{name}: backbones disagree on the patch count {sizes}")
        self.num_patches = sizes.pop()
        self.feature_dim = sum(s.hidden_size for s in self.specs)

    def preprocess(self, images: Sequence[Image.Image]) -> list[torch.Tensor]:
        """One normalised pixel tensor (B, 3, H, W) per backbone."""
        return [preprocess(images, s.image_size, s.mean, s.std) for s in self.specs]

    def forward(self, pixels: list[torch.Tensor]) -> torch.Tensor:  # -> (B, N, feature_dim)
        feats = []
        for spec, backbone, px in zip(self.specs, self.backbones, pixels):
            p = next(backbone.parameters())
            out = backbone(pixel_values=px.to(p.device, p.dtype), output_hidden_states=True)
            h = out.hidden_states[-2]  # second-to-last layer, (B, T, C)
            prefix = 1 + spec.num_register_tokens if spec.family == "dinov2" else 0
            feats.append(h[:, prefix:])  # patches only, raster order
        return torch.cat(feats, dim=-1)
