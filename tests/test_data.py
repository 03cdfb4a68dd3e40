"""Local official layouts, hub-schema files and the hub loader (without network)."""

import json

import pytest
from PIL import Image

from qmamba_eval.data.sources import load_docs
from qmamba_eval.readers.images import ImageLoadError, load_image
from qmamba_eval.data import sources
from qmamba_eval.tasks import get_task


def img(path, color=(200, 10, 10)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (20, 16), color).save(path)
    return path


def test_vqav2_official_layout(tmp_path):
    (tmp_path / "v2_OpenEnded_mscoco_val2014_questions.json").write_text(json.dumps(
        {"questions": [{"question_id": 7, "image_id": 42, "question": "What?"}]}))
    (tmp_path / "v2_mscoco_val2014_annotations.json").write_text(json.dumps(
        {"annotations": [{"question_id": 7, "answer_type": "other",
                          "answers": [{"answer": "red", "answer_id": i + 1} for i in range(10)]}]}))
    img(tmp_path / "val2014" / "COCO_val2014_000000000042.jpg")
    rows, info = load_docs(get_task("vqav2"), str(tmp_path))
    assert rows[0]["answers"][0]["answer"] == "red" and load_image(rows[0]["image"]).size == (20, 16)
    assert info.fingerprint and not info.is_sample


def test_gqa_textvqa_layouts(tmp_path):
    g = tmp_path / "gqa"
    g.mkdir()
    (g / "testdev_balanced_questions.json").write_text(json.dumps(
        {"q1": {"imageId": "n1", "question": "Is it red?", "answer": "yes", "fullAnswer": "Yes."}}))
    img(g / "images" / "n1.jpg")
    rows, _ = load_docs(get_task("gqa"), str(g))
    assert rows == [{"id": "q1", "imageId": "n1", "question": "Is it red?", "answer": "yes", "fullAnswer": "Yes.",
                     "image": str(g / "images" / "n1.jpg")}]
    t = tmp_path / "textvqa"
    t.mkdir()
    (t / "TextVQA_0.5.1_val.json").write_text(json.dumps({"data": [
        {"question_id": 5, "question": "what brand?", "answers": ["nike"] * 10, "ocr_tokens": ["NIKE", "air"],
         "image_id": "abc"}]}))
    img(t / "train_images" / "abc.jpg")
    rows, _ = load_docs(get_task("textvqa"), str(t))
    task = get_task("textvqa")
    assert task.prompt(rows[0], "ocr_after") == ("What brand?\nReference OCR token: NIKE, air\n"
                                                "Answer the question using a single word or phrase.")


def test_pope_and_mme_layouts(tmp_path):
    p = tmp_path / "pope"
    p.mkdir()
    for s in ("adversarial", "random"):
        (p / f"coco_pope_{s}.json").write_text(
            json.dumps({"question_id": 1, "image": "COCO_val2014_000000000001.jpg", "text": "Is there a cat?",
                        "label": "no"}) + "\n")
    img(p / "val2014" / "COCO_val2014_000000000001.jpg")
    rows, _ = load_docs(get_task("pope"), str(p))
    assert {r["category"] for r in rows} == {"adversarial", "random"}
    assert len({r["question_id"] for r in rows}) == 2  # ids made unique across splits
    m = tmp_path / "MME"
    img(m / "count" / "0001.jpg")
    (m / "count" / "0001.txt").write_text("Are there two dogs? Please answer yes or no.\tYes\n"
                                          "Are there three dogs? Please answer yes or no.\tNo\n")
    img(m / "artwork" / "images" / "10.jpg")
    (m / "artwork" / "questions_answers_YN").mkdir(parents=True)
    (m / "artwork" / "questions_answers_YN" / "10.txt").write_text("Is this by Monet? Please answer yes or no.\tYes\n")
    rows, _ = load_docs(get_task("mme"), str(m))
    assert [r["category"] for r in rows] == ["count", "count", "artwork"] or \
        sorted(r["category"] for r in rows) == ["artwork", "count", "count"]
    task = get_task("mme")
    assert task.prompt(rows[0]) == "Are there two dogs?\nAnswer the question using a single word or phrase."
    assert task.prompt(rows[0], "as_released").endswith("Please answer yes or no.")


