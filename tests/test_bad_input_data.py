"""Bad input, part 2: row types, data files, option values and exit codes, model files -- each a one-line error
(exit 2) naming the file, row, field or option."""

import json
import os
from pathlib import Path

import pytest
from PIL import Image

from qmamba_eval.cli import main

from .helpers import _image, cli, err, rows_for, run, write_data


# -- row types --------------------------------------------------------------------------------------------------


def _set(i, col, value):
    def mutate(rows):
        rows[i][col] = value
        return rows

    return mutate


def _drop_later(col):
    def mutate(rows):
        for r in rows[5:]:
            r.pop(col)
        return rows

    return mutate


def _empty_answers(rows):
    rows[3]["answers"] = []
    rows[6]["answers"] = None
    return rows


@pytest.mark.parametrize("task, mutate, expected", [
    ("vqav2", _set(2, "answers", "red"), "row 3 (question 12): column 'answers' is str 'red'; expected a list"),
    ("textvqa", _set(1, "answers", "stop"), "row 2 (question 21): column 'answers' is str 'stop'"),
    ("gqa", _set(4, "answer", None), "row 5 (question g4): column 'answer' is null; expected text"),
    ("textvqa", _set(0, "ocr_tokens", "STOP"), "row 1 (question 20): column 'ocr_tokens' is str 'STOP'"),
    ("pope", _set(3, "category", None), "row 4 (question 103): column 'category' is null"),
    ("pope", _set(2, "answer", "maybe"), "row 3 (question 102): column 'answer' is 'maybe'; expected one of yes, no"),
    ("vqav2", _empty_answers, "row 4 (question 13): column 'answers' is empty in this row but set in 6 of 8"),
    ("gqa", _drop_later("answer"), "row 6 (question g5): column 'answer' is missing"),
    ("mme", _set(1, "answer", 1), "row 2 (question existence/im1.png): column 'answer' is int 1"),
    ("vqav2", _set(0, "question_id", True), "row 1 (question True): column 'question_id' is bool True"),
])
def test_row_types_are_checked_with_file_row_and_column(tmp_path, capsys, task, mutate, expected):
    path = write_data(tmp_path / "d", task, mutate(rows_for(task)))
    assert cli(tmp_path, "--tasks", task, "--data", str(path)) == 2
    e = err(capsys)
    assert e.startswith(f"error: {path}: ") and expected in e


def test_test_split_without_answers_is_still_fine(tmp_path):
    rows = rows_for("vqav2")
    for r in rows:
        r.pop("answers")
    _, res = run(tmp_path, ["vqav2"], data=str(write_data(tmp_path / "d", "vqav2", rows)))
    assert res["tasks"]["vqav2"]["metrics"]["unscored"] == 8


def test_16bit_grayscale_png_decodes_to_its_grey_levels(tmp_path):
    import numpy as np

    from qmamba_eval.readers.images import load_image

    ramp = (np.arange(32 * 32).reshape(32, 32) * 64).astype(np.uint16)  # 0 .. 65472
    Image.fromarray(ramp).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    rgb = np.asarray(load_image(tmp_path / "g16.png"))
    assert rgb.shape == (32, 32, 3)
    assert abs(rgb[..., 0].astype(float).mean() - ramp.mean() / 257) < 1.0  # not all white
    assert rgb[0, 0, 0] == 0 and rgb[-1, -1, 0] >= 250


# -- data files -------------------------------------------------------------------------------------------------


def test_data_files_errors_name_file_and_line(tmp_path, capsys):
    p = write_data(tmp_path / "d", "gqa", rows_for("gqa"))
    text = p.read_text().splitlines(keepends=True)
    p.write_text("".join(text[:2]) + "[1, 2]\n" + "".join(text[2:]))
    assert cli(tmp_path, "--tasks", "gqa", "--data", str(p)) == 2
    assert f"{p}:3: expected a JSON object, found list" in err(capsys)
    p.write_bytes("".join(text[:2]).encode() + b'{"id": "\xe9t\xe9"}\n')
    assert cli(tmp_path, "--tasks", "gqa", "--data", str(p)) == 2
    assert f"{p}:3: not UTF-8" in err(capsys)


def test_zero_row_parquet_is_an_error(tmp_path, capsys):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    table = pa.table({"id": pa.array([], pa.string()), "question": pa.array([], pa.string()),
                      "answer": pa.array([], pa.string()), "image": pa.array([], pa.string())})
    pq.write_table(table, tmp_path / "empty.parquet")
    assert cli(tmp_path, "--tasks", "gqa", "--data", str(tmp_path / "empty.parquet")) == 2
    e = err(capsys)
    assert "empty.parquet" in e and "no rows" in e


