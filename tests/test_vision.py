import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from qmamba_eval.models.vision import (IMAGENET_MEAN, IMAGENET_STD, SIGLIP_MEAN, SIGLIP_STD, VisionEncoder,
                                       preprocess)


def photo():
    g = np.random.default_rng(0)
    return Image.fromarray(g.integers(0, 255, (77, 123, 3), dtype=np.uint8))


def pil_processor(name: str):
    """transformers' PIL-backend image processor ``name`` -- the one our PIL preprocessing matches. From
    transformers 5 the plain name is the torchvision backend when torchvision is installed (a GPU image), with
    other resampling arithmetic; the PIL backend is ``<name>Pil``. Before 5 the plain name was the PIL one."""
    import transformers

    cls = getattr(transformers, name + "Pil", None)
    if cls is None and int(transformers.__version__.split(".")[0]) < 5:
        cls = getattr(transformers, name)
    if cls is None:
        pytest.skip(f"transformers {transformers.__version__} has no PIL-backend {name}")
    return cls


def test_siglip_preprocessing_matches_transformers():
    SiglipImageProcessor = pil_processor("SiglipImageProcessor")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = SiglipImageProcessor(size={"height": 384, "width": 384})(photo(), return_tensors="np")["pixel_values"]
    torch.testing.assert_close(preprocess([photo()], 384, SIGLIP_MEAN, SIGLIP_STD), torch.tensor(np.array(ref)),
                               rtol=0, atol=1e-6)


def test_dinov2_naive_resize_matches_transformers():
    BitImageProcessor = pil_processor("BitImageProcessor")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        proc = BitImageProcessor(size={"height": 384, "width": 384}, do_center_crop=False, resample=3,
                                 image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD)
        ref = proc(photo(), return_tensors="np")["pixel_values"]
    torch.testing.assert_close(preprocess([photo()], 384, IMAGENET_MEAN, IMAGENET_STD), torch.tensor(np.array(ref)),
                               rtol=0, atol=1e-6)


def test_fused_encoder_concatenates_second_to_last_layer_patches():
    enc = VisionEncoder("tiny-dinosiglip").eval()
    assert enc.random_init and enc.num_patches == 36 and enc.feature_dim == 24 + 32
    px = enc.preprocess([photo(), photo().convert("L")])
    feats = enc(px)
    assert feats.shape == (2, 36, 56)
    dino, sig = enc.backbones
    h = dino(pixel_values=px[0], output_hidden_states=True).hidden_states
    torch.testing.assert_close(feats[..., :24], h[-2][:, 1 + 4:])  # CLS and 4 registers dropped
    torch.testing.assert_close(feats[..., 24:], sig(pixel_values=px[1], output_hidden_states=True).hidden_states[-2])


def test_real_encoder_dimensions():
    from qmamba_eval.models.vision import BACKBONES, ENCODERS

    dims = sum(BACKBONES[b].hidden_size for b in ENCODERS["dinosiglip-384"])
    assert dims == 2176 and BACKBONES["siglip-so400m-14-384"].num_patches == 729


def test_random_init_warns_and_unknown_name():
    with pytest.warns(UserWarning, match="RANDOM"):
        VisionEncoder("tiny-siglip")
    with pytest.raises(KeyError, match="Did you mean 'tiny-siglip'"):
        VisionEncoder("tiny-siglp")


def test_local_weights_folder_round_trip(tmp_path):
    enc = VisionEncoder("tiny-siglip").eval()
    enc.backbones[0].save_pretrained(tmp_path / "sig")
    enc2 = VisionEncoder("tiny-siglip", weights={"tiny-siglip": str(tmp_path / "sig")}).eval()
    assert not enc2.random_init
    px = enc.preprocess([photo()])
    torch.testing.assert_close(enc2(px), enc(px))