def test_parquet_hub_schema(tmp_path):
    datasets = pytest.importorskip("datasets", reason="datasets (hub loading) is not installed")

    ds = datasets.Dataset.from_list([{"id": "a", "question": "q?", "answer": "yes", "imageId": "x",
                                      "image": {"bytes": (img(tmp_path / "i.png")).read_bytes(), "path": None}}])
    ds = ds.cast_column("image", datasets.Image())
    ds.to_parquet(str(tmp_path / "gqa.parquet"))
    rows, info = load_docs(get_task("gqa"), str(tmp_path / "gqa.parquet"))
    assert len(rows) == 1 and load_image(rows[0]["image"]).size == (20, 16)


def test_hub_offline_error_is_clear(tmp_path, monkeypatch):
    pytest.importorskip("datasets", reason="datasets (hub loading) is not installed")
    import datasets.config
    import huggingface_hub.constants

    # the libraries read these variables at import time: set both the variables and their constants
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True, raising=False)
    with pytest.raises(ConnectionError, match="offline mode is on"):
        load_docs(get_task("pope"), "hub", cache_dir=str(tmp_path))


def test_hub_gqa_join_and_limit(monkeypatch):
    datasets = pytest.importorskip("datasets", reason="datasets (hub loading) is not installed")

    im = Image.new("RGB", (8, 8), (0, 255, 0))
    fake = {
        "testdev_balanced_instructions": datasets.Dataset.from_list(
            [{"id": f"q{i}", "imageId": f"n{i % 2}", "question": "Q?", "answer": "yes"} for i in range(5)]),
        "testdev_balanced_images": datasets.Dataset.from_list([{"id": "n0", "image": im}, {"id": "n1", "image": im}]),
    }
    calls = []

    def fake_load(path, name, split, cache_dir):
        calls.append((path, name, split))
        return fake[name]

    monkeypatch.setattr(sources, "_load_hub_dataset", fake_load)
    monkeypatch.setattr(sources, "hub_reachable", lambda timeout=3.0: None)  # the probe of the network: skipped
    rows, info = load_docs(get_task("gqa"), "hub", limit=3)
    assert len(rows) == 3 and info.source == "hub:lmms-lab-encoder/GQA:testdev"
    assert load_image(rows[2]["image"]).getpixel((0, 0)) == (0, 255, 0)
    assert calls[0] == ("lmms-lab-encoder/GQA", "testdev_balanced_instructions", "testdev")


def test_image_loader_errors(tmp_path):
    (tmp_path / "bad.jpg").write_bytes(b"nope")
    with pytest.raises(ImageLoadError, match="cannot decode"):
        load_image(tmp_path / "bad.jpg")
    with pytest.raises(ImageLoadError, match="no image"):
        load_image(None)
    assert load_image({"bytes": img(tmp_path / "ok.png").read_bytes()}).mode == "RGB"
    assert load_image(Image.new("L", (4, 4))).mode == "RGB"


def test_sample_data_is_marked_and_fingerprinted():
    rows, info = load_docs(get_task("pope"), "sample")
    assert info.is_sample and "NOT benchmark" in info.notes[0]
    _, info2 = load_docs(get_task("pope"), "sample")
    assert info.fingerprint == info2.fingerprint


def test_fingerprint_follows_content_not_location(tmp_path):
    import shutil

    a = tmp_path / "a"
    a.mkdir()
    (a / "coco_pope_random.json").write_text(json.dumps(
        {"question_id": 1, "image": "x.jpg", "text": "Is there a cat?", "label": "no"}) + "\n")
    b = tmp_path / "elsewhere" / "b"
    shutil.copytree(a, b)
    fa = load_docs(get_task("pope"), str(a))[1].fingerprint
    assert load_docs(get_task("pope"), str(b))[1].fingerprint == fa
    (b / "coco_pope_random.json").write_text((b / "coco_pope_random.json").read_text().replace("no", "yes"))
    assert load_docs(get_task("pope"), str(b))[1].fingerprint != fa
