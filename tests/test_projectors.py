import pytest
import torch

from qmamba_eval.models.projectors import (PROJECTORS, FixedScanProjector, MLPProjector, QFormerProjector,
                                           QMambaProjector, ScanConnector, local_attention_mask)


@pytest.mark.parametrize("cls", [QMambaProjector, QFormerProjector])
@pytest.mark.parametrize("num_queries", [1, 7, 36, 64])
@pytest.mark.parametrize("num_blocks", [1, 2])
def test_query_projector_shapes(cls, num_queries, num_blocks):
    p = cls(24, 32, num_queries, num_blocks=num_blocks, num_heads=4)
    assert p(torch.randn(3, 36, 24)).shape == (3, num_queries, 32)


@pytest.mark.parametrize("scan", ["raster", "bidirectional", "cross"])
def test_fixed_scan_shapes(scan):
    p = FixedScanProjector(24, 32, scan=scan)
    assert p(torch.randn(2, 36, 24)).shape == (2, 36, 32)
    assert p.projector[0].weight.shape == (96, 24)  # fused-gelu-mlp: v -> 4v -> d -> d


def test_cobra_projector_dims():
    p = MLPProjector(2176, 2560, device="meta")
    assert [tuple(p.projector[i].weight.shape) for i in (0, 2, 4)] == [(8704, 2176), (2560, 8704), (2560, 2560)]


def test_plain_mlp_has_its_own_name_and_scan_projectors_keep_theirs():
    from qmamba_eval.models import PRESETS

    assert PROJECTORS["mlp"] is MLPProjector and PROJECTORS["fixed_scan"] is FixedScanProjector
    assert PRESETS["cobra-3.5b"].projector == "mlp" and PRESETS["llava-style-2.7b"].projector == "mlp"
    assert PRESETS["vlmamba-2.8b"].projector == "fixed_scan"
    # the same MLP parameter names either way (Cobra checkpoints load into both)
    assert set(MLPProjector(8, 8).state_dict()) == set(FixedScanProjector(8, 8, scan="raster").state_dict())


@pytest.mark.parametrize("cls", [QMambaProjector, QFormerProjector])
def test_global_attention_is_scan_order_invariant(cls):
    p = cls(24, 32, 9, num_blocks=2, num_heads=4).eval()
    v = torch.randn(2, 36, 24)
    perm = torch.randperm(36)
    torch.testing.assert_close(p(v[:, perm]), p(v), rtol=1e-5, atol=1e-5)


def test_order_matters_with_local_attention_and_connectors():
    v = torch.randn(1, 36, 24)
    perm = torch.randperm(36)
    for p in [QMambaProjector(24, 32, 9, local_attention=True, num_heads=4),
              QMambaProjector(24, 32, 9, connector="bidirectional", num_heads=4),
              FixedScanProjector(24, 32, scan="cross")]:
        p.eval()
        assert (p(v[:, perm]) - p(v)[:, :p(v).shape[1]]).abs().max() > 1e-4


def test_local_mask_chunks():
    m = local_attention_mask(5, 16)
    assert m.sum(1).tolist() == [4, 3, 3, 3, 3]  # first 16 mod 5 queries get one extra
    assert m.sum(0).tolist() == [1] * 16  # every patch owned once
    # contiguous, in raster order
    owners = m.float().argmax(0).tolist()
    assert owners == sorted(owners)
    assert local_attention_mask(4, 16).sum(1).tolist() == [4, 4, 4, 4]
    with pytest.raises(ValueError, match="num_queries <= visual tokens"):
        local_attention_mask(17, 16)


def test_local_attention_query_sees_only_its_chunk():
    p = QMambaProjector(24, 32, 4, local_attention=True, num_heads=4).eval()
    v = torch.randn(1, 16, 24)
    out = p(v)
    v2 = v.clone()
    v2[:, 12:] += torch.randn(1, 4, 24)  # change only the last query's chunk
    out2 = p(v2)
    # queries 0..2 change only through the Mamba over queries, which is causal: q3 comes last
    torch.testing.assert_close(out2[:, :3], out[:, :3], rtol=1e-5, atol=1e-5)
    assert (out2[:, 3] - out[:, 3]).abs().max() > 1e-4


def test_cross_scan_needs_square_grid():
    with pytest.raises(ValueError, match="square"):
        ScanConnector(8, "cross")(torch.randn(1, 10, 8))


def test_bad_names():
    with pytest.raises(ValueError, match="unknown scan"):
        FixedScanProjector(8, 8, scan="zigzag")


@pytest.mark.parametrize("cls", [MLPProjector, FixedScanProjector])
def test_pooling_cuts_a_fixed_scan_system_to_fewer_tokens(cls):
    from qmamba_eval.models.projectors import pool_grid

    p = cls(24, 32, pool=2)
    assert p(torch.randn(2, 36, 24)).shape == (2, 9, 32) and cls(24, 32, pool=3)(torch.randn(2, 36, 24)).shape[1] == 4
    x = torch.arange(36.0).view(1, 36, 1)  # raster 6 x 6 grid: value = row * 6 + col
    assert pool_grid(x, 2)[0, :, 0].tolist() == [3.5, 5.5, 7.5, 15.5, 17.5, 19.5, 27.5, 29.5, 31.5]
    with pytest.raises(ValueError, match="cannot be pooled 4 x 4"):
        p4 = cls(24, 32, pool=4)
        p4(torch.randn(1, 36, 24))


@pytest.mark.parametrize("name, overrides, tokens", [("tiny-cobra", {"pool": 2}, 9), ("tiny-vlmamba", {"pool": 3}, 4),
                                                     ("tiny-qmamba", {"num_queries": 4}, 4),
                                                     ("tiny-qformer", {"num_queries": 16}, 16)])
def test_the_token_count_study_systems_build_and_answer_on_the_cpu(name, overrides, tokens):
    """The study's cuts (pooled fixed-scan systems, fewer queries) build, hand the LLM that many tokens, answer."""
    import warnings

    from PIL import Image

    from qmamba_eval.models import build_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random weights: a build-and-run check
        m = build_model(name, **overrides)
    im = Image.new("RGB", (48, 48), (200, 30, 30))
    assert m.encode_images([im]).shape[1] == tokens == m.visual_tokens
    assert len(m.generate([im, im], ["What colour?", "Is there a cross?"], max_new_tokens=3)) == 2
