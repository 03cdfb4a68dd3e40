"""The profiler end to end on the CPU with tiny presets: rows, files, plots and a scorecard-readable profile."""

import json

import pytest

from qmamba_eval.profiler import profile
from qmamba_eval.profiler.report import profile_section


@pytest.fixture(scope="module")
def tiny_profile(tmp_path_factory):
    out = tmp_path_factory.mktemp("profile")
    res = profile(out, device="cpu", systems=["reference", "qmamba", "cobra"], n_tokens=[16, 36], batches=[1],
                  query_counts=[4], repeats=1, warmup=0, long=False, log=lambda *a: None)
    return out, res


@pytest.mark.slow
def test_profile_writes_rows_files_and_plots(tiny_profile):
    out, res = tiny_profile
    df = res["frame"]
    assert set(df.system) == {"reference", "qmamba", "cobra", "qmamba-q4"}
    assert (df.status == "ok").all()
    ok = df.set_index(["system", "n_tokens"])
    # Q-Mamba hands the LLM its query count whatever N is; Cobra hands it every image token
    from qmamba_eval.models import PRESETS

    queries = PRESETS["tiny-qmamba"].projector_kwargs["num_queries"]  # 36
    assert ok.loc[("qmamba", 16), "visual_tokens_to_llm"] == ok.loc[("qmamba", 36), "visual_tokens_to_llm"] == queries
    assert ok.loc[("cobra", 16), "visual_tokens_to_llm"] == 16 and ok.loc[("cobra", 36), "visual_tokens_to_llm"] == 36
    assert ok.loc[("qmamba-q4", 36), "visual_tokens_to_llm"] == 4
    for col in ("vision_ms", "projector_ms", "prefill_ms", "ttft_ms", "decode_ms_per_token", "e2e_short_ms"):
        assert (df[col] > 0).all(), col
    for name in ("profile.csv", "profile.json", "report.md", "latency_vs_tokens.png", "throughput.png",
                 "qmamba_queries.png"):
        assert (out / name).stat().st_size > 0, name


@pytest.mark.slow
def test_profile_json_has_a_scorecard_section_the_scorecard_reads(tiny_profile, tmp_path):
    from qmamba_eval.scorecard import compare, verdict

    out, _ = tiny_profile
    doc = json.loads((out / "profile.json").read_text())
    prof = doc["profile"]
    assert prof["reference"] == "reference/N36/B1/ttft_ms" and prof["reference"] in prof["figures"]
    f = prof["figures"]["qmamba/N16/B1/samples_per_s"]
    assert f["better"] == "higher" and f["unit"] == "samples/s" and f["value"] > 0
    assert doc["environment"]["versions"]["torch"] and doc["floors"] == {"bf16_tflops": None, "copy_gbps": None}
    rows = compare(doc, doc)
    assert rows and all(r.status == "pass" for r in rows) and all(r.metric.startswith("profile/") for r in rows)
    assert verdict(rows, fail_on_missing=True)
    slower = json.loads(json.dumps(doc))
    slower["profile"]["figures"]["qmamba/N16/B1/ttft_ms"]["value"] *= 3  # 3x slower against the same reference
    assert {r.status for r in compare(doc, slower) if r.metric == "profile/qmamba/N16/B1/ttft_ms"} == {"regressed"}


def test_oom_point_is_recorded_and_the_sweep_goes_on():
    import pandas as pd

    from qmamba_eval.profiler import sweep

    class Boom:
        name, kind, specs = "boom", "project", []

        def prepare(self, n, b):
            raise RuntimeError("CUDA out of memory. Tried to allocate 9 GiB")

    row = sweep.point(Boom(), 64, 8, "cpu", {})
    assert row["status"] == "oom" and "out of memory" in row["error"]
    sec = profile_section(pd.DataFrame([row]))
    assert sec == {"reference": None, "figures": {}}


def test_time_stages_times_each_stage_and_the_chain_in_the_same_runs():
    import time

    from qmamba_eval.profiler.timing import time_stages

    seen = []
    stages = [lambda: time.sleep(0.02) or 1, lambda x: time.sleep(0.04) or seen.append(x) or x + 1,
              lambda x: seen.append(x) or x]
    (a, b, c), total, spreads, total_iqr = time_stages(stages, "cpu", warmup=1, repeats=3)
    assert seen == [1, 2] * 4  # each stage got the previous one's output, in 1 + 3 runs
    assert 15 < a < 35 and 35 < b < 70 and c < 5 and abs(total - (a + b + c)) < 5
    assert len(spreads) == 3 and all(0 <= s < 20 for s in spreads) and 0 <= total_iqr < 20


def test_a_point_where_more_tokens_cost_less_is_flagged():
    import pandas as pd

    from qmamba_eval.profiler.report import flag_nonphysical

    rows = [{"system": "cobra", "batch": 1, "status": "ok", "llm_tokens": n, "prefill_ms": ms, "prefill_iqr_ms": q}
            for n, ms, q in ((100, 10.0, 0.5), (400, 40.0, 1.0), (800, 30.0, 1.0), (1600, 79.5, 2.0))]
    rows.append({"system": "qmamba", "batch": 1, "status": "ok", "llm_tokens": 100, "prefill_ms": 9.0,
                 "prefill_iqr_ms": 0.1})
    df = flag_nonphysical(pd.DataFrame(rows))
    assert df.nonphysical.tolist() == [False, False, True, False, False]  # 800 tokens in 30 ms after 400 in 40
    within = flag_nonphysical(pd.DataFrame([dict(rows[1], prefill_ms=40.0), dict(rows[2], prefill_ms=39.5)]))
    assert not within.nonphysical.any()  # inside the spread: not flagged
