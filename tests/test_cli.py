"""The ``minidl`` command: train, eval, models, resume, and its error messages."""
import contextlib
import hashlib
import io
import json
import re
import signal
import subprocess
import sys

import numpy
import pytest
from cifar_files import make_cifar
from helpers import loopback_server

from minidl import backend
from minidl.checkpoint import load_checkpoint
from minidl.cli import main
from minidl.data.download import MD5, MIRRORS
from minidl.recipes import DEFAULTS
from minidl.train import Trainer

TINY = ["--model", "nin-small", "--dataset", "digits", "--limit", "64", "--batch-size", "32",
        "--dropout", "0"]


def train(out, *extra):
    return main(["train", *TINY, "--epochs", "2", "--out", str(out), *extra])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One tiny training run shared by the tests that read its output."""
    out = tmp_path_factory.mktemp("run")
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        status = train(out)
    return out, status, stdout.getvalue()


def test_train_writes_logs_and_checkpoint_and_prints_the_final_accuracy(run):
    out, status, stdout = run
    assert status == 0
    lines = stdout.strip().splitlines()
    assert re.fullmatch(r"test accuracy: \d{1,3}\.\d%", lines[-1])
    assert re.match(r"epoch 2/2  train loss \d\.\d{4}  train acc .* test acc", lines[-2])
    rows = (out / "log.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[2].startswith("2,4,")
    log = json.loads((out / "log.json").read_text())
    assert log["config"]["model"] == "nin-small" and log["config"]["epochs"] == 2
    assert log["config"]["overrides"] == {"dropout": 0.0}
    final = 100 * log["history"][-1]["test_accuracy"]
    assert lines[-1] == f"test accuracy: {final:.1f}%"
    state = load_checkpoint(out / "checkpoint.npz")
    assert state["epoch"] == 2 and set(state["extra"]["preprocessing"]) == {"0"}


def test_eval_prints_the_same_test_accuracy_as_training(run, capsys):
    out, _, stdout = run
    assert main(["eval", str(out / "checkpoint.npz"), "--limit", "64"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"test loss: \d+\.\d{4}", lines[-2])
    assert lines[-1] == stdout.strip().splitlines()[-1]
    assert main(["eval", str(out), "--limit", "64"]) == 0        # a run folder works too
    assert capsys.readouterr().out.strip().splitlines()[-1] == lines[-1]


def test_models_lists_every_model_with_parameter_counts(capsys):
    assert main(["models"]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0].split()[:3] == ["model", "digits", "cifar10"]
    for name in ("nin", "min", "nin-bn", "maxout-nin", "min-small", "nin-small"):
        assert re.search(rf"^{name} +[\d,]+ +[\d,]+ ", text, re.M), name


def test_resume_after_ctrl_c_matches_an_uninterrupted_run(tmp_path, monkeypatch, capsys):
    assert train(tmp_path / "straight") == 0
    original = Trainer.write_logs

    def logs_then_ctrl_c(self):       # Ctrl-C at the end of epoch 1
        original(self)
        signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(Trainer, "write_logs", logs_then_ctrl_c)
    out = tmp_path / "cut"
    assert train(out) == 130
    err = capsys.readouterr().err
    assert re.search(r"training interrupted after epoch 1; checkpoint saved to .*checkpoint\.npz",
                     err)
    assert f"resume with: minidl train --resume {out}" in err
    monkeypatch.setattr(Trainer, "write_logs", original)
    monkeypatch.chdir(out)                      # a bare file name resumes into its own folder
    assert main(["train", "--resume", "checkpoint.npz"]) == 0
    assert "resuming" in capsys.readouterr().out
    a = load_checkpoint(tmp_path / "straight" / "checkpoint.npz")["model"]
    b = load_checkpoint(out / "checkpoint.npz")["model"]
    assert a.keys() == b.keys() and all(numpy.array_equal(a[k], b[k]) for k in a)


def test_adam_with_warm_up_and_step_schedule(tmp_path, capsys):
    assert train(tmp_path, "--optimizer", "adam", "--schedule", "step", "--warmup", "1") == 0
    log = json.loads((tmp_path / "log.json").read_text())
    assert log["config"]["lr"] == 1e-3                      # Adam's default rate
    # 2 steps per epoch: warm-up ends with epoch 1; the 2 remaining steps pass both
    # milestones (1/2 and 3/4 of them), dividing the rate by 100
    assert [r["lr"] for r in log["history"]] == pytest.approx([1e-3, 1e-5])


def error_of(capsys, argv, status=2):
    assert main(argv) == status
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    return err


def test_errors_are_one_line_with_status_2(tmp_path, capsys):
    assert "unknown model 'resnet'; available models: nin" in error_of(
        capsys, ["train", "--model", "resnet", "--dataset", "digits", "--out", str(tmp_path)])
    assert "unknown data set 'imagenet'" in error_of(
        capsys, ["train", "--model", "min", "--dataset", "imagenet"])
    err = error_of(capsys, ["train", "--model", "min", "--dataset", "mnist",
                            "--data-dir", str(tmp_path / "empty"), "--out", str(tmp_path / "o")])
    assert re.search(r"mnist: .* not found in .*\(pass --download to fetch it\)", err)
    (tmp_path / "bad.npz").write_bytes(b"garbage")
    assert re.search(r"bad\.npz is not a readable minidl checkpoint",
                     error_of(capsys, ["eval", str(tmp_path / "bad.npz")]))
    assert "needs --model and --dataset" in error_of(capsys, ["train", "--model", "min"])
    assert "warmup must be in [0, 2), got 2" in error_of(
        capsys, ["train", *TINY, "--epochs", "2", "--warmup", "2", "--out", str(tmp_path / "w")])
    assert "unknown override" in error_of(capsys, ["train", *TINY, "--pieces", "3",
                                                   "--out", str(tmp_path / "p")])


def test_resume_refuses_changed_settings_and_existing_runs(run, capsys):
    out = run[0]
    assert f"--lr 0.5 differs from the resumed run's {DEFAULTS['digits']['lr']}" in error_of(
        capsys, ["train", "--resume", str(out), "--lr", "0.5"])
    assert "already holds a run; continue it with --resume" in error_of(
        capsys, ["train", *TINY, "--out", str(out)])


def test_cuda_without_a_gpu_is_a_clear_error(capsys):
    backend.set_gpu_module(None)
    if backend.gpu_available():
        pytest.skip("a GPU is available here")
    err = error_of(capsys, ["eval", "x.npz", "--device", "cuda"])
    assert "--device cuda:0 was asked for but" in err


def test_python_dash_m_minidl_runs_the_command():
    result = subprocess.run([sys.executable, "-m", "minidl", "--version"], capture_output=True,
                            text=True, check=True)
    assert result.stdout.strip().startswith("minidl ")


def test_train_full_min_on_cifar10_with_download_from_a_loopback_server(tmp_path, monkeypatch,
                                                                        capsys):
    """`minidl train --model min --dataset cifar10 --download` fetches, verifies and trains."""
    archive, _ = make_cifar(tmp_path / "www", "cifar10", n=4)
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    monkeypatch.setitem(MD5, "cifar10",
                        {archive.name: hashlib.md5(archive.read_bytes()).hexdigest()})
    data_dir = tmp_path / "data"
    with loopback_server(tmp_path / "www") as url:
        monkeypatch.setitem(MIRRORS, "cifar10", [url])
        status = main(["train", "--model", "min", "--dataset", "cifar10", "--download",
                       "--data-dir", str(data_dir), "--limit", "8", "--batch-size", "4",
                       "--epochs", "1", "--warmup", "0", "--out", str(tmp_path / "run")])
    assert status == 0
    assert (data_dir / "cifar10" / archive.name).read_bytes() == archive.read_bytes()
    assert re.fullmatch(r"test accuracy: \d+\.\d%", capsys.readouterr().out.splitlines()[-1])
    assert (tmp_path / "run" / "checkpoint.npz").is_file()
