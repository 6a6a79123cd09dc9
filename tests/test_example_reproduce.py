"""examples/reproduce.py end to end, on tiny data sets written here in their canonical formats."""
import json

import numpy
import pytest
from cifar_files import make_cifar
from data.test_data_svhn import write_svhn
from test_examples import example

from minidl import models, recipes
from minidl.data import download
from minidl.data.idx import write_idx
from minidl.train import TrainingError

reproduce = example("reproduce.py")
TINY = ["--size", "small", "--limit", "8", "--epochs", "1", "--batch-size", "8"]


def write_mnist(folder, n=8, seed=0):
    """MNIST's four IDX files (gzip), n uint8 28x28 images and labels in each split."""
    rng = numpy.random.default_rng(seed)
    folder.mkdir(parents=True)
    for prefix in ("train", "t10k"):
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz",
                  rng.integers(0, 256, (n, 28, 28), dtype=numpy.uint8))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz",
                  rng.integers(0, 10, n, dtype=numpy.uint8))


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """CIFAR-10 (.tar.gz of pickles), MNIST (IDX) and SVHN (.mat) files; no CIFAR-100."""
    root = tmp_path_factory.mktemp("data")
    make_cifar(root / "cifar10", "cifar10", n=2)            # 10 training, 2 test images
    write_mnist(root / "mnist")
    (root / "svhn").mkdir()
    for split in ("train", "test"):
        write_svhn(root / "svhn" / f"{split}_32x32.mat", n=8, seed=len(split))
    return root


@pytest.fixture(scope="module")
def cifar_results(data_root, tmp_path_factory):
    """Two models, two seeds on CIFAR-10 (CIFAR-100 is missing): the run shared by the tests."""
    out = tmp_path_factory.mktemp("out")
    argv = ["--data-dir", str(data_root), "--out", str(out), "--datasets", "cifar10", "cifar100",
            "--models", "nin", "min", "--seeds", "0", "1", *TINY]
    with pytest.MonkeyPatch.context() as patch:     # as conftest's no_published_checksums
        for dataset in download.MD5:
            patch.setitem(download.MD5, dataset, {})
        return out, argv, reproduce.main(argv)


def test_the_table_holds_what_the_runs_measured(cifar_results, capsys):
    out, _, results = cifar_results
    saved = json.loads((out / "results.json").read_text())
    assert saved["runs"] == results["runs"] and saved["summary"] == results["summary"]
    assert [(r["model"], r["seed"]) for r in saved["runs"]] == [
        ("nin-small", 0), ("nin-small", 1), ("min-small", 0), ("min-small", 1)]
    for run in saved["runs"]:
        history = json.loads((out / "runs" / "cifar10" / f"{run['model']}-seed{run['seed']}"
                              / "log.json").read_text())["history"]
        assert run["test_error"] == pytest.approx(100 * (1 - history[-1]["test_accuracy"]))
        assert run["train_images"] == 8 and run["augment"] == "none"
        assert run["seconds_per_image"] == pytest.approx(history[-1]["time_s"] / 8)
    markdown = (out / "results.md").read_text()
    for row in saved["summary"]:
        errors = [r["test_error"] for r in saved["runs"] if r["model"] == row["model"]]
        assert row["test_errors"] == errors
        assert row["mean"] == pytest.approx(numpy.mean(errors))
        assert row["std"] == pytest.approx(numpy.std(errors, ddof=1))
        cell = f"{numpy.mean(errors):.2f} ± {numpy.std(errors, ddof=1):.2f} (2 runs)"
        assert f"| cifar10 | {row['model']} | {cell} |" in markdown


def test_published_numbers_are_the_cited_ones_for_the_setting_run(cifar_results):
    out, _, results = cifar_results
    by_model = {row["model"]: row["published"] for row in results["summary"]}
    assert by_model["nin-small"]["test_error"] == 10.41      # Lin et al., no augmentation
    assert by_model["min-small"]["test_error"] == 7.85       # Chang & Chen, no augmentation
    assert "arXiv 1312.4400" in by_model["nin-small"]["source"]
    assert "arXiv 1511.02583" in by_model["min-small"]["source"]
    markdown = (out / "results.md").read_text()
    assert "| 10.41* | Lin et al. 2014 |" in markdown and "| 11.68* | Goodfellow" in markdown
    assert "arXiv 1508.00330" in markdown and "arXiv 1302.4389" in markdown
    # the augmented setting cites the augmented numbers; a control has none
    assert reproduce.published("nin", "cifar10", "crop-flip")["test_error"] == 8.81
    assert reproduce.published("min", "cifar100", "none")["test_error"] == 28.86
    assert reproduce.published("nin-bn", "cifar10", "none") is None
    assert reproduce.published("min", "cifar10", "crop") is None


def test_missing_data_sets_are_skipped_with_a_note(cifar_results, capsys):
    _, _, results = cifar_results
    assert any(note.startswith("data set cifar100: no files in") for note in results["skipped"])
    assert {r["dataset"] for r in results["runs"]} == {"cifar10"}


def test_a_second_run_reuses_the_finished_runs(cifar_results, monkeypatch):
    out, argv, results = cifar_results
    monkeypatch.setattr(recipes.Trainer, "fit", lambda self: pytest.fail("trained again"))
    again = reproduce.main(argv)
    assert [r["test_error"] for r in again["runs"]] == [r["test_error"] for r in results["runs"]]


def test_mnist_and_svhn_and_a_model_minidl_lacks(data_root, tmp_path, monkeypatch, capsys):
    lacking = {k: v for k, v in models.available().items() if k != "min-small"}
    monkeypatch.setattr(models, "available", lambda: lacking)
    results = reproduce.main(["--data-dir", str(data_root), "--out", str(tmp_path),
                              "--datasets", "mnist", "svhn", "--models", "nin", "min",
                              "--seeds", "3", "--preprocess", "per-image", *TINY])
    out = capsys.readouterr().out
    assert "skipped model min-small: not in minidl.models.available()" in out
    assert [(r["dataset"], r["model"], r["seed"], r["preprocess"]) for r in results["runs"]] == [
        ("mnist", "nin-small", 3, "per-image"), ("svhn", "nin-small", 3, "per-image")]
    published = {row["dataset"]: row["published"]["test_error"] for row in results["summary"]}
    assert published == {"mnist": 0.47, "svhn": 2.35}
    assert all(0 <= r["test_error"] <= 100 for r in results["runs"])


def test_a_diverged_run_is_counted_and_never_averaged(data_root, tmp_path, monkeypatch):
    def diverge(self):
        raise TrainingError("the loss became nan at epoch 1, step 1")
    monkeypatch.setattr(recipes.Trainer, "fit", diverge)
    results = reproduce.main(["--data-dir", str(data_root), "--out", str(tmp_path),
                              "--datasets", "mnist", "--models", "nin", "--seeds", "0", *TINY])
    (run,) = results["runs"]
    assert run["diverged"] and run["test_error"] is None
    (row,) = results["summary"]
    assert (row["mean"], row["diverged"], row["test_errors"]) == (None, 1, [])
    assert "| mnist | nin-small | diverged | - | 0.47 |" in (tmp_path / "results.md").read_text()
