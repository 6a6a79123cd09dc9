"""benchmarks/train_step.py and ab_layers.py: the matrix products counted and the tables printed."""
import importlib.util
import pathlib
import re
import subprocess
import sys

import numpy
import pytest

from minidl import nn

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "train_step.py"


@pytest.fixture
def train_step(monkeypatch):
    """The script as a module; its import sets BLAS thread variables, undone afterwards."""
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(name, "1")
    monkeypatch.setattr(sys, "argv", ["train_step.py"])
    spec = importlib.util.spec_from_file_location("train_step", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gemm_shapes_of_convolutions_and_linear_layers(train_step):
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 1),
                          nn.GlobalAvgPool2d(), nn.Linear(4, 10))
    images = numpy.zeros((2, 3, 6, 6), numpy.float32)
    m = 2 * 6 * 6
    assert sorted(train_step.gemm_shapes(model, images)) == sorted([
        (8, 27, m), (27, m, 8),                 # the first layer: no dX for the images
        (4, 8, m), (8, m, 4), (8, 4, m),
        (2, 4, 10), (10, 2, 4), (2, 10, 4),
    ])


def _table(text, first_column):
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(first_column))
    header = re.split(r"\s{2,}", lines[start])
    rows = []
    for line in lines[start + 2:]:
        if not line.strip():
            break
        rows.append(dict(zip(header, re.split(r"\s{2,}", line))))
    return rows


def test_quick_run_prints_consistent_tables():
    pytest.importorskip("torch")        # the script leaves the torch columns out without it
    result = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--models", "nin-small"],
                            capture_output=True, text=True, timeout=300, check=True)
    out = result.stdout
    assert re.search(r"2 thread\(s\) \(minidl's elementwise passes: 2; OPENBLAS_THREAD_TIMEOUT="
                     r"\d+\); NumPy's sgemm peak \d+ GFLOP/s", out)
    (speed,) = _table(out, "model      batch  fwd ms")
    assert speed["model"] == "nin-small" and speed["batch"] == "4"
    ours = sum(float(speed[c]) for c in ("fwd ms", "bwd ms", "step ms"))
    theirs = sum(float(speed[c]) for c in ("torch fwd", "torch bwd", "torch step"))
    assert float(speed["minidl/torch"]) == pytest.approx(theirs / ours, rel=0.05, abs=0.01)
    assert float(speed["img/s"]) == pytest.approx(4e3 / ours, rel=0.05, abs=1)
    (memory,) = _table(out, "model      batch  GEMM ms")
    peak, torch_peak = float(memory["peak MiB"]), float(memory["torch peak MiB"])
    assert 0 <= float(memory["step MiB"]) < peak < torch_peak   # the child without torch is smaller
    assert float(memory["peak minidl/torch"]) == pytest.approx(peak / torch_peak, abs=0.01)


def test_ab_layers_times_both_checkouts_and_pytorch_in_one_table():
    # Against this very checkout, at batch 1: both columns run the same code.
    pytest.importorskip("torch")
    script = SCRIPT.parent / "ab_layers.py"
    result = subprocess.run([sys.executable, str(script), "--old", str(SCRIPT.parents[1]),
                             "--batch", "1", "--repeat", "1", "--threads", "1"],
                            capture_output=True, text=True, timeout=300, check=True)
    assert re.search(r"batch 1, 1 threads, median of 1; load average [\d.]+ [\d.]+ [\d.]+",
                     result.stdout)
    rows = _table(result.stdout, "layer (fwd+bwd)")
    assert [row["layer (fwd+bwd)"].split()[0] for row in rows] == ["conv"] * 4 + ["maxout",
                                                                                 "dropout"]
    for row in rows:
        old, new, torch = float(row["old ms"]), float(row["new ms"]), float(row["torch ms"])
        assert min(old, new, torch) > 0
        assert float(row["old/new"]) == pytest.approx(old / new, rel=0.1, abs=0.01)
        assert float(row["torch/new"]) == pytest.approx(torch / new, rel=0.1, abs=0.01)
