"""minidl.distributed on 2 processes under mpirun: equivalence with one process, and failure.

Each MPI launch costs about a second, so ``tests/mpi_workers/checks.py`` runs
every equivalence check in one launch and writes one JSON file per rank,
which the tests below read.  Skipped, with the reason, where mpi4py or
mpirun is missing (``pip install -e ".[dist]"`` installs both).
"""
import json
import os
import subprocess
import sys
import time

import numpy
import pytest

from minidl import recipes
from minidl.distributed import mpirun_command, worker_environment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKERS = os.path.join(ROOT, "tests", "mpi_workers")


def launch(script, *args, timeout=120):
    """Run ``script`` in 2 processes; the completed process (output captured)."""
    pytest.importorskip("mpi4py", reason="mpi4py is not installed (the dist extra)")
    try:
        command = mpirun_command(2, [sys.executable, os.path.join(WORKERS, script), *args])
    except RuntimeError as exc:
        pytest.skip(str(exc))
    env = worker_environment(2)
    env["PYTHONPATH"] = os.pathsep.join([ROOT, env.get("PYTHONPATH", "")])
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("mpi")
    done = launch("checks.py", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]


def test_two_processes_ran(ranks):
    assert [(r["rank"], r["size"]) for r in ranks] == [(0, 2), (1, 2)]


@pytest.mark.parametrize("case", ["sync_bn", "sync_bn_offset"])
def test_sync_batch_norm_on_2x8_is_batch_norm_on_16(ranks, case):
    for r in ranks:
        errors = r[case]
        assert errors.pop("batches_tracked") == 2
        assert max(errors.values()) < 1e-10, (r["rank"], errors)


def test_the_offset_batch_defeats_the_one_pass_variance(ranks):
    # what SyncBatchNorm avoids: sum(x^2)/m - mean^2 from all-reduced sums
    assert ranks[0]["naive_offset_error"] > 1e-10


def test_data_parallel_min_step_equals_one_process_and_ranks_agree(ranks):
    for r in ranks:
        step = r["data_parallel"]
        assert step["max_abs_error"] < 1e-10 and step["relative_norm_error"] < 1e-10, step
        assert step["largest_parameter"] > 0.1 and step["buckets"] > 1
    assert ranks[0]["data_parallel"]["digest"] == ranks[1]["data_parallel"]["digest"]


def test_sampler_shards_are_disjoint_cover_and_equal(ranks):
    for epoch in ("epoch0", "epoch1"):
        a, b = (r["sampler"][epoch] for r in ranks)
        assert len(a) == len(b) == 52                     # 103 padded to 104
        assert set(a) | set(b) == set(range(103))
        assert len(set(a) & set(b)) == 1                  # the one padding repeat
    assert ranks[0]["sampler"]["epoch0"] != ranks[0]["sampler"]["epoch1"]
    assert ranks[0]["sampler"]["batches"] == ranks[1]["sampler"]["batches"] == 6


def test_device_arrays_are_reduced_through_the_host(ranks):
    for r in ranks:
        assert r["device"] == {"transfers": {"to_device": 1, "to_host": 1},
                               "is_device_array": True, "values": [0.0, 3.0, 6.0, 9.0]}


def test_a_rank_that_raises_ends_the_run_with_its_message():
    started = time.perf_counter()
    done = launch("raises.py", timeout=60)
    seconds = time.perf_counter() - started
    assert done.returncode != 0
    assert "[rank 1] ValueError: rank 1 failed on purpose" in done.stderr
    assert "passed the barrier" not in done.stdout
    assert seconds < 30


def minidl_train(out, *flags):
    """``minidl train --nproc 2`` on 32 digits, global batch 16, no schedule; the process."""
    pytest.importorskip("mpi4py", reason="mpi4py is not installed (the dist extra)")
    command = [sys.executable, "-m", "minidl", "train", "--model", "min-small", "--dataset",
               "digits", "--limit", "32", "--batch-size", "16", "--schedule", "none",
               "--out", str(out), "--nproc", "2", *flags]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_nproc_trains_prints_once_and_resumes_bit_exactly(tmp_path):
    from minidl.checkpoint import load_checkpoint, save_checkpoint
    text = minidl_train(tmp_path / "straight", "--epochs", "2")
    assert text.count("training min-small") == 1 and text.count("epoch 2/2  train loss") == 1
    lr = recipes.CHOSEN_LR["min-small"]
    assert f"data-parallel on 2 processes: global batch 16 = 2 x 8, lr {lr:g}" in text
    cut = tmp_path / "cut"
    minidl_train(cut, "--epochs", "1")
    state = load_checkpoint(cut / "checkpoint.npz")          # make it the first half of 2 epochs
    state["config"]["epochs"] = 2
    save_checkpoint(cut / "checkpoint.npz", state)
    assert "resuming" in minidl_train(cut, "--resume", str(cut))
    a = load_checkpoint(tmp_path / "straight" / "checkpoint.npz")
    b = load_checkpoint(cut / "checkpoint.npz")
    assert a["epoch"] == b["epoch"] == 2
    assert all(numpy.array_equal(a["model"][k], b["model"][k]) for k in a["model"])