def test_official_layouts_name_the_bad_file(tmp_path, capsys):
    gqa = tmp_path / "gqa"
    gqa.mkdir()
    (gqa / "testdev_balanced_questions.json").write_text(json.dumps([{"imageId": "x", "question": "q"}]))
    assert cli(tmp_path, "--tasks", "gqa", "--data", str(gqa)) == 2
    assert f"{gqa / 'testdev_balanced_questions.json'}: expected GQA's" in err(capsys)  # the file named
    (gqa / "testdev_balanced_questions.json").write_text(json.dumps({"q1": {"imageId": "x", "question": "q"}}))
    assert cli(tmp_path, "--tasks", "gqa", "--data", str(gqa)) == 2
    e = err(capsys)
    assert "testdev_balanced_questions.json: question 1 (id q1) lacks field(s) ['answer']" in e
    mme = tmp_path / "mme" / "existence"
    mme.mkdir(parents=True)
    _image(mme / "a.png", 1)
    (mme / "a.txt").write_text("Is there a thing? Please answer yes or no.\tYes\nIs there no tab here? No\n")
    assert cli(tmp_path, "--tasks", "mme", "--data", str(tmp_path / "mme")) == 2
    assert f"{mme / 'a.txt'}:2: expected" in err(capsys)


# -- exit codes and option values -------------------------------------------------------------------------------


def test_option_values_are_checked(tmp_path, capsys):
    g = str(write_data(tmp_path / "d", "gqa", rows_for("gqa", 4)))
    for flag, value in (("--max-new-tokens", "0"), ("--limit", "-1"), ("--limit", "0"), ("--batch-size", "0")):
        with pytest.raises(SystemExit) as e:
            cli(tmp_path, "--tasks", "gqa", "--data", g, flag, value)
        assert e.value.code == 2
    assert "must be >= 1" in capsys.readouterr().err
    for kw in ({"max_new_tokens": 0}, {"limit": -1}, {"batch_size": 0}):
        with pytest.raises(ValueError, match="must be a whole number >= 1"):
            run(tmp_path, ["gqa"], data=g, **kw)
    assert cli(tmp_path, "--tasks", "gqa", "--data", g, "--prompt", "gqx=bare") == 2
    assert "--prompt gqx=bare: 'gqx' is not among --tasks (gqa). Did you mean 'gqa'?" in err(capsys)
    assert cli(tmp_path, "--tasks", " , ", "--data", g) == 2
    assert "names no task" in err(capsys)


def test_output_dir_problems_exit_2(tmp_path, capsys):
    g = str(write_data(tmp_path / "d", "gqa", rows_for("gqa", 4)))
    (tmp_path / "afile").write_text("x")
    assert main(["--tasks", "gqa", "--data", g, "--output-dir", str(tmp_path / "afile"), "--no-progress"]) == 2
    assert "afile: a file, not a folder" in err(capsys)
    if os.geteuid() == 0:
        pytest.skip("root can write anywhere")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        assert main(["--tasks", "gqa", "--data", g, "--output-dir", str(ro), "--no-progress"]) == 2
        assert "cannot create the run folder" in err(capsys)
    finally:
        ro.chmod(0o700)


def test_scorecard_bad_documents_exit_2_naming_the_field(tmp_path, capsys):
    base = Path(__file__).resolve().parents[1] / "results" / "baselines" / "sample_tiny-qmamba.json"
    doc = json.loads(base.read_text())
    name = sorted(doc["tasks"])[0]
    metric = sorted(doc["tasks"][name]["metrics"])[0]
    for where, value, expected in ((("tasks", name, "metrics", metric), None, f"metrics[{metric!r}] is null"),
                                   (("tasks", name, "data"), "x", f"tasks.{name}.data is str"),
                                   (("profile",), [1], "'profile' is list"),
                                   (("model",), 5, "'model' is int")):
        bad = json.loads(base.read_text())
        node = bad
        for k in where[:-1]:
            node = node[k]
        node[where[-1]] = value
        p = tmp_path / "bad.json"
        p.write_text(json.dumps(bad))
        for args in (["--baseline", str(base), "--current", str(p)], ["--baseline", str(p), "--current", str(base)]):
            assert main(["scorecard", *args]) == 2
            e = err(capsys)  # the documented one-line error on stderr
            assert e.startswith("error: ") and f"{p}: " in e and expected in e


def test_an_internal_error_is_never_exit_1(tmp_path, monkeypatch, capsys):
    from qmamba_eval import scorecard

    base = str(Path(__file__).resolve().parents[1] / "results" / "baselines" / "sample_tiny-qmamba.json")

    def boom(*a, **k):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(scorecard, "verdict", boom)
    assert main(["scorecard", "--baseline", base, "--current", base]) == 3
    assert "internal error" in capsys.readouterr().err


# -- models -----------------------------------------------------------------------------------------------------


