import copy
import json

import pytest

from qmamba_eval.scorecard import (ScorecardInputError, check_comparable, compare, direction,
                                   load_results)
from qmamba_eval.cli import main


def scorecard_cli(argv):
    return main(["scorecard", *argv])



def doc(**metrics):
    return {"tasks": {"pope": {"version": "1.0", "n_samples": 100, "prompt_variant": "default",
                               "options": {"pope_parser": "llava"}, "data": {"fingerprint": "abc"},
                               "answers_digest": "d1", "metrics": dict(metrics)}}}


BASE = doc(**{"mean/f1": 85.0, "mean/accuracy": 86.0, "mean/yes_ratio": 50.0, "random/n": 100})


def status(rows):
    return {r.metric: r.status for r in rows}


def write(tmp_path, name, d):
    p = tmp_path / name
    p.write_text(json.dumps(d))
    return str(p)


def test_directions_come_from_the_task_files():
    assert direction("pope/mean/f1") == "higher" and direction("mme/perception") == "higher"
    assert direction("pope/mean/yes_ratio") == "none" and direction("pope/random/n") == "same"
    # a results document records its task's table: it wins over the installed task file
    recorded = copy.deepcopy(BASE)
    recorded["tasks"]["pope"]["report"] = {"metrics": {"mean/f1": {"better": "lower"}}}
    assert direction("pope/mean/f1", recorded) == "lower" and direction("pope/mean/accuracy", recorded) == "higher"


def test_regression_improvement_and_tolerance():
    cur = copy.deepcopy(BASE)
    m = cur["tasks"]["pope"]["metrics"]
    m["mean/f1"] = 84.7  # within the default 0.5 points
    m["mean/accuracy"] = 84.0  # 2 points down
    m["mean/yes_ratio"] = 60.0  # neutral: changed, not regressed
    s = status(compare(BASE, cur))
    assert s == {"pope/mean/f1": "pass", "pope/mean/accuracy": "regressed", "pope/mean/yes_ratio": "changed",
                 "pope/random/n": "pass", "pope/answers": "pass"}
    m["mean/accuracy"] = 90.0
    assert status(compare(BASE, cur))["pope/mean/accuracy"] == "improved"
    # per-metric tolerance override
    m["mean/accuracy"] = 84.0
    s = status(compare(BASE, cur, {"score_abs": 0.5, "timing_rel": 0.1, "overrides": {"pope/*/accuracy": 3}}))
    assert s["pope/mean/accuracy"] == "pass"


def test_answers_digest_gate():
    cur = copy.deepcopy(BASE)
    cur["tasks"]["pope"]["answers_digest"] = "d2"
    assert status(compare(BASE, cur))["pope/answers"] == "changed"
    assert status(compare(BASE, cur, require_same_answers=True))["pope/answers"] == "regressed"


def test_missing_and_new_metrics():
    cur = copy.deepcopy(BASE)
    del cur["tasks"]["pope"]["metrics"]["mean/f1"]
    cur["tasks"]["pope"]["metrics"]["mean/precision"] = 80.0
    s = status(compare(BASE, cur))
    assert s["pope/mean/f1"] == "missing" and s["pope/mean/precision"] == "new"


def test_profile_ratios_against_in_run_reference():
    def prof(ref_ms, q_ms):
        return {"tasks": {}, "profile": {"reference": "qformer/prefill_ms", "figures": {
            "qformer/prefill_ms": {"value": ref_ms, "unit": "ms", "better": "lower"},
            "qmamba/prefill_ms": {"value": q_ms, "unit": "ms", "better": "lower"}}}}

    # a machine twice as slow: ratios unchanged -> pass
    assert status(compare(prof(10, 5), prof(20, 10)))["profile/qmamba/prefill_ms"] == "pass"
    # Q-Mamba got 30% slower relative to the reference -> regressed
    assert status(compare(prof(10, 5), prof(10, 6.5)))["profile/qmamba/prefill_ms"] == "regressed"
    assert status(compare(prof(10, 5), prof(10, 3)))["profile/qmamba/prefill_ms"] == "improved"


def test_mismatched_data_is_refused_unless_allowed():
    cur = copy.deepcopy(BASE)
    cur["tasks"]["pope"]["data"]["fingerprint"] = "zzz"
    cur["tasks"]["pope"]["version"] = "2.0"
    with pytest.raises(ScorecardInputError, match="data fingerprint differs.*task version differs"):
        check_comparable(BASE, cur, False)
    assert len(check_comparable(BASE, cur, True)) == 2


def test_malformed_files(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ScorecardInputError, match="not valid JSON"):
        load_results(tmp_path / "bad.json")
    (tmp_path / "odd.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(ScorecardInputError, match="not a results document"):
        load_results(tmp_path / "odd.json")
    (tmp_path / "nom.json").write_text(json.dumps({"tasks": {"pope": {"version": 1}}}))
    with pytest.raises(ScorecardInputError, match="no 'metrics'"):
        load_results(tmp_path / "nom.json")
    with pytest.raises(ScorecardInputError, match="no such file"):
        load_results(tmp_path / "nowhere")


def test_cli_exit_codes_and_outputs(tmp_path, capsys):
    b = write(tmp_path, "b.json", BASE)
    assert scorecard_cli(["--baseline", b, "--current", b]) == 0
    worse = copy.deepcopy(BASE)
    worse["tasks"]["pope"]["metrics"]["mean/f1"] = 70.0
    c = write(tmp_path, "c.json", worse)
    out = tmp_path / "o"
    out.mkdir()
    rc = scorecard_cli(["--baseline", b, "--current", c, "--json-out", str(out / "v.json"),
                        "--html-out", str(out / "s.html"), "--png-out", str(out / "s.png")])
    assert rc == 1
    md = capsys.readouterr().out
    assert "❌ regressed" in md and "`pope/mean/f1`" in md and "-15.00" in md
    v = json.loads((out / "v.json").read_text())
    assert not v["passed"] and v["counts"]["regressed"] == 1
    assert (out / "s.png").stat().st_size > 1000 and "regressed" in (out / "s.html").read_text()
    assert scorecard_cli(["--baseline", str(tmp_path / "missing.json"), "--current", c]) == 2
    missing = copy.deepcopy(BASE)
    del missing["tasks"]["pope"]["metrics"]["mean/f1"]
    m = write(tmp_path, "m.json", missing)
    assert scorecard_cli(["--baseline", b, "--current", m]) == 0
    assert scorecard_cli(["--baseline", b, "--current", m, "--fail-on-missing"]) == 1
    # --update-baseline writes the current results, keeping tolerances
    nb = tmp_path / "new_base.json"
    assert scorecard_cli(["--baseline", str(nb), "--current", c, "--update-baseline"]) == 0
    assert json.loads(nb.read_text())["tasks"]["pope"]["metrics"]["mean/f1"] == 70.0
    assert scorecard_cli(["--baseline", str(nb), "--current", c]) == 0


def test_committed_baseline_is_a_valid_document():
    from pathlib import Path

    p = Path(__file__).resolve().parents[1] / "results" / "baselines" / "sample_tiny-qmamba.json"
    d = load_results(p)
    assert set(d["tasks"]) == {"vqav2", "gqa", "textvqa", "pope", "mme"}
    assert all(t["data"]["is_sample"] for t in d["tasks"].values())
