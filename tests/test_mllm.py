import json

import pytest
import torch
from PIL import Image

from qmamba_eval.models import PRESETS, build_model
from qmamba_eval.models.checkpoints import CheckpointError, load_checkpoint, save_model
from qmamba_eval.models.mamba import MambaConfig, MambaLM

TINY = [n for n in PRESETS if n.startswith("tiny-")]


def images(n=3):
    g = torch.Generator().manual_seed(0)
    return [Image.fromarray((torch.rand(40 + 8 * i, 56, 3, generator=g) * 255).byte().numpy()) for i in range(n)]


PROMPTS = ["What color is it?", "How many shapes are there in this small picture?", "Yes?"]


def sharpen(model):
    """Scale the mixers' output projections so input differences reach the logits (shipped or random weights)."""
    with torch.no_grad():
        for n, p in model.llm.named_parameters():
            if "out_proj" in n:
                p.mul_(20)
    return model


@pytest.mark.parametrize("name", TINY)
def test_batched_equals_one_by_one(name):
    m = sharpen(build_model(name))
    ims = images()
    batched = m.generate(ims, PROMPTS, max_new_tokens=6)
    single = [m.generate([i], [p], max_new_tokens=6)[0] for i, p in zip(ims, PROMPTS)]
    assert batched == single
    s_b = m.score_options(ims, PROMPTS, ["Yes", "No"])
    s_1 = torch.cat([m.score_options([i], [p], ["Yes", "No"]) for i, p in zip(ims, PROMPTS)])
    torch.testing.assert_close(s_b, s_1, rtol=1e-4, atol=1e-4)
    assert s_b.shape == (3, 2) and bool((s_b < 0).all())


def test_padding_reaches_the_prefill_logits():
    m = sharpen(build_model("tiny-qmamba"))
    ims = images(2)
    vis = m.encode_images(ims)
    ids = m.text_ids(PROMPTS[:2])
    e, mask = m.assemble(vis, ids)
    assert mask[0].sum() == vis.shape[1] + len(ids[0]) and mask[0, 0] == 0  # left padding
    both = m.llm.prefill(e, mask, m.llm.allocate_inference_cache(2))
    e1, m1 = m.assemble(vis[:1], ids[:1])
    one = m.llm.prefill(e1, m1, m.llm.allocate_inference_cache(1))
    torch.testing.assert_close(both[:1], one, rtol=1e-5, atol=1e-5)


def test_chat_template_is_zephyr_for_mamba():
    m = build_model("tiny-cobra")
    assert m.tokenizer.decode(m.text_ids(["hi"])[0]) == "<|user|>\nhi\n<|assistant|>\n"  # eos is special
    assert m.tokenizer.encode("<|endoftext|>") == [m.tokenizer.eos_id]


def test_generate_stop_strings_and_length():
    m = sharpen(build_model("tiny-llava-style"))
    full = m.generate(images(1), ["x"], max_new_tokens=8)[0]
    assert len(full) > 2
    stop = full[2]
    cut = m.generate(images(1), ["x"], max_new_tokens=8, stop=[stop])[0]
    assert cut == full.split(stop)[0].strip()


def test_identity_records_backend_and_random_init():
    ident = build_model("tiny-qmamba", checkpoint="random").identity()
    assert ident["random_init"] and ident["kernels"]["backend"] == "reference"
    assert ident["kernels"]["selective_scan"] == "torch-reference" and ident["token_order"] == "raster"
    assert ident["parameters"] > 0 and len(ident["config_fingerprint"]) == 12


def test_query_count_override_and_unknown_preset():
    m = build_model("tiny-qmamba", num_queries=9)
    assert m.encode_images(images(1)).shape[1] == 9
    with pytest.raises(ValueError, match="Did you mean 'tiny-qmamba'"):
        build_model("tiny-qmama")


def test_our_format_round_trip(tmp_path):
    m = build_model("tiny-qmamba", seed=3)
    save_model(m, tmp_path / "ck")
    assert json.loads((tmp_path / "ck" / "config.json").read_text())["name"] == "tiny-qmamba"
    m2 = build_model(str(tmp_path / "ck"), seed=4)
    ims = images(2)
    torch.testing.assert_close(m2.encode_images(ims), m.encode_images(ims))
    assert m2.generate(ims, PROMPTS[:2]) == m.generate(ims, PROMPTS[:2])
    assert m2.identity()["checkpoint"]["format"] == "ours"


def test_dinov2_attention_names_of_either_transformers_spelling_load(tmp_path):
    """A checkpoint written under a transformers that names DINOv2's attention ``attention.attention.query`` (5.17,
    the GPU image) loads under one that says ``attention.q_proj`` (5.24), and the other way round."""
    from safetensors.torch import load_file, save_file

    from qmamba_eval.models.checkpoints import RENAMES

    m = build_model("tiny-qmamba", seed=3)
    save_model(m, tmp_path / "ck")
    state = load_file(str(tmp_path / "ck" / "model.safetensors"))
    swapped, n = {}, 0
    for k, v in state.items():
        for a, b in RENAMES:
            if a in k or b in k:
                k, n = (k.replace(a, b) if a in k else k.replace(b, a)), n + 1
                break
        swapped[k] = v
    assert n == 16  # 2 layers x (q, k, v, o) x (weight, bias) of the tiny DINOv2
    save_file(swapped, str(tmp_path / "ck" / "model.safetensors"))
    m2 = build_model(str(tmp_path / "ck"), seed=4)
    ims = images(2)
    torch.testing.assert_close(m2.encode_images(ims), m.encode_images(ims))


