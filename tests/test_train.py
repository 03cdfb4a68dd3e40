"""The trainer on a few steps of tiny synthetic data: loss goes down, resume is exact, frozen parts
stay frozen, the exported model loads; the shipped trained checkpoints load and look at the image."""

import json
import warnings

import pytest
import torch

from qmamba_eval.train import StageConfig, TrainConfig, train
from qmamba_eval.train.loop import build_untrained, lr_factor

SCALE = (12, 4, 2)


def tiny_config(**kw):
    stages = kw.pop("stages", None) or [
        StageConfig("align", train=("projector",), data="captions", max_steps=2, batch_size=3, lr=5e-3),
        StageConfig("instruct", train=("projector", "llm"), data="qa", max_steps=2, batch_size=3, lr=5e-3)]
    return TrainConfig(model="tiny-qmamba", stages=stages, data_scale=SCALE, max_per_task=3, save_every=2, **kw)


def state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same(a, b, prefix):
    return all(torch.equal(a[k], b[k]) for k in a if k.startswith(prefix))


def test_schedule_warms_up_then_decays():
    f = [lr_factor(s, 100, 10, 0.1) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(x >= y for x, y in zip(f[10:], f[11:])) and f[-1] == pytest.approx(0.1, abs=1e-3)


def test_a_few_steps_lower_the_loss(tmp_path):
    from qmamba_eval import synthetic
    from qmamba_eval.train.data import build_examples, collate, vision_features
    from qmamba_eval.train.loop import batch_loss

    cfg = tiny_config(stages=[StageConfig("instruct", train=("projector", "llm"), data="qa", epochs=6,
                                          batch_size=15, lr=1e-2, warmup_ratio=0.0)])
    data = synthetic.generate("train", scale=SCALE)
    examples = build_examples(data, "qa", cfg.max_per_task)

    def loss_of(model):
        with torch.no_grad():
            return float(batch_loss(model, *collate(model, examples, vision_features(model, data.images())),
                                    "float32"))

    before = loss_of(build_untrained(cfg))
    after = loss_of(train(cfg, tmp_path, progress=False))
    assert after < 0.7 * before
    assert (tmp_path / "loss.png").is_file() and (tmp_path / "train.log").is_file()
    log = [json.loads(x) for x in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert len(log) == 6 and log[-1]["loss"] < log[0]["loss"]


def test_resume_continues_identically(tmp_path):
    straight = train(tiny_config(), tmp_path / "a", progress=False)
    stopped = train(tiny_config(), tmp_path / "b", progress=False, stop_after=3)  # inside stage 2
    assert json.loads((tmp_path / "b" / "train_log.jsonl").read_text().splitlines()[-1])["stage"] == 1
    resumed = train(tiny_config(), tmp_path / "b", progress=False)
    a, b = state(straight), state(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert state(stopped).keys() == a.keys()
    la = (tmp_path / "a" / "train_log.jsonl").read_text()
    assert la == (tmp_path / "b" / "train_log.jsonl").read_text()
    with pytest.raises(ValueError, match="different training run"):
        train(tiny_config(seed=1), tmp_path / "b", progress=False)


def vision_config(**kw):
    return tiny_config(stages=[StageConfig("vision", train=("vision",), data="attributes", max_steps=4, batch_size=5,
                                           lr=1e-2),
                               StageConfig("instruct", train=("projector", "llm"), data="qa", max_steps=2,
                                           batch_size=3, lr=1e-2)], **kw)


def test_resume_inside_the_vision_stage_continues_identically(tmp_path):
    """Stopped inside the tower pretraining (heads and optimiser in the checkpoint), resumed: the same weights and
    log as one uninterrupted run; the instruct stage then sees features of the pretrained tower."""
    straight = train(vision_config(), tmp_path / "a", progress=False)
    train(vision_config(), tmp_path / "b", progress=False, stop_after=2)
    assert json.loads((tmp_path / "b" / "train_log.jsonl").read_text().splitlines()[-1])["stage_name"] == "vision"
    resumed = train(vision_config(), tmp_path / "b", progress=False)
    a, b = state(straight), state(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "a" / "train_log.jsonl").read_text() == (tmp_path / "b" / "train_log.jsonl").read_text()


def test_frozen_parts_stay_frozen_and_the_export_loads(tmp_path):
    from qmamba_eval.models import build_model
    from PIL import Image

    cfg = tiny_config()
    init = state(build_untrained(cfg))
    after_align = state(train(cfg, tmp_path, progress=False, stop_after=2))  # the end of stage 1
    assert same(init, after_align, "vision.") and same(init, after_align, "llm.")
    assert not same(init, after_align, "projector.")
    final = train(cfg, tmp_path, progress=False)
    done = state(final)
    rounded = {k: v.half().float() for k, v in init.items()}  # the final model is the float16 export
    assert same(rounded, done, "vision.") and not same(after_align, done, "llm.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = build_model(str(tmp_path / "model"))
    assert loaded.checkpoint["format"] == "ours"
    assert all(torch.equal(v.float(), done[k]) for k, v in loaded.state_dict().items())
    im = [Image.new("RGB", (96, 96), (200, 30, 30))]
    final.eval()
    assert torch.allclose(final.score_options(im, ["Is there a circle?"], ["Yes", "No"]),
                          loaded.score_options(im, ["Is there a circle?"], ["Yes", "No"]))


def test_cli_key_values():
    from qmamba_eval.cli.options import parse_key_values

    def _key_values(text):
        return parse_key_values(text, "--stage2")

    assert _key_values("lr=1e-3,epochs=2,train=projector+llm,max_steps=none,precision=bfloat16") == {
        "lr": 1e-3, "epochs": 2, "train": ("projector", "llm"), "max_steps": None, "precision": "bfloat16"}
    assert _key_values("tie_embeddings=false,rms_norm=True") == {"tie_embeddings": False, "rms_norm": True}
    with pytest.raises(ValueError):
        StageConfig("x", train=("decoder",))


def _indexed_scan(u, delta, A, B, C, D, z):
    """The scan as first written (dA[:, :, t] indexed per step): what the unbound reference must equal."""
    h = u.new_zeros(u.shape[0], u.shape[1], A.shape[1])
    dA = torch.exp(delta.unsqueeze(-1) * A[:, None, :])
    dBu = (delta * u).unsqueeze(-1) * B.transpose(1, 2).unsqueeze(1)
    ys = []
    for t in range(u.shape[-1]):
        h = dA[:, :, t] * h + dBu[:, :, t]
        ys.append(torch.einsum("bdn,bn->bd", h, C[:, :, t]))
    return (torch.stack(ys, dim=-1) + u * D[:, None]) * torch.nn.functional.silu(z), h


def test_reference_scan_equals_the_indexed_scan_forward_and_backward():
    from qmamba_eval.models.ops import selective_scan_reference

    g = torch.Generator().manual_seed(0)
    b, d, n, l = 2, 6, 4, 9
    args = [torch.randn(b, d, l, generator=g), torch.rand(b, d, l, generator=g), -torch.rand(d, n, generator=g),
            torch.randn(b, n, l, generator=g), torch.randn(b, n, l, generator=g), torch.randn(d, generator=g),
            torch.randn(b, d, l, generator=g)]
    outs = []
    for fn in (_indexed_scan, selective_scan_reference):
        xs = [a.clone().requires_grad_() for a in args]
        y, h = fn(*xs)
        (y.square().sum() + h.sum()).backward()
        outs.append([y, h] + [x.grad for x in xs])
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])  # forward: bit for bit
    assert all(torch.allclose(p, q, atol=1e-6) for p, q in zip(outs[0], outs[1]))


SHIPPED = ("tiny-qmamba", "tiny-qformer", "tiny-cobra", "tiny-vlmamba", "tiny-llava-style")


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_checkpoints_load_by_default_and_answer_from_the_image(name):
    from qmamba_eval import synthetic
    from qmamba_eval.models import build_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the vision tower has no Hugging Face weights: it is in the checkpoint
        model = build_model(name)
    assert model.checkpoint and model.checkpoint["path"].endswith(name) and not model.identity()["random_init"]
    data = synthetic.generate("test", scale=(8, 0, 0), tasks=())
    images = [s.image for s in data.scenes]
    prompt = "What color is the square?\nAnswer the question using a single word or phrase."
    colors = ["red", "blue", "green", "yellow"]
    spread = float(model.score_options(images, [prompt] * len(images), colors).std(0).mean())
    untrained = build_model(name, checkpoint="random")
    flat = float(untrained.score_options(images, [prompt] * len(images), colors).std(0).mean())
    # trained, the answer's log-probabilities follow the picture (measured: std 2.9-4.6 nats across the 8
    # images); untrained they barely move (7e-5 to 1e-2, the most for the Transformer LLM)
    assert spread > 0.5 and flat < 0.05
    assert untrained.checkpoint is None


def test_default_run_reproduces_the_committed_baseline(tmp_path):
    from pathlib import Path

    from qmamba_eval.runner import RunConfig, Runner

    baseline = json.loads((Path(__file__).resolve().parents[1] / "results" / "baselines" /
                           "sample_tiny-qmamba.json").read_text())
    res = Runner(RunConfig(tasks=["gqa", "pope"], output_dir=str(tmp_path), progress=False, plot=False)).run()
    assert not res["model"]["random_init"] and res["model"]["checkpoint"]["format"] == "ours"
    for t in ("gqa", "pope"):
        assert res["tasks"][t]["answers_digest"] == baseline["tasks"][t]["answers_digest"]
        assert res["tasks"][t]["metrics"] == baseline["tasks"][t]["metrics"]


def test_vision_pretraining_targets_and_heads():
    """Scene targets read the scene description; the heads' loss falls when only the tower trains on it."""
    from qmamba_eval import synthetic
    from qmamba_eval.train.vision_pretrain import IGNORE, N_TARGETS, AttributeHeads, scene_targets, targets_table

    data = synthetic.generate("train", scale=SCALE)
    shapes = next(s for s in data.scenes if s.kind == "shapes")
    t = scene_targets(shapes)
    assert len(t) == N_TARGETS and t[-2] == 0 and t[-1] == IGNORE
    for o in shapes.objects:  # the object's quadrant holds its shape / colour / size; empty quadrants hold 0
        assert t[3 * o.slot:3 * o.slot + 3] == [1 + synthetic.SHAPES.index(o.shape),
                                               1 + list(synthetic.COLORS).index(o.color),
                                               1 + list(synthetic.SIZES).index(o.size)]
    empty = set(range(4)) - {o.slot for o in shapes.objects}
    assert all(t[3 * q:3 * q + 3] == [0, 0, 0] for q in empty)
    sign = next(s for s in data.scenes if s.kind == "sign")
    assert scene_targets(sign)[-1] == synthetic.WORDS.index(sign.text) and scene_targets(sign)[0] == IGNORE

    torch.manual_seed(0)
    heads = AttributeHeads(8, 36)
    assert torch.allclose(heads.pool.sum(1), torch.ones(4)) and (heads.pool > 0).sum() == 36  # a partition
    feats = torch.randn(len(data.scenes), 36, 8, requires_grad=True)
    targets = torch.stack(list(targets_table(data).values()))
    opt = torch.optim.Adam([feats, *heads.parameters()], lr=0.05)
    first = None
    for _ in range(30):
        loss = heads.loss(feats, targets)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss) < 0.5 * first


def test_vision_stage_trains_the_tower_alone(tmp_path):
    cfg = tiny_config(stages=[StageConfig("vision", train=("vision",), data="attributes", max_steps=3,
                                          batch_size=4, lr=1e-2),
                              StageConfig("instruct", train=("projector", "llm"), data="qa", max_steps=1,
                                          batch_size=3, lr=1e-2)])
    before = state(build_untrained(cfg))
    after = state(train(cfg, tmp_path, progress=False))
    assert not same(before, after, "vision.") and not same(before, after, "llm.")
    with pytest.raises(ValueError, match="vision tower and / or the projector.s connector"):
        StageConfig("v", train=("vision", "llm"), data="attributes")


def test_val_selection_marks_the_best_seed_per_system(tmp_path):
    import json

    from qmamba_eval.study import table as mt

    def row(model, system, order, *acc):
        return {"model": model, "system": system, "order": order,
                "tasks": {t: {"accuracy": a} for t, a in zip(("gqa", "pope"), acc)}}

    rows = [{"model": "majority", "system": "majority", "order": "-", "tasks": {"gqa": {"accuracy": 99.0}}},
            row("a-seed0", "a", "raster", 50, 70), row("a-seed1", "a", "raster", 60, 80),
            row("a-seed1", "a", "permuted", 99, 99),  # other orders never choose
            row("b-seed0", "b", "raster", 40, 40), row("b-seed1", "b", "raster", 40, 40)]  # tie: first listed
    out = tmp_path / "val_selection.jsonl"
    mt.write_selection(rows, out)
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(g["model"], g["mean"], g["ships"]) for g in got] == [
        ("a-seed0", 60.0, False), ("a-seed1", 70.0, True), ("b-seed0", 40.0, True), ("b-seed1", 40.0, False)]