def test_bad_model_files_exit_2_naming_them(tmp_path, capsys):
    import torch

    g = str(write_data(tmp_path / "d", "gqa", rows_for("gqa", 2)))
    (tmp_path / "garbage.json").write_text("not a tokenizer")
    assert cli(tmp_path, "--tasks", "gqa", "--data", g, "--tokenizer", str(tmp_path / "garbage.json")) == 2
    assert "--tokenizer" in err(capsys)
    (tmp_path / "rand.safetensors").write_bytes(os.urandom(4096))
    assert cli(tmp_path, "--tasks", "gqa", "--data", g, "--checkpoint", str(tmp_path / "rand.safetensors")) == 2
    assert "rand.safetensors" in err(capsys)
    from qmamba_eval.models import build_model
    from qmamba_eval.models.checkpoints import save_model

    ck = tmp_path / "ck"
    save_model(build_model("tiny-qmamba"), ck)
    cfg = json.loads((ck / "config.json").read_text())
    cfg["bogus_key"] = 1
    (ck / "config.json").write_text(json.dumps(cfg))
    assert cli(tmp_path, "--tasks", "gqa", "--data", g, "--model", str(ck)) == 2
    assert "bogus_key" in err(capsys)
    if not torch.cuda.is_available():
        assert cli(tmp_path, "--tasks", "gqa", "--data", g, "--device", "cuda") == 2
        assert "CUDA is not available" in err(capsys)


def test_markdown_scorecard_escapes_names_and_digests(tmp_path):
    from qmamba_eval.report.scorecard import to_markdown
    from qmamba_eval.scorecard import compare, verdict

    doc = {"tasks": {"x|y *bold* <b>": {"metrics": {"acc|uracy": 50.0}, "answers_digest": "ab|`cd`",
                                        "data": {"fingerprint": "f|p_1"}, "n_samples": 3, "version": "1|0"}}}
    rows = compare(doc, doc)
    md = to_markdown(rows, doc, doc, verdict(rows, False), ["a|b"])
    import re

    widths = [len(re.split(r"(?<!\\)\|", line)) - 2 for line in md.splitlines() if line.startswith("|")]
    assert widths and set(widths) == {4, 6}  # no cell broke out of its column
    assert "| x\\|y \\*bold\\* \\<b\\> | 3 → 3 | f\\|p\\_1 | 1\\|0 |" in md  # the task table
    assert "`x\\|y *bold* <b>/acc\\|uracy`" in md  # inside a code span: literal


def test_samples_file_that_cannot_be_written_exits_2(tmp_path, capsys):
    g = str(write_data(tmp_path / "d", "gqa", rows_for("gqa", 2)))
    (tmp_path / "out" / "s" / "samples_gqa.jsonl").mkdir(parents=True)  # a folder where the file goes
    assert cli(tmp_path, "--tasks", "gqa", "--data", g, "--run-name", "s") == 2
    assert "samples_gqa.jsonl" in err(capsys)


def test_weights_digest_content_or_edges_for_huge_files(tmp_path, monkeypatch):
    from qmamba_eval.readers import files

    f = tmp_path / "w.bin"
    f.write_bytes(b"a" * 100)
    small = files.weights_digest(f)
    f.write_bytes(b"a" * 99 + b"b")
    assert files.weights_digest(f) != small  # whole content hashed
    assert files.weights_digest(tmp_path) is not None and files.weights_digest("tiny-qmamba") is None
    monkeypatch.setattr(files, "FULL_HASH_MAX", 50)
    monkeypatch.setattr(files, "EDGE_BYTES", 10)
    huge = files.weights_digest(f)
    os.utime(f, ns=(1, 1))
    touched = files.weights_digest(f)
    assert touched != huge  # mtime is part of it over the limit
    f.write_bytes(b"a" * 98 + b"cb")
    os.utime(f, ns=(1, 1))
    assert files.weights_digest(f) != touched  # and the last bytes


def test_llava_answers_covering_part_of_the_references_say_so(tmp_path):
    from qmamba_eval.rescore import rescore

    refs = write_data(tmp_path / "d", "gqa", rows_for("gqa"))
    p = tmp_path / "answers.jsonl"
    p.write_text("".join(json.dumps({"question_id": f"g{i}", "prompt": "q", "text": "red"}) + "\n" for i in range(3)))
    with pytest.warns(UserWarning, match="cover 3 of the 8 questions"):
        res = rescore("gqa", p, refs)
    assert res["n_samples"] == 3 and any("cover 3 of the 8" in n for n in res["notes"])


def test_parquet_rows_are_type_checked_too(tmp_path, capsys):
    pytest.importorskip("datasets", reason="datasets (parquet loading) is not installed")
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    rows = rows_for("textvqa", 4)
    write_data(tmp_path / "d", "textvqa", rows)  # the images
    table = pa.table({"question_id": [str(r["question_id"]) for r in rows], "question": [r["question"] for r in rows],
                      "answers": ["stop"] * 4, "ocr_tokens": [["STOP"]] * 4,
                      "image": [str(tmp_path / "d" / r["image"]) for r in rows]})
    pq.write_table(table, tmp_path / "d" / "tv.parquet")
    assert cli(tmp_path, "--tasks", "textvqa", "--data", str(tmp_path / "d" / "tv.parquet")) == 2
    assert "row 1 (question 20): column 'answers' is str 'stop'" in err(capsys)
