"""torchrun on the CPU (gloo): two ranks give byte-identical merged samples and the same results as one process;
uneven shards; resume after a killed rank, with another world size."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qmamba_eval.distributed import World, merge_shards, shard_batches, shard_path
from qmamba_eval.results import append_samples, read_samples

ROOT = Path(__file__).resolve().parents[1]
TORCHRUN = shutil.which("torchrun")
needs_torchrun = pytest.mark.skipif(TORCHRUN is None, reason="torchrun not on PATH")
ARGS = ["--tasks", "gqa,pope", "--no-progress", "--no-plot", "--limit", "9", "--batch-size", "2"]


def run_eval(out: Path, nproc: int = 1, extra=(), wait=True):
    if nproc == 1 and wait:  # one process: this one (a subprocess would pay the imports again), one thread as
        import torch        # the ranks have (OMP_NUM_THREADS=1), so the arithmetic is theirs

        from qmamba_eval.cli import main

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            assert main([*ARGS, "--output-dir", str(out.parent), "--run-name", out.name, *extra]) == 0
        finally:
            torch.set_num_threads(threads)
        return None
    cmd = ([TORCHRUN, f"--nproc-per-node={nproc}", "--standalone"] if nproc > 1 else [sys.executable])
    cmd += [str(ROOT / "run_eval.py"), *ARGS, "--output-dir", str(out.parent), "--run-name", out.name, *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    if not wait:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return p


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    out = tmp_path_factory.mktemp("single") / "run"
    run_eval(out)
    return out


def same_run(a: Path, b: Path, world_b: int):
    for task in ("gqa", "pope"):
        assert (a / f"samples_{task}.jsonl").read_bytes() == (b / f"samples_{task}.jsonl").read_bytes()
    ra, rb = (json.loads((d / "results.json").read_text())["tasks"] for d in (a, b))
    for task in ("gqa", "pope"):
        assert ra[task]["metrics"] == rb[task]["metrics"]
        assert ra[task]["answers_digest"] == rb[task]["answers_digest"] and rb[task]["n_samples"] == 9
        assert rb[task]["world_size"] == world_b
    assert not list(b.glob("*.shard*"))  # merged and cleaned up


def test_shards_are_whole_batches_round_robin():
    todo = list(range(9))
    parts = [shard_batches(todo, 2, World(rank=r, size=2)) for r in range(2)]
    assert parts == [[0, 1, 4, 5, 8], [2, 3, 6, 7]]  # uneven: 5 + 4
    assert shard_batches(todo, 2, World()) == todo


def test_merge_keeps_first_row_per_key_and_question_order(tmp_path):
    path = tmp_path / "samples_x.jsonl"
    append_samples(path, [{"key": "c", "answer": "3"}])
    append_samples(shard_path(path, 1), [{"key": "b", "answer": "2"}, {"key": "c", "answer": "dup"}])
    append_samples(shard_path(path, 0), [{"key": "a", "answer": "1"}, {"key": "old", "answer": "x"}])
    assert len(merge_shards(path, ["a", "b", "c"])) == 4
    assert [(r["key"], r["answer"]) for r in read_samples(path)] == [("a", "1"), ("b", "2"), ("c", "3"),
                                                                     ("old", "x")]
    assert not list(tmp_path.glob("*.shard*"))


@needs_torchrun
def test_resume_after_a_crash_with_another_world_size(single, tmp_path):
    """What a killed 2-rank run leaves (rank 1 ahead, rank 0 torn mid-line) resumes in one process, and a
    half-done one-process run resumes on two ranks: the same files either way (the second half is also the check
    that two gloo ranks give byte-identical merged samples and the same results as one process)."""
    out = tmp_path / "crashed"
    out.mkdir()
    for task in ("gqa", "pope"):
        rows = read_samples(single / f"samples_{task}.jsonl")
        append_samples(shard_path(out / f"samples_{task}.jsonl", 1), rows[2:4] + rows[6:8])
        with open(shard_path(out / f"samples_{task}.jsonl", 0), "w") as f:
            f.write(json.dumps(rows[0]) + "\n" + json.dumps(rows[1])[:25])  # torn last line
    shutil.copy(single / "run.json", out / "run.json")
    run_eval(out)
    same_run(single, out, world_b=1)
    half = tmp_path / "half"
    half.mkdir()
    shutil.copy(single / "run.json", half / "run.json")
    for task in ("gqa", "pope"):
        append_samples(half / f"samples_{task}.jsonl", read_samples(single / f"samples_{task}.jsonl")[:3])
    run_eval(half, nproc=2)
    same_run(single, half, world_b=2)


def _worker_pids(parent: int) -> dict:
    """{RANK: pid} of the processes torchrun started."""
    out = {}
    for child in Path("/proc").glob("[0-9]*"):
        try:
            stat = (child / "stat").read_text().rsplit(")", 1)[1].split()
            env = (child / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat[1]) == parent:
            rank = next((e.split(b"=", 1)[1] for e in env if e.startswith(b"RANK=")), None)
            if rank is not None:
                out[int(rank)] = int(child.name)
    return out


@needs_torchrun
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc to find the ranks")
def test_sigkill_of_one_rank_loses_nothing(single, tmp_path):
    out = tmp_path / "killed"
    proc = run_eval(out, nproc=2, extra=["--batch-size", "1", "--limit", "9"], wait=False)
    shard = shard_path(out / "samples_pope.jsonl", 1)
    killed, deadline = False, time.time() + 300
    while proc.poll() is None and time.time() < deadline:
        ranks = _worker_pids(proc.pid)
        if 1 in ranks and shard.is_file() and shard.read_bytes().count(b"\n") >= 1:
            os.kill(ranks[1], signal.SIGKILL)
            killed = True
            break
        time.sleep(0.01)
    proc.communicate(timeout=300)
    if not killed:
        pytest.skip("the run finished before rank 1 could be killed")
    assert proc.returncode != 0
    run_eval(out, extra=["--batch-size", "1", "--limit", "9"])  # resumed by one process
    res = json.loads((out / "results.json").read_text())["tasks"]
    assert res["pope"]["n_resumed"] >= 1 and res["pope"]["n_samples"] == 9
    assert not list(out.glob("*.shard*"))


@needs_torchrun
def test_profile_spreads_systems_over_ranks_and_merges_one_report(tmp_path):
    out = tmp_path / "prof"
    cmd = [TORCHRUN, "--standalone", "--nproc-per-node=2", str(ROOT / "run_eval.py"), "profile", "--systems",
           "qmamba,cobra,qformer", "--tokens", "16", "--batches", "1", "--queries", "", "--repeats", "1", "--no-long",
           "--output-dir", str(out)]
    p = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"},
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    doc = json.loads((out / "profile.json").read_text())
    assert doc["world_size"] == 2 and len(doc["floors"]["per_rank"]) == 2
    assert sorted({r["system"] for r in doc["rows"]}) == ["cobra", "qformer", "qmamba"]  # every system, once
    assert len(doc["rows"]) == 3 and (out / "profile.csv").is_file()