def test_table_command_answers_through_the_runner_with_the_scan_order_probe(tmp_path, capsys):
    """``run_eval.py table``: one row per order from run folders of the Runner (resumable, re-scorable); the raster
    row equals a plain run on the same synthetic data; a permuted order changes a fixed-scan model's answers."""
    import json

    from qmamba_eval.cli import main
    from qmamba_eval.models.presets import shipped_checkpoint
    from qmamba_eval.runner import RunConfig, Runner

    model = shipped_checkpoint("tiny-cobra")
    assert main(["table", "--models", model, "--scale", "6,2,1", "--orders", "raster,permuted", "--out",
                 str(tmp_path / "t"), "--threads", "2"]) == 0
    doc = json.loads((tmp_path / "t" / "table.json").read_text())
    rows = {r["order"]: r for r in doc["rows"]}
    assert set(rows) == {"-", "raster", "permuted"} and (tmp_path / "t" / "table.png").stat().st_size > 1000
    plain = Runner(RunConfig(tasks=["gqa", "pope"], model=model, data="synthetic:test:6,2,1", max_new_tokens=6,
                             output_dir=str(tmp_path / "plain"), progress=False, plot=False)).run()
    assert rows["raster"]["tasks"]["pope"]["n"] == plain["tasks"]["pope"]["n_samples"]
    assert abs(rows["raster"]["tasks"]["pope"]["accuracy"] - plain["tasks"]["pope"]["metrics"]["pooled/accuracy"]) < 1e-9
    permuted = json.loads((tmp_path / "t" / "runs" / "tiny-cobra-permuted" / "results.json").read_text())
    assert permuted["model"]["token_order"] == "permuted" and permuted["run"]["config"]["token_order"] == "permuted"
    assert permuted["tasks"]["gqa"]["answers_digest"] != plain["tasks"]["gqa"]["answers_digest"]


