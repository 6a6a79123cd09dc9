"""The ``minidl`` command: train, eval, models, resume, and its error messages."""
import contextlib
import hashlib
import io
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import types
from pathlib import Path

import numpy
import pytest
from cifar_files import make_cifar
from helpers import loopback_server

import minidl
from minidl import backend, recipes
from minidl.checkpoint import load_checkpoint
from minidl.cli import THREAD_VARIABLES, main
from minidl.data import DataLoader
from minidl.data.download import MD5, MIRRORS
from minidl.recipes import DEFAULTS
from minidl.train import Trainer, evaluate

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


def test_precise_bn_flag_reaches_the_trainer_and_a_resumed_run_keeps_it(tmp_path, monkeypatch,
                                                                        capsys):
    training = sys.modules["minidl.train"]
    original, calls = training.update_bn_stats, []

    def recording(model, loader, batches):
        calls.append(batches)
        return original(model, loader, batches=batches)

    monkeypatch.setattr(training, "update_bn_stats", recording)
    out = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "1", "--precise-bn", "2", "--out", str(out)]) == 0
    assert calls == [2]
    assert json.loads((out / "log.json").read_text())["config"]["precise_bn"] == 2
    capsys.readouterr()
    assert "--precise-bn 3 differs from the resumed run's 2" in error_of(
        capsys, ["train", "--resume", str(out), "--precise-bn", "3"])
    assert main(["train", "--resume", str(out), "--epochs", "2"]) == 0
    assert calls == [2, 2]


def test_adam_with_warm_up_and_step_schedule(tmp_path, capsys):
    assert train(tmp_path, "--optimizer", "adam", "--schedule", "step", "--warmup", "1") == 0
    log = json.loads((tmp_path / "log.json").read_text())
    assert log["config"]["lr"] == 1e-3                      # Adam's default rate
    # 2 steps per epoch, and the log keeps the rate of each epoch's last step: warm-up
    # from 1e-4 over epoch 1 (its second step at 1e-4 + (1e-3 - 1e-4) / 2); the 2 remaining
    # steps pass both milestones (1/2 and 3/4 of them), dividing the rate by 100
    assert [r["lr"] for r in log["history"]] == pytest.approx([5.5e-4, 1e-5])


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
    # the whole message of the data error, every line of it, on one line
    assert re.search(r"mnist: .* not found in .*empty.mnist; Download with MINIDL_DATA=.* "
                     r"minidl train --model min --dataset mnist --download; or in Python "
                     r"minidl\.data\.load\(.*\); or fetch by hand .* https?://\S+; .* and place "
                     r"them in .*empty.mnist", err)
    (tmp_path / "bad.npz").write_bytes(b"garbage")
    assert re.search(r"bad\.npz is not a readable minidl checkpoint",
                     error_of(capsys, ["eval", str(tmp_path / "bad.npz")]))
    assert "needs --model and --dataset" in error_of(capsys, ["train", "--model", "min"])
    assert "warmup must be in [0, 2), got 2" in error_of(
        capsys, ["train", *TINY, "--epochs", "2", "--warmup", "2", "--out", str(tmp_path / "w")])
    assert "unknown override" in error_of(capsys, ["train", *TINY, "--pieces", "3",
                                                   "--out", str(tmp_path / "p")])
    assert "val_split 0.001 of 64 training images leaves no validation images" in error_of(
        capsys, ["train", *TINY, "--val-split", "0.001", "--out", str(tmp_path / "v")])


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
    assert "--device cuda asks for cuda:0 but" in err


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


# ---------------------------------------------------------------------------- predict

DIGITS = Path(minidl.data.__file__).parent / "digits"


