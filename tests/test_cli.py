"""The ``minidl`` command: train, eval, models, resume, and its error messages."""
import contextlib
import errno
import hashlib
import importlib.util
import io
import json
import math
import os
import re
import shlex
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
from minidl.checkpoint import load_checkpoint, save_checkpoint
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
    assert log["config"]["overrides"] == {"dropout": 0.0, "init": "kaiming"}
    assert log["config"]["lr"] == recipes.CHOSEN_LR["nin-small"] and "lr_sweep" not in log["config"]
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
    assert "--lr-sweep chooses the learning rate of a new run on one process; it cannot go " \
        "with --lr" in error_of(capsys, ["train", *TINY, "--lr", "0.1", "--lr-sweep", "0.1,0.01"])
    assert "--sweep-epochs needs --lr-sweep" in error_of(capsys, ["train", *TINY,
                                                                  "--sweep-epochs", "1"])


def test_resume_refuses_changed_settings_and_existing_runs(run, capsys):
    out = run[0]
    assert f"--lr 0.5 differs from the resumed run's {recipes.CHOSEN_LR['nin-small']}" in error_of(
        capsys, ["train", "--resume", str(out), "--lr", "0.5"])
    assert "already holds a run; continue it with --resume" in error_of(
        capsys, ["train", *TINY, "--out", str(out)])
    assert "--init orthogonal differs from the resumed run's 'kaiming'" in error_of(
        capsys, ["train", "--resume", str(out), "--init", "orthogonal"])


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
    assert "argument --lr-sweep: expected a number, got 'fast'" in parser_error(
        capsys, ["train", "--lr-sweep", "0.1,fast"])
    assert "argument --init: invalid choice: 'he'" in parser_error(capsys,
                                                                  ["train", "--init", "he"])
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

@pytest.fixture
def keep_threads():
    """--threads sets minidl's thread count for the whole process: put it back afterwards."""
    before = backend.get_num_threads()
    yield
    backend.set_num_threads(before)


def test_threads_uses_threadpoolctl_when_installed(monkeypatch, capsys, keep_threads):
    limits = []
    monkeypatch.setitem(sys.modules, "threadpoolctl",
                        types.SimpleNamespace(threadpool_limits=limits.append))
    error_of(capsys, ["eval", "missing.npz", "--threads", "3"])
    assert limits == [3] and backend.get_num_threads() == 3      # minidl's own passes too


def test_threads_without_threadpoolctl_sets_the_environment(monkeypatch, capsys, keep_threads):
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
    lr = recipes.CHOSEN_LR["nin-small"] * (1 + math.cos(math.pi * 5 / 6)) / 2
    assert log["history"][2]["lr"] == pytest.approx(lr)
    assert log["history"][:2] == json.loads((run[0] / "log.json").read_text())["history"]


def test_lr_sweep_chooses_on_validation_data_then_trains_and_records_it(tmp_path, capsys,
                                                                       loaded_splits):
    assert train(tmp_path, "--lr-sweep", "0.3,0.01", "--sweep-epochs", "1",
                 "--init", "orthogonal") == 0
    # two trials that read only the training split, then the run, which tests once
    assert loaded_splits == ["train", "train", "train", "test"]
    out = capsys.readouterr().out
    config = json.loads((tmp_path / "log.json").read_text())["config"]
    sweep = config["lr_sweep"]
    assert sweep["lrs"] == [0.3, 0.01] and sweep["epochs"] == 1
    assert sweep["val_split"] == recipes.SWEEP_VAL_SPLIT
    scores = [r["val_accuracy"] for r in sweep["results"]]
    assert config["lr"] == sweep["chosen"] == sweep["lrs"][scores.index(max(scores))]
    assert config["overrides"]["init"] == "orthogonal" and config["epochs"] == 2
    assert load_checkpoint(tmp_path / "checkpoint.npz")["config"]["lr_sweep"] == sweep
    assert f"chosen lr {config['lr']:g}" in out and "validating on 0.2 of the training" in out