@pytest.mark.parametrize("train", [("vision", "connector"), ("connector",)])
def test_stage_0_can_pretrain_the_bidirectional_connector(tmp_path, train):
    """The study's 'pretrained connector': the attribute heads read the connector's output, so stage 0 trains it
    (with the tower, or on a frozen tower); nothing else moves."""
    from qmamba_eval.train import StageConfig, TrainConfig, Trainer

    stage = StageConfig("vision", train=train, data="attributes", epochs=1, max_steps=3, batch_size=8, lr=1e-2)
    cfg = TrainConfig(model="tiny-qmamba", projector_overrides={"connector": "bidirectional"}, stages=[stage],
                      data_scale=(8, 2, 1), save_every=1000, export_dtype="float32")
    import torch

    from qmamba_eval.train.loop import build_untrained

    before = {k: v.clone() for k, v in build_untrained(cfg).state_dict().items()}
    model = Trainer(cfg, tmp_path, progress=False).run()
    after = model.state_dict()
    moved = {k.split(".")[0] + ("." + k.split(".")[1] if k.startswith("projector.") else "")
             for k in after if not torch.equal(after[k], before[k])}
    assert "projector.connector" in moved and not moved & {"llm", "projector.queries", "projector.blocks"}
    assert ("vision" in moved) == ("vision" in train)
    with pytest.raises(ValueError, match="connector"):
        StageConfig("qa", train=("connector",), data="qa")
