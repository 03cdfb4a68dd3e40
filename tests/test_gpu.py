"""mamba-ssm kernel path == reference path (bf16 tolerance). Skipped without CUDA + mamba-ssm."""

import pytest
import torch

from qmamba_eval.models.mamba import MambaConfig, MambaLM, mamba_ssm_available

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not (torch.cuda.is_available() and mamba_ssm_available()),
                                                  reason="needs CUDA and mamba-ssm")]


@torch.no_grad()
def test_kernel_path_matches_reference_prefill_and_step():
    torch.manual_seed(0)
    m = MambaLM(MambaConfig(d_model=256, n_layer=4, vocab_size=1000), device="cuda", dtype=torch.bfloat16).eval()
    ids = torch.randint(0, 1000, (2, 64), device="cuda")
    mask = torch.ones_like(ids)
    mask[0, :9] = 0
    out = {}
    for backend in ("reference", "mamba_ssm"):
        m.set_backend(backend)
        cache = m.allocate_cache(2)
        pre = m(input_ids=ids, attention_mask=mask, cache=cache)
        steps = torch.stack([m.step(ids[:, t], cache) for t in range(8)], 1)
        out[backend] = (pre[mask.bool()].float(), steps.float())
    for a, b in zip(out["reference"], out["mamba_ssm"]):
        rel = (a - b).abs().max() / a.abs().max()
        assert rel < 3e-2, rel  # bf16: 8 mantissa bits, accumulated over 4 layers