def test_track_regions_writes_the_history_and_a_resumed_run_goes_on_with_it(tmp_path, capsys):
    assert train(tmp_path, "--track-regions", "16") == 0
    out = capsys.readouterr().out
    saved = json.loads((tmp_path / "regions.json").read_text())
    history = saved["history"]
    assert saved["images"] == 16 and saved["batch_stats"] is True
    assert [e["epoch"] for e in history] == [0, 1, 2]
    layers = [m for m in recipes.build_model(recipes.run_config("nin-small", "digits")).modules()
              if isinstance(m, minidl.nn.ReLU)]
    assert all(len(e["layers"]) == len(layers) for e in history)
    assert all(0 <= layer["degenerate_share"] <= 1 for e in history for layer in e["layers"])
    if importlib.util.find_spec("matplotlib") is not None:
        assert (tmp_path / "regions.png").stat().st_size > 5000
        assert f"region statistics per epoch: {tmp_path / 'regions.json'}" in out
    # the run's checkpoint holds the tracker: resuming without the flag keeps tracking
    assert main(["train", "--resume", str(tmp_path), "--epochs", "3", "--track-regions", "8"]) == 2
    assert "--track-regions 8 differs from the resumed run's 16 images" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path), "--epochs", "3"]) == 0
    resumed = json.loads((tmp_path / "regions.json").read_text())["history"]
    assert resumed[:3] == history and [e["epoch"] for e in resumed] == [0, 1, 2, 3]


def test_without_track_regions_no_region_file_is_written(run):
    assert not (run[0] / "regions.json").exists()
    assert "RegionTracker" not in load_checkpoint(run[0] / "checkpoint.npz")["callbacks"]


