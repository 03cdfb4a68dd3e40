"""Vision encoders built through transformers (SigLIP, DINOv2 with registers) and Cobra's fusion.

Every encoder returns patch features (B, N, feature_dim) from its second-to-last layer (as Cobra /
Prismatic do), without CLS or register tokens; the layers after it (and pooling heads) never run. It owns its
preprocessing: a naive square resize (bicubic) and per-backbone normalisation. The resize is PIL's (the
reference, done by ``ImagePrep`` where images are decoded: data-loader workers) or, with the kernels' device
resize, bicubic with antialiasing on the device from the uint8 image (within one grey level of PIL's).
Weights come from a local folder in Hugging Face layout (``config.json`` + safetensors); without one the
encoder is randomly initialised and says so loudly.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import NamedTuple, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from .ops import REFERENCE, Kernels


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
    """The PIL reference written out: naive resize to size x size (bicubic), scale to [0, 1], normalise
    -> (B, 3, size, size) float32 (``VisionEncoder.pixels`` gives the same values through ``ImagePrep``)."""
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



# -- images on their way in ---------------------------------------------------------------------------------------


def to_uint8(image) -> torch.Tensor:
    """PIL image (any mode) or uint8 array -> (H, W, 3) uint8 tensor."""
    if isinstance(image, torch.Tensor):
        return image
    if not isinstance(image, np.ndarray):
        image = np.array(image.convert("RGB"))  # a writable copy
    return torch.from_numpy(np.ascontiguousarray(image))


class PreparedImage(NamedTuple):
    """An image as ``ImagePrep`` hands it to the model: PIL-resized uint8 (S, S, 3) per backbone size, or the
    whole uint8 (H, W, 3) image for the device resize."""

    resized: Optional[dict]
    full: Optional[torch.Tensor]


class ImagePrep:
    """What happens to a decoded image before it reaches the model; picklable, so data-loader workers run it."""

    def __init__(self, sizes: Sequence[int], on_device: bool):
        self.sizes, self.on_device = tuple(sorted(set(sizes))), on_device

    def __call__(self, image) -> PreparedImage:
        if isinstance(image, PreparedImage):
            return image
        if self.on_device:
            return PreparedImage(None, to_uint8(image))
        if isinstance(image, torch.Tensor):
            image = Image.fromarray(image.numpy())
        rgb = image.convert("RGB")
        return PreparedImage({s: torch.from_numpy(np.asarray(rgb.resize((s, s), Image.BICUBIC)).copy())
                              for s in self.sizes}, None)


def resize_uint8(images: list, size: int, device) -> torch.Tensor:
    """(H, W, 3) uint8 tensors -> (B, 3, size, size) float32 in [0, 1] on ``device``, PIL-like bicubic."""
    out = torch.empty(len(images), 3, size, size, device=device)
    groups: dict = {}
    for i, im in enumerate(images):
        groups.setdefault(tuple(im.shape), []).append(i)
    for idx in groups.values():  # one resize per distinct input size (often a single group)
        batch = torch.stack([images[i] for i in idx]).to(device, non_blocking=True)
        x = batch.permute(0, 3, 1, 2).float()  # (k, 3, H, W) in 0..255
        x = F.interpolate(x, size=(size, size), mode="bicubic", antialias=True, align_corners=False)
        out[torch.tensor(idx, device=device)] = x.round_().clamp_(0, 255) / 255.0
    return out


class _Stop(Exception):
    """Raised by a forward hook to end a backbone's forward once the wanted layer has run."""


def _output_of(backbone: nn.Module, layer: nn.Module, pixels: torch.Tensor, **kwargs) -> torch.Tensor:
    """The output of ``layer`` inside ``backbone(pixels)``; the layers after it (and pooling heads) never run.

    A hook, not an edited layer list: transformers installs its output recorders on the first forward, so a
    temporarily shortened model would change the model's own ``hidden_states`` afterwards."""
    box = {}

    def hook(module, args, out):
        box["h"] = out[0] if isinstance(out, tuple) else out
        raise _Stop

    handle = layer.register_forward_hook(hook)
    try:
        backbone(pixel_values=pixels, **kwargs)
    except _Stop:
        pass
    finally:
        handle.remove()
    return box["h"]


def _layers(backbone: nn.Module) -> nn.ModuleList:
    enc = backbone.vision_model.encoder if hasattr(backbone, "vision_model") else backbone.encoder
    return enc.layers if hasattr(enc, "layers") else enc.layer


class VisionEncoder(nn.Module):
    """One or more ViT backbones whose second-to-last-layer patch features are concatenated."""

    def __init__(self, name: str, weights: Optional[dict] = None, device=None, dtype=None,
                 overrides: Optional[dict] = None):
        """``overrides``: {backbone name: {BackboneSpec field: value}} -- another tower shape (a probe)."""
        super().__init__()
        from dataclasses import replace

        from ..registry import lookup

        self.name = name
        self.kernels: Kernels = REFERENCE  # device_resize: resize on the device instead of PIL's
        overrides = overrides or {}
        unknown = sorted(set(overrides) - set(lookup(ENCODERS, name, "vision encoder")))
        if unknown:
            raise ValueError(f"vision overrides name {unknown}, which encoder {name!r} does not have "
                             f"({', '.join(ENCODERS[name])})")
        self.specs = [replace(BACKBONES[b], **overrides.get(b, {})) for b in ENCODERS[name]]
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

    @property
    def prep(self) -> ImagePrep:
        """The per-image step for data-loader workers (PIL resize, or the uint8 image for the device resize)."""
        return ImagePrep([s.image_size for s in self.specs], self.kernels.device_resize)

    def pixels(self, images: Sequence, device=None) -> list[torch.Tensor]:
        """Images (PIL, uint8 (H, W, 3) tensors or ``PreparedImage``) -> one normalised (B, 3, S, S) float32
        tensor per backbone, on ``device`` (default: the encoder's)."""
        device = device or next(self.parameters()).device
        prep = self.prep
        images = [prep(im) for im in images]
        by_size, out = {}, []
        for spec in self.specs:
            s = spec.image_size
            if s not in by_size:
                if prep.on_device:
                    by_size[s] = resize_uint8([im.full for im in images], s, device)
                else:
                    batch = torch.stack([im.resized[s] for im in images]).to(device)  # (B, S, S, 3) uint8
                    by_size[s] = batch.permute(0, 3, 1, 2).float() / 255.0
            mean = torch.tensor(spec.mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
            std = torch.tensor(spec.std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
            out.append(((by_size[s] - mean) / std).contiguous())
        return out

    def preprocess(self, images: Sequence) -> list[torch.Tensor]:
        """One normalised pixel tensor (B, 3, H, W) per backbone, on the CPU."""
        return self.pixels(images, torch.device("cpu"))

    def forward(self, pixels: list[torch.Tensor], any_size: bool = False) -> torch.Tensor:
        """Normalised pixels (one tensor per backbone) -> patch features (B, N, feature_dim), raster order.

        ``any_size``: pixels at another resolution than the backbone's (position embeddings interpolated; the
        profiler's image-token sweep)."""
        feats = []
        for spec, backbone, px in zip(self.specs, self.backbones, pixels):
            p = next(backbone.parameters())
            kw = {"interpolate_pos_encoding": True} if any_size and spec.family == "siglip" else {}
            h = _output_of(backbone, _layers(backbone)[-2], px.to(p.device, p.dtype), **kw)  # (B, T, C)
            prefix = 1 + spec.num_register_tokens if spec.family == "dinov2" else 0
            feats.append(h[:, prefix:])  # patches only
        return torch.cat(feats, dim=-1)