def test_cobra_format_round_trip(tmp_path):
    m = build_model("tiny-cobra", seed=5)
    proj = {k: v for k, v in m.projector.state_dict().items()}
    assert set(proj) == {f"projector.{i}.{w}" for i in (0, 2, 4) for w in ("weight", "bias")}
    llm = {f"llm.{k}": v for k, v in m.llm.state_dict().items()}
    torch.save({"model": {"projector": proj, "llm_backbone": llm}}, tmp_path / "cobra.pt")
    m2 = build_model("tiny-cobra", seed=6, checkpoint=str(tmp_path / "cobra.pt"))
    for k, v in m.projector.state_dict().items():
        torch.testing.assert_close(m2.projector.state_dict()[k], v)
    torch.testing.assert_close(m2.llm.lm_head.weight, m.llm.lm_head.weight)
    assert m2.checkpoint["format"] == "cobra" and m2.checkpoint["loaded"] == ["projector", "llm"]


def test_mamba_ssm_lm_state_dict_loads(tmp_path):
    m = build_model("tiny-qmamba", seed=7)
    lm = MambaLM(MambaConfig(**m.config.llm_config))
    torch.save(lm.state_dict(), tmp_path / "pytorch_model.bin")
    load_checkpoint(m, tmp_path / "pytorch_model.bin")
    torch.testing.assert_close(m.llm.backbone.layers[1].mixer.A_log, lm.backbone.layers[1].mixer.A_log)


def test_bad_checkpoints_name_the_tensors(tmp_path):
    m = build_model("tiny-cobra")
    llm = {f"llm.{k}": v for k, v in m.llm.state_dict().items()}
    proj = dict(m.projector.state_dict())
    proj["projector.0.weight"] = torch.zeros(3, 3)  # wrong shape
    del proj["projector.4.bias"]  # missing
    proj["projector.9.weight"] = torch.zeros(1)  # unexpected
    torch.save({"model": {"projector": proj, "llm_backbone": llm}}, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(m, tmp_path / "bad.pt")
    msg = str(e.value)
    assert "projector.projector.4.bias" in msg and "projector.projector.9.weight" in msg
    assert "projector.projector.0.weight (checkpoint (3, 3)" in msg
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(m, tmp_path / "junk.pt")
    torch.save({"foo": torch.zeros(1)}, tmp_path / "odd.pt")
    with pytest.raises(CheckpointError, match="unrecognised"):
        load_checkpoint(m, tmp_path / "odd.pt")
    # a Q-Mamba checkpoint with another query count
    q = build_model("tiny-qmamba", num_queries=8)
    save_model(q, tmp_path / "q8")
    with pytest.raises(CheckpointError, match="queries"):
        build_model("tiny-qmamba", checkpoint=str(tmp_path / "q8"))


def test_same_seed_same_model_whatever_the_dtype():
    a = build_model("tiny-qmamba", seed=11)
    b = build_model("tiny-qmamba", seed=11, dtype="bfloat16")
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    assert pb["llm.backbone.layers.0.mixer.A_log"].dtype == torch.float32  # kept fp32, as in mamba-ssm
    assert pb["llm.backbone.layers.0.mixer.in_proj.weight"].dtype == torch.bfloat16
    torch.testing.assert_close(pb["projector.queries"].float(), pa["projector.queries"].bfloat16().float())
    assert b.generate(images(2), PROMPTS[:2], max_new_tokens=3) is not None


def test_one_kernel_choice_reaches_every_part():
    m = build_model("tiny-vlmamba")
    holders = [x for x in m.modules() if "kernels" in vars(x)]
    assert len(holders) > 4 and {id(x.kernels) for x in holders} == {id(m.kernels)}  # LLM, mixers, connector, tower
    assert build_model("tiny-llava-style").identity()["llm_kernels"] == {"attention": "torch-sdpa"}
    with pytest.raises(RuntimeError, match="CUDA"):
        m.set_kernels("mamba_ssm")
    with pytest.raises(ValueError, match="unknown kernel backend"):
        m.set_kernels("fast")


def test_vision_loaded_from_a_checkpoint_is_not_recorded_as_random(tmp_path):
    save_model(build_model("tiny-qmamba", checkpoint="random", seed=3), tmp_path / "ck")
    assert build_model("tiny-qmamba", checkpoint="random").identity()["vision_random_init"]
    ident = build_model("tiny-qmamba", checkpoint=str(tmp_path / "ck")).identity()
    assert not ident["random_init"] and not ident["vision_random_init"]


def test_a_weight_under_both_dinov2_spellings_is_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    m = build_model("tiny-qmamba", seed=3)
    save_model(m, tmp_path / "ck")
    state = load_file(str(tmp_path / "ck" / "model.safetensors"))
    key = next(k for k in state if ".attention.q_proj." in k or ".attention.attention.query." in k)
    twin = key.replace(".attention.q_proj.", ".attention.attention.query.") if ".q_proj." in key else \
        key.replace(".attention.attention.query.", ".attention.q_proj.")
    state[twin] = torch.zeros_like(state[key])
    save_file(state, str(tmp_path / "ck" / "model.safetensors"))
    with pytest.raises(CheckpointError, match="twice"):
        build_model(str(tmp_path / "ck"))