def test_preprocess_and_augment_are_run_flags_saved_and_kept_on_resume(tmp_path, capsys):
    make_cifar(tmp_path / "data" / "cifar10", "cifar10", n=4)
    out = tmp_path / "run"
    flags = ["--model", "nin-small", "--dataset", "cifar10", "--data-dir", str(tmp_path / "data"),
             "--limit", "16", "--batch-size", "16", "--warmup", "0"]
    assert main(["train", *flags, "--epochs", "1", "--preprocess", "per-image", "--augment",
                 "none", "--out", str(out)]) == 0
    trained = capsys.readouterr().out.strip().splitlines()[-1]
    config = json.loads((out / "log.json").read_text())["config"]
    assert (config["preprocess"], config["augment"]) == ("per-image", "none")
    assert main(["eval", str(out), "--data-dir", str(tmp_path / "data"), "--limit", "16"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == trained
    assert "--augment crop-flip differs from the resumed run's 'none'" in error_of(
        capsys, ["train", "--resume", str(out), "--epochs", "2", "--augment", "crop-flip"])
    assert "--preprocess gcn-zca differs from the resumed run's 'per-image'" in error_of(
        capsys, ["train", "--resume", str(out), "--epochs", "2", "--preprocess", "gcn-zca"])
    assert main(["train", "--resume", str(out), "--epochs", "2", "--augment", "none",
                 "--data-dir", str(tmp_path / "data")]) == 0
    capsys.readouterr()
    config = json.loads((out / "log.json").read_text())["config"]
    assert (config["preprocess"], config["augment"], config["epochs"]) == ("per-image", "none", 2)
    default = recipes.run_config("nin-small", "cifar10")
    assert (default["preprocess"], default["augment"]) == ("gcn-zca", "crop-flip")
    assert "augment crop-flip mirrors images, which changes what a digit means; for svhn use " \
           "crop or none" in error_of(capsys, ["train", "--model", "nin-small", "--dataset",
                                               "svhn", "--augment", "crop-flip"])
    assert "argument --preprocess: invalid choice: 'zca'" in parser_error(
        capsys, ["train", *flags, "--preprocess", "zca"])


# ---------------------------------------------------------------------------- reliability

def one_error_line(capsys, argv, status=2):
    """Run ``argv``; its stderr must be one ``minidl: error:`` line without a traceback."""
    assert main(argv) == status
    err = capsys.readouterr().err
    # what else may be there: a progress bar (redrawn with \r) and the busy-machine note
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip()
             and not line.startswith(("epoch ", "minidl: note: the machine is busy"))]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("minidl: error: "), err
    return lines[0]


def damaged_checkpoints(run_dir, folder):
    """name -> (a checkpoint file that is damaged or does not fit, what its error says)."""
    good = run_dir / "checkpoint.npz"
    data = good.read_bytes()
    state = load_checkpoint(good)
    files = {}

    def write(name, content, message):
        path = folder / name / "checkpoint.npz"
        path.parent.mkdir()
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            content(path)
        files[name] = (path, message)

    def changed(change):
        copy = {**state, "config": dict(state["config"]), "extra": dict(state["extra"])}
        change(copy)
        return lambda path: save_checkpoint(path, copy)

    write("empty", b"", "not a readable minidl checkpoint")
    write("text", b"not a checkpoint at all\n", "not a readable minidl checkpoint")
    write("truncated", data[:len(data) // 2], "not a readable minidl checkpoint")
    write("flipped", data[:600] + bytes(b ^ 0x10 for b in data[600:640]) + data[640:],
          "not a readable minidl checkpoint")
    write("npy", lambda path: numpy.save(open(path, "wb"), numpy.arange(3)),
          r"is a single \.npy array")
    write("header without state", lambda path: numpy.savez(path, __header__=numpy.frombuffer(
        b'{"format": "minidl-checkpoint", "version": 1}', numpy.uint8)), "no 'state' entry")
    write("deep header", lambda path: numpy.savez(path, __header__=numpy.frombuffer(
        b"[" * 50000 + b"]" * 50000, numpy.uint8)), "nested too deeply")
    write("not a run", lambda path: save_checkpoint(path, {"w": numpy.ones(2)}),
          "has no run config")
    write("no model", changed(lambda s: s.pop("model")), r"has no 'model' entry")
    write("another model", changed(lambda s: s["config"].update(model="min-small")),
          r"(its weights do not fit the model 'min-small' on digits .*|its model does not fit "
          r"this trainer): load_state_dict into MIN: missing key\(s\): 'block1\.1\.weight'"
          r"(, \S+){7} and \d+ more; unexpected")
    write("a reshaped layer", changed(lambda s: s.update(model={
        **s["model"], next(iter(s["model"])): numpy.zeros((1, 2, 3))})),
          r"(its weights do not fit the model 'nin-small'|its model does not fit this "
          r"trainer).*has shape \(1, 2, 3\) in the state dict, but the model expects")
    write("unknown model", changed(lambda s: s["config"].update(model="resnet")),
          r"its run config is not one this minidl can build: unknown model 'resnet'")
    write("wrong config type", changed(lambda s: s["config"].update(lr="fast")),
          r"its run config is not one this minidl can build: .*lr must be a real number")
    write("config not a dict", changed(lambda s: s.update(config=[1])), "has no run config")
    write("preprocessing of another data set", changed(lambda s: s["extra"].update(
        preprocessing={"0": {"mean": numpy.zeros(3), "std": numpy.ones(3)}})),
          r"its preprocessing does not fit digits")
    files["missing"] = (folder / "nowhere" / "checkpoint.npz", "does not exist")
    return files


@pytest.fixture(scope="module")
def damaged(run, tmp_path_factory):
    return damaged_checkpoints(run[0], tmp_path_factory.mktemp("damaged"))


DIGIT_IMAGES = str(DIGITS / "test-images-idx3-ubyte.gz")
COMMANDS_ON_A_CHECKPOINT = {
    "eval": lambda path: ["eval", str(path), "--limit", "10"],
    "diagnose": lambda path: ["diagnose", str(path), "--limit", "10", "--out",
                              str(path.parent / "diagnostics")],
    "predict": lambda path: ["predict", str(path), DIGIT_IMAGES],
    "train --resume": lambda path: ["train", "--resume", str(path)],
}
DAMAGE = ["empty", "text", "truncated", "flipped", "npy", "header without state", "deep header",
          "not a run", "no model", "another model", "a reshaped layer", "unknown model",
          "wrong config type", "config not a dict", "preprocessing of another data set",
          "missing"]


@pytest.mark.parametrize("command", COMMANDS_ON_A_CHECKPOINT)
@pytest.mark.parametrize("case", DAMAGE)
def test_a_damaged_or_mismatched_checkpoint_is_one_error_line_naming_it(damaged, capsys,
                                                                      command, case):
    path, message = damaged[case]
    err = one_error_line(capsys, COMMANDS_ON_A_CHECKPOINT[command](path))
    assert re.search(re.escape(str(path)) + ".*" + message, err), err


def test_resuming_from_a_checkpoint_with_a_bad_optimizer_part_is_one_line(run, tmp_path,
                                                                          capsys):
    state = load_checkpoint(run[0] / "checkpoint.npz")
    state["optimizer"]["param_groups"][0]["momentum"] = -1.0
    save_checkpoint(tmp_path / "checkpoint.npz", state)
    err = one_error_line(capsys, ["train", "--resume", str(tmp_path), "--epochs", "3"])
    assert re.search(re.escape(str(tmp_path / "checkpoint.npz")) + r": its optimizer does not "
                     r"fit this trainer: SGD: momentum must be >= 0", err)


def test_bad_inputs_are_one_error_line_each(run, tmp_path, capsys, monkeypatch):
    out = run[0]
    (tmp_path / "a-file").write_text("")
    numpy.save(tmp_path / "floats.npy", numpy.full(1000, 1.5))
    cases = [
        (["train", *TINY, "--out", str(tmp_path / "a-file" / "run")], r"a-file.*Not a directory"),
        (["eval", str(out), "--dataset", "imagenet"], r"unknown data set 'imagenet'"),
        (["eval", str(out), "--dataset", "cifar10"], r"cannot be evaluated on cifar10"),
        (["diagnose", str(out), "--split", "validation", "--out", str(tmp_path / "d")],
         r"digits has splits \('train', 'test'\), not 'validation'"),
        (["predict", str(out), str(tmp_path / "no-such.npy")], r"no-such\.npy"),
        (["predict", str(out), str(tmp_path / "a-file")], r"a-file"),
        (["predict", str(out), DIGIT_IMAGES, "--labels", str(tmp_path / "floats.npy")],
         r"floats\.npy holds float64 values; class labels are integers"),
        (["train", "--resume", str(tmp_path / "nothing-here")], r"does not exist"),
        (["train", *TINY, "--data-dir", str(tmp_path), "--dataset", "mnist", "--out",
          str(tmp_path / "m")], r"mnist: .* not found"),
    ]
    for argv, message in cases:
        err = one_error_line(capsys, argv)
        assert re.search(message, err), (argv, err)


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_a_diverging_run_is_one_error_line(tmp_path, capsys):
    err = one_error_line(capsys, ["train", *TINY, "--epochs", "2", "--lr", "1e6", "--out",
                                  str(tmp_path)])
    assert re.search(r"the (test |validation )?loss became (nan|inf) at epoch \d", err)


@pytest.mark.parametrize("code, words", [(errno.ENOSPC, "No space left on device"),
                                         (errno.EACCES, "Permission denied"),
                                         (errno.EROFS, "Read-only file system")])
def test_a_failed_write_is_one_error_line(tmp_path, capsys, monkeypatch, code, words):
    from minidl import checkpoint

    def fail(f, arrays):
        raise OSError(code, os.strerror(code))        # as a failed write raises it: no file

    monkeypatch.setattr(checkpoint, "_write", fail)
    err = one_error_line(capsys, ["train", *TINY, "--epochs", "1", "--out", str(tmp_path)])
    assert re.search(re.escape(str(tmp_path / "checkpoint.npz")) + ": " + words, err), err
    assert ("disk is full" in err) == (code == errno.ENOSPC)
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


def test_a_bug_in_minidl_prints_its_traceback_and_asks_for_a_report(tmp_path, capsys,
                                                                    monkeypatch):
    def broken(*args, **kwargs):
        return 1 / 0

    monkeypatch.setattr(recipes, "build_trainer", broken)
    assert main(["train", *TINY, "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == "Traceback (most recent call last):" and "ZeroDivisionError" in err[-2]
    assert re.fullmatch(r"minidl: internal error: this is a bug in minidl \S+, not in what you "
                        r"typed; please report it with the command line and the traceback "
                        r"above", err[-1])


def test_the_command_prints_no_traceback_for_a_damaged_file(damaged):
    path, message = damaged["truncated"]
    done = subprocess.run([sys.executable, "-m", "minidl", "eval", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert re.fullmatch(r"minidl: error: .*" + message + r".*\n", done.stderr)


def test_the_printed_resume_command_works_for_a_run_with_a_data_dir(tmp_path, monkeypatch,
                                                                    capsys):
    data = tmp_path / "data"
    shutil.copytree(DIGITS, data / "mnist", ignore=shutil.ignore_patterns("NOTICE"))
    for name in os.listdir(data / "mnist"):     # the digits files are MNIST's, renamed
        os.rename(data / "mnist" / name, data / "mnist" / name.replace("test-", "t10k-"))
    original = Trainer.write_logs

    def logs_then_ctrl_c(self):       # Ctrl-C at the end of epoch 1
        original(self)
        signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(Trainer, "write_logs", logs_then_ctrl_c)
    monkeypatch.setenv("MINIDL_DATA", str(tmp_path / "elsewhere"))    # not where the data is
    out = tmp_path / "run with a space"
    argv = ["train", "--model", "nin-small", "--dataset", "mnist", "--limit", "64",
            "--batch-size", "32", "--epochs", "2", "--data-dir", str(data), "--out", str(out)]
    assert main(argv) == 130
    resume = re.search(r"resume with: (minidl .*)", capsys.readouterr().err)[1]
    monkeypatch.setattr(Trainer, "write_logs", original)
    monkeypatch.chdir(data)                       # anywhere: the printed path is absolute
    assert main(shlex.split(resume)[1:]) == 0
    assert f"resuming {out / 'checkpoint.npz'} at epoch 2" in capsys.readouterr().out
    assert load_checkpoint(out / "checkpoint.npz")["config"]["data_dir"] == str(data)
    assert main(["eval", str(out), "--limit", "10"]) == 0         # eval finds the data too
