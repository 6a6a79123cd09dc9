"""Every script in examples/ runs, in a reduced size, and shows what it claims to show."""
import importlib.util
import re
import runpy
import sys
from pathlib import Path

import numpy
import pytest
from cifar_files import make_cifar

import minidl

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
# tested in tests/test_example_bn_regions.py and tests/test_example_reproduce.py (each
# run takes its own file)
TESTED_ELSEWHERE = {"bn_regions.py", "reproduce.py"}
TESTED_HERE = {"bn_gradients.py", "maxout_gradients.py", "gradcheck_your_op.py",
               "train_mnist.py", "train_cifar10.py"}


def load_module(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def example(name):
    return load_module(EXAMPLES / name, "example_" + name.removesuffix(".py"))


def test_every_example_has_a_test():
    assert {p.name for p in EXAMPLES.glob("*.py")} == TESTED_HERE | TESTED_ELSEWHERE


@pytest.mark.parametrize("name, last_words", [
    ("maxout_gradients.py", "nothing is lost or doubled"),
    ("gradcheck_your_op.py", "GradcheckError: gradient check failed"),
])
def test_runs_as_a_script(name, last_words, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [name])
    runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    assert last_words in capsys.readouterr().out.splitlines()[-1]


def test_bn_gradients_three_methods_agree(capsys):
    results = example("bn_gradients.py").main(["--shape", "8", "4", "3", "3"])
    assert len(results) == 3
    (reference, _), *others = results.values()
    for grads, _ in others:
        for got, want in zip(grads, reference):
            assert got.shape == want.shape
            numpy.testing.assert_allclose(got, want, rtol=0, atol=1e-10)
    worst = float(re.search(r"all three agree to (\S+)", capsys.readouterr().out).group(1))
    assert worst < 1e-10


def test_maxout_gradients_go_to_the_first_winner_only(capsys):
    grad = example("maxout_gradients.py").main()
    dy = numpy.array([[10.0, 20.0], [30.0, 40.0]])
    groups = grad.reshape(2, 2, 3)
    numpy.testing.assert_array_equal(groups.sum(axis=2), dy)
    assert ((groups != 0).sum(axis=2) == 1).all()       # the non-winners get exactly 0
    # unit 1 of sample 0 ties pieces 0 and 1, unit 1 of sample 1 ties pieces 1 and 2
    numpy.testing.assert_array_equal(grad, [[0, 0, 10, 20, 0, 0], [30, 0, 0, 0, 40, 0]])
    out = capsys.readouterr().out
    assert "sample 0, unit 1: piece 0 (a tie" in out and "sample 1, unit 1: piece 1 (a tie" in out


def test_gradcheck_catches_the_wrong_op(capsys):
    error = example("gradcheck_your_op.py").main()
    assert isinstance(error, minidl.GradcheckError)
    assert re.search(r"input 0 .* numeric .* analytic", str(error))
    out = capsys.readouterr().out
    assert "checking Softplus ... True" in out and "GradcheckError: gradient check failed" in out


EPOCH_LINE = re.compile(r"epoch (\d)/(\d)  train loss (\d+\.\d{4}) .*test accuracy "
                        r"(\d+\.\d)%$", re.M)


def test_train_mnist_loss_falls(capsys):
    history = example("train_mnist.py").main(["--limit", "512", "--epochs", "2"])
    out = capsys.readouterr().out
    assert out.startswith("min-small (28,012 parameters) on 512 digits training images, cpu")
    lines = EPOCH_LINE.findall(out)
    assert [line[:2] for line in lines] == [("1", "2"), ("2", "2")]
    assert history[1]["train_loss"] < history[0]["train_loss"] - 0.1
    for line, record in zip(lines, history):
        assert float(line[2]) == pytest.approx(record["train_loss"], abs=1e-4)
        assert float(line[3]) == pytest.approx(100 * record["test_accuracy"], abs=0.05)


def test_train_mnist_precise_bn_changes_only_the_evaluation_statistics(monkeypatch, capsys):
    plain = example("train_mnist.py").main(["--limit", "128", "--epochs", "2"])
    module, calls = example("train_mnist.py"), []
    original = module.update_bn_stats

    def recording(model, loader, batches):
        calls.append(batches)
        return original(model, loader, batches=batches)

    monkeypatch.setattr(module, "update_bn_stats", recording)
    precise = module.main(["--limit", "128", "--epochs", "2", "--precise-bn", "3"])
    assert calls == [3, 3]
    for key in ("train_loss", "train_accuracy"):       # the same training, batch for batch
        assert [r[key] for r in precise] == [r[key] for r in plain]
    out = capsys.readouterr().out
    for record in precise:
        assert f"train accuracy {100 * record['train_accuracy']:.1f}%" in out


def test_train_mnist_on_a_gpu_keeps_host_and_device_apart(fake_gpu, capsys):
    """On the fake GPU every host/device mix raises: the example must move data explicitly."""
    history = example("train_mnist.py").main(["--limit", "64", "--epochs", "1",
                                              "--device", "cuda"])
    assert len(history) == 1 and numpy.isfinite(history[0]["train_loss"])
    assert ", cuda\n" in capsys.readouterr().out


@pytest.fixture
def tiny_cifar10(tmp_path):
    """A CIFAR-10 archive in the canonical python format: 5 x 13 training, 13 test images."""
    archive, _ = make_cifar(tmp_path / "cifar10", "cifar10", n=13)
    assert archive.name == "cifar-10-python.tar.gz"
    return tmp_path


def test_train_cifar10_runs_offline_on_a_tiny_archive(tiny_cifar10, capsys):
    history = example("train_cifar10.py").main(
        ["--data-dir", str(tiny_cifar10), "--model", "min-small", "--limit", "64",
         "--epochs", "1", "--batch-size", "32"])
    out = capsys.readouterr().out
    assert "min-small (106,964 parameters) on 64 CIFAR-10 training images, cpu" in out
    (line,) = EPOCH_LINE.findall(out)
    assert line[:2] == ("1", "1")
    assert numpy.isfinite(history[0]["train_loss"]) and numpy.isfinite(history[0]["test_loss"])
    # 13 test images: the accuracy is a whole number of thirteenths
    assert round(13 * history[0]["test_accuracy"], 9) in range(14)
