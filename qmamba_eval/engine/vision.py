"""Vision on the device: uint8 images in, normalised pixels out, encoders without their unused last layer.

``to_uint8(image)`` turns a PIL image into an (H, W, 3) uint8 tensor (what DataLoader workers hand over).
``FastVision(encoder)(images)`` resizes on the device (bicubic with antialiasing, as PIL's resize), rounds
and clips to uint8 levels like PIL, normalises per backbone, and runs each backbone only up to the layer
whose output the reference takes (its second-to-last), so the last layer and pooling heads are skipped.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..models.vision import VisionEncoder


def to_uint8(image) -> torch.Tensor:
    """PIL image (any mode) or uint8 array -> (H, W, 3) uint8 tensor."""
    if isinstance(image, torch.Tensor):
        return image
    if not isinstance(image, np.ndarray):
        image = np.array(image.convert("RGB"))  # a writable copy
    return torch.from_numpy(np.ascontiguousarray(image))


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
    temporarily shortened model would change the reference model's own ``hidden_states`` afterwards."""
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


class FastVision:
    def __init__(self, encoder: VisionEncoder):
        self.encoder = encoder

    def info(self) -> dict:
        impl = sorted({getattr(b.config, "_attn_implementation", None) or "eager" for b in self.encoder.backbones})
        return {"preprocess": "device bicubic+antialias", "attention": impl, "skips_last_layer": True}

    @torch.no_grad()
    def pixels(self, images: list, device) -> list[torch.Tensor]:
        """One (B, 3, S, S) float32 normalised tensor per backbone."""
        by_size: dict = {}
        out = []
        for spec in self.encoder.specs:
            if spec.image_size not in by_size:
                by_size[spec.image_size] = resize_uint8(images, spec.image_size, device)
            x = by_size[spec.image_size]
            mean = torch.tensor(spec.mean, device=device).view(1, 3, 1, 1)
            std = torch.tensor(spec.std, device=device).view(1, 3, 1, 1)
            out.append((x - mean) / std)
        return out

    @torch.no_grad()
    def __call__(self, images: list) -> torch.Tensor:
        """uint8 (H, W, 3) tensors -> patch features (B, N, feature_dim) as ``VisionEncoder.forward``."""
        return self.features(self.pixels(images, next(self.encoder.parameters()).device))

    @torch.no_grad()
    def features(self, pixels: list, any_size: bool = False) -> torch.Tensor:
        """Normalised pixels (one tensor per backbone) -> (B, N, feature_dim), the last layer left out.

        ``any_size``: pixels at another resolution than the backbone's (position embeddings interpolated;
        the profiler's image-token sweep)."""
        feats = []
        for spec, backbone, px in zip(self.encoder.specs, self.encoder.backbones, pixels):
            p = next(backbone.parameters())
            kw = {"interpolate_pos_encoding": True} if any_size and spec.family == "siglip" else {}
            h = _output_of(backbone, _layers(backbone)[-2], px.to(p.dtype), **kw)  # reference's hidden_states[-2]
            prefix = 1 + spec.num_register_tokens if spec.family == "dinov2" else 0
            feats.append(h[:, prefix:])
        return torch.cat(feats, dim=-1)