def test_predict_on_the_test_images_reproduces_the_accuracy_eval_reports(run, capsys):
    out = run[0]
    assert main(["eval", str(out)]) == 0                 # all 1,000 digits test images
    evaluated = capsys.readouterr().out.strip().splitlines()[-1]
    images, labels = (DIGITS / "test-images-idx3-ubyte.gz", DIGITS / "test-labels-idx1-ubyte.gz")
    assert main(["predict", str(out), str(images), "--labels", str(labels)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1001
    found = [re.fullmatch(rf"{re.escape(str(images))}\[(\d+)\]  class (\d)  probability "
                          rf"(0\.\d{{4}}|1\.0000)", line) for line in lines[:-1]]
    assert all(found) and [int(m[1]) for m in found] == list(range(1000))
    classes = numpy.array([int(m[2]) for m in found])
    truth = minidl.data.read_array(labels)
    accuracy = float(numpy.mean(classes == truth))
    model = minidl.load_run(out)
    x, y = recipes.load_data("digits", "test", preprocessing=model.preprocessing)
    assert accuracy == evaluate(model.network, DataLoader((x, y), 500))[1]
    assert evaluated == f"test accuracy: {100 * accuracy:.1f}%"
    assert lines[-1] == f"accuracy: {100 * accuracy:.1f}% (1,000 images)"


def test_predict_reads_npy_and_pictures_one_line_per_image(run, tmp_path, capsys):
    out = run[0]
    pixels = minidl.data.read_array(DIGITS / "test-images-idx3-ubyte.gz")[:3]
    numpy.save(tmp_path / "three.npy", pixels)                     # N x H x W uint8
    numpy.save(tmp_path / "one.npy", pixels[0].astype(numpy.float32) / 255)  # H x W in [0, 1]
    files = [tmp_path / "three.npy", tmp_path / "one.npy"]
    pil = pytest.importorskip("PIL.Image")
    pil.fromarray(pixels[0]).convert("RGB").save(tmp_path / "digit.png")   # grey on load
    files.append(tmp_path / "digit.png")
    assert main(["predict", str(out), *map(str, files)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    names = [line.split("  ")[0] for line in lines]
    assert names == [f"{files[0]}[{i}]" for i in range(3)] + [str(files[1]), str(files[2])]
    first = lines[0].split("  ", 1)[1]
    assert lines[3].endswith(first) and lines[4].endswith(first)   # the same image thrice


def test_predict_errors_are_one_line(run, tmp_path, capsys, monkeypatch):
    out = run[0]
    numpy.save(tmp_path / "big.npy", numpy.zeros((2, 32, 32), numpy.uint8))
    assert re.search(r"big\.npy: predict: images must be 28x28 or Nx28x28 .* got shape "
                     r"\(2, 1, 32, 32\)", error_of(capsys, ["predict", str(out),
                                                           str(tmp_path / "big.npy")]))
    numpy.save(tmp_path / "ints.npy", numpy.zeros((28, 28), numpy.int32))
    assert "must be uint8 pixels or floats in [0, 1], got dtype int32" in error_of(
        capsys, ["predict", str(out), str(tmp_path / "ints.npy")])
    numpy.save(tmp_path / "objects.npy", numpy.array([None]), allow_pickle=True)
    err = error_of(capsys, ["predict", str(out), str(tmp_path / "objects.npy")])
    assert "objects.npy is not a readable .npy file" in err and "allow_pickle" not in err
    monkeypatch.setitem(sys.modules, "PIL", None)          # Pillow not installed
    assert 'needs Pillow, which is not installed: pip install "minidl[image]"' in error_of(
        capsys, ["predict", str(out), str(tmp_path / "digit.png")])
    numpy.save(tmp_path / "two.npy", numpy.zeros((2, 28, 28), numpy.uint8))
    assert "holds 1,000 labels for 2 images" in error_of(
        capsys, ["predict", str(out), str(tmp_path / "two.npy"), "--labels",
                 str(DIGITS / "test-labels-idx1-ubyte.gz")])
    capsys.readouterr()


# ---------------------------------------------------------------------------- the parser

def parser_error(capsys, argv):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    return err


def test_parser_errors_say_what_was_expected_on_one_line(capsys):
    assert ("minidl train: error: argument --epochs: expected an integer, got '2.5' "
            "(see minidl train --help)") in parser_error(capsys, ["train", "--epochs", "2.5"])
    assert "argument --lr: expected a number, got 'fast'" in parser_error(
        capsys, ["train", "--lr", "fast"])
    assert "argument --val-split: must be in (0, 1), got 1.0" in parser_error(
        capsys, ["train", "--val-split", "1"])
    assert "argument --dropout: must be in [0, 1), got 1.5" in parser_error(
        capsys, ["train", "--dropout", "1.5"])
    # no abbreviations: --epoch is not taken for --epochs
    assert "unrecognized arguments: --epoch 3" in parser_error(
        capsys, ["train", *TINY, "--epoch", "3"])


def test_help_shows_the_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default per data set: digits 6, mnist 15, cifar10 100, cifar100 100, svhn 30)" in text
    assert "SGD momentum (default: 0.9)" in text and "(default: None)" not in text
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    assert "evaluation batch size (default: 500)" in " ".join(capsys.readouterr().out.split())


def test_device_errors_from_the_environment_are_one_line(capsys, monkeypatch):
    monkeypatch.setenv("MINIDL_DEVICE", "tpu")
    assert ("minidl: error: MINIDL_DEVICE=tpu: unknown device 'tpu': expected 'cpu', 'cuda' or "
            "'cuda:N'") in error_of(capsys, ["models"])
    backend.set_gpu_module(None)
    if not backend.gpu_available():
        monkeypatch.setenv("MINIDL_DEVICE", "cuda")
        assert "MINIDL_DEVICE=cuda asks for cuda:0 but" in error_of(capsys, ["models"])


def test_a_file_that_is_no_checkpoint_gets_no_pickle_advice(capsys):
    err = error_of(capsys, ["eval", str(Path(__file__).parents[1] / "README.md")])
    assert "README.md is not a readable minidl checkpoint" in err and "pickle" not in err


# ---------------------------------------------------------------------------- threads

def test_threads_uses_threadpoolctl_when_installed(monkeypatch, capsys):
    limits = []
    monkeypatch.setitem(sys.modules, "threadpoolctl",
                        types.SimpleNamespace(threadpool_limits=limits.append))
    error_of(capsys, ["eval", "missing.npz", "--threads", "3"])
    assert limits == [3]


def test_threads_without_threadpoolctl_sets_the_environment(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)
    for name in THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    exec_calls = []
    monkeypatch.setattr(os, "execv", lambda *call: exec_calls.append(call))
    monkeypatch.setattr(sys, "argv", ["minidl", "eval", "missing.npz", "--threads", "2"])
    main()                                      # the real command line: starts itself again
    assert exec_calls == [(sys.executable, [sys.executable, "-m", "minidl", "eval",
                                            "missing.npz", "--threads", "2"])]
    assert all(os.environ[name] == "2" for name in THREAD_VARIABLES)
    capsys.readouterr()
    for name in THREAD_VARIABLES:
        monkeypatch.delenv(name)
    main(["eval", "missing.npz", "--threads", "2"])     # called from Python: says what it did
    assert "NumPy was loaded before" in capsys.readouterr().err and len(exec_calls) == 1


def test_threads_restarts_the_command_once(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1]))
    for name in THREAD_VARIABLES:
        env.pop(name, None)
    result = subprocess.run([sys.executable, "-m", "minidl", "eval", "--threads", "1",
                             str(tmp_path / "x.npz")], capture_output=True, text=True, env=env,
                            timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"minidl: error: checkpoint {tmp_path / 'x.npz'} does not exist"]


def test_a_busy_machine_gets_a_hint(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(os, "getloadavg", lambda: (64.0, 64.0, 64.0))
    assert train(tmp_path / "busy") == 0
    assert re.search(r"the machine is busy \(load average 64\.0 on \d+ CPU cores\)",
                     capsys.readouterr().err)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert train(tmp_path / "idle") == 0
    assert "busy" not in capsys.readouterr().err


# ---------------------------------------------------------------------------- runs

def test_val_split_validates_every_epoch_keeps_the_best_and_tests_at_the_end(tmp_path, capsys):
    assert train(tmp_path, "--val-split", "0.25", "--epochs", "3") == 0
    lines = capsys.readouterr().out.strip().splitlines()
    history = json.loads((tmp_path / "log.json").read_text())["history"]
    assert all(r["val_accuracy"] is not None for r in history)
    assert [r["test_accuracy"] is None for r in history] == [True, True, False]
    best = max(history, key=lambda r: r["val_accuracy"])
    assert load_checkpoint(tmp_path / "best.npz")["epoch"] == best["epoch"]
    assert lines[-2] == (f"best validation accuracy: {100 * best['val_accuracy']:.1f}% at epoch "
                         f"{best['epoch']} ({tmp_path / 'best.npz'})")
    assert lines[-1] == f"test accuracy: {100 * history[-1]['test_accuracy']:.1f}%"
    assert "val acc" in lines[-3]
    # a quarter of each class of the 64 images held out, the rest trained on in 2 batches
    _, labels = recipes.load_data("digits", "train", limit=64)
    kept = 64 - sum(round(0.25 * n) for n in numpy.bincount(labels))
    assert f"({kept} training images)" in lines[0] and history[-1]["global_step"] == 6
    assert main(["eval", str(tmp_path / "best.npz"), "--limit", "64"]) == 0


def test_resume_with_more_epochs_extends_a_finished_run(run, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(run[0], out)
    assert "finished its 2 epochs; extend the run with a larger --epochs" in error_of(
        capsys, ["train", "--resume", str(out)])
    assert "--epochs 1 is fewer than the resumed run's 2" in error_of(
        capsys, ["train", "--resume", str(out), "--epochs", "1"])
    assert main(["train", "--resume", str(out), "--epochs", "3"]) == 0
    assert "resuming" in capsys.readouterr().out
    log = json.loads((out / "log.json").read_text())
    assert log["config"]["epochs"] == 3 and len(log["history"]) == 3
    # the 3-epoch cosine schedule (6 steps) from step 4 on: the last step at step 5
    lr = DEFAULTS["digits"]["lr"] * (1 + math.cos(math.pi * 5 / 6)) / 2
    assert log["history"][2]["lr"] == pytest.approx(lr)
    assert log["history"][:2] == json.loads((run[0] / "log.json").read_text())["history"]
