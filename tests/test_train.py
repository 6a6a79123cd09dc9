"""Training loop, checkpoints and resuming (minidl.train, minidl.checkpoint).

A small MLP with batch norm and dropout on a slice of the digits data set
keeps these tests fast while exercising every piece of state a checkpoint
must hold: parameters, buffers, momentum, the schedule, the loader's
shuffling, and the host generator that dropout draws from.
"""
import json
import re
import sys
import os
import pickle
import signal

import numpy
import pytest

import minidl
from minidl import nn
from minidl.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from minidl.data import DataLoader, load
from minidl.optim import SGD, CosineAnnealingLR, weight_decay_groups
from minidl.train import Trainer, TrainingError, TrainingInterrupted, evaluate


@pytest.fixture(scope="module")
def digits():
    x, y = load("digits", split="train")
    tx, ty = load("digits", split="test")
    mean, std = x.mean(), x.std()
    return ((x[:256] - mean) / std, y[:256]), ((tx[:200] - mean) / std, ty[:200])


def make_trainer(digits, epochs=2, out_dir=None, lr=0.05, device="cpu", log_every=3, seed=7,
                 precise_bn=None):
    """A fresh run: same seed, same model, same everything (only the device may differ)."""
    (x, y), test = digits
    minidl.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.BatchNorm1d(32), nn.ReLU(),
                          nn.Dropout(0.3), nn.Linear(32, 10)).to(device)
    optimizer = SGD(weight_decay_groups(model.named_parameters(), 1e-3), lr=lr, momentum=0.9)
    loader = DataLoader((x, y), batch_size=32, shuffle=True, seed=seed)
    schedule = CosineAnnealingLR(optimizer, T_max=epochs * len(loader))
    return Trainer(model, optimizer, loader, test_loader=DataLoader(test, 100), schedule=schedule,
                   epochs=epochs, seed=seed, out_dir=out_dir, log_every=log_every,
                   config={"model": "mlp"}, verbose=False, precise_bn=precise_bn)


def weights(trainer):
    return trainer.model.state_dict()


def assert_same_state(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert numpy.array_equal(a[key], b[key]), key


def assert_equal_nested(a, b, where="state"):
    assert type(a) is type(b), where
    if isinstance(a, dict):
        assert list(a) == list(b), where
        for key in a:
            assert_equal_nested(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (u, v) in enumerate(zip(a, b)):
            assert_equal_nested(u, v, f"{where}[{i}]")
    elif isinstance(a, (numpy.ndarray, numpy.generic)):
        assert a.dtype == b.dtype and numpy.array_equal(a, b, equal_nan=True), where
    elif isinstance(a, float) and numpy.isnan(a):
        assert numpy.isnan(b), where
    else:
        assert a == b, where


# --------------------------------------------------------------------------- checkpoint files

def test_checkpoint_round_trip_keeps_every_kind_of_value(tmp_path):
    state = {
        "weights": {"w": numpy.arange(6, dtype=numpy.float32).reshape(2, 3),
                    "count": numpy.zeros((), dtype=numpy.int64)},
        "by_index": {0: {"momentum_buffer": numpy.ones(3)}, 5: {}},
        "betas": (0.9, 0.999), "lr": float("nan"), "big": 2 ** 127 + 1,
        "scalar": numpy.float32(1.5), "none": None, "flag": True, "names": ["a", "b"],
        "looks_like_marker": {"__ndarray__": "a0"},
    }
    save_checkpoint(tmp_path / "c.npz", state)
    assert_equal_nested(load_checkpoint(tmp_path / "c.npz"), state)


def test_checkpoint_refuses_values_it_cannot_store_without_pickle(tmp_path):
    with pytest.raises(TypeError, match=r"state\['f'\] is a builtin_function_or_method, which "
                                        r"a checkpoint cannot hold"):
        save_checkpoint(tmp_path / "c.npz", {"f": len})
    with pytest.raises(TypeError, match=r"object array"):
        save_checkpoint(tmp_path / "c.npz", {"a": numpy.array([None, 1])})
    assert not os.listdir(tmp_path)


def test_trainer_checkpoint_round_trip_restores_every_state(digits, tmp_path):
    trainer = make_trainer(digits, epochs=2, out_dir=tmp_path)
    trainer.epochs = 1
    trainer.fit()
    saved = trainer.state_dict()
    restored = make_trainer(digits, epochs=2)
    restored.load_checkpoint(tmp_path / "checkpoint.npz")
    for key in ("model", "optimizer", "schedule", "loader", "history", "config", "epoch",
                "step_in_epoch", "global_step", "seed", "totals"):
        assert_equal_nested(restored.state_dict()[key], saved[key], key)
    assert restored.optimizer.param_groups[0]["lr"] == trainer.optimizer.param_groups[0]["lr"]


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    from minidl import checkpoint
    path = tmp_path / "checkpoint.npz"
    save_checkpoint(path, {"epoch": 1, "w": numpy.ones(4)})

    def crash(f, arrays):
        f.write(b"PK\x03\x04 half a zip")
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(checkpoint, "_write", crash)
    with pytest.raises(RuntimeError, match="disk on fire"):
        save_checkpoint(path, {"epoch": 2, "w": numpy.zeros(4)})
    assert os.listdir(tmp_path) == ["checkpoint.npz"]      # no temporary file left
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask   # not mkstemp's private 0o600
    state = load_checkpoint(path)
    assert state["epoch"] == 1 and numpy.array_equal(state["w"], numpy.ones(4))


def test_truncated_or_corrupt_checkpoints_raise_an_error_naming_the_file(tmp_path):
    good = tmp_path / "good.npz"
    save_checkpoint(good, {"w": numpy.arange(1000.0)})
    data = good.read_bytes()
    cases = {"truncated.npz": data[: len(data) // 2], "empty.npz": b"",
             "garbage.npz": b"this is not a checkpoint",
             "flipped.npz": data[:200] + bytes(b ^ 0xFF for b in data[200:300]) + data[300:]}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(CheckpointError, match=rf"{name} is not a readable minidl "
                                                  rf"checkpoint \(truncated or corrupt\?\)"):
            load_checkpoint(tmp_path / name)
    with pytest.raises(CheckpointError, match=r"missing\.npz does not exist"):
        load_checkpoint(tmp_path / "missing.npz")
    numpy.savez(tmp_path / "other.npz", x=numpy.ones(2))
    with pytest.raises(CheckpointError, match=r"other\.npz is not a minidl checkpoint"):
        load_checkpoint(tmp_path / "other.npz")


def test_loading_never_unpickles(tmp_path):
    class Boom:
        def __reduce__(self):
            return (os.remove, (str(tmp_path / "victim"),))

    (tmp_path / "victim").write_text("still here")
    (tmp_path / "evil.npz").write_bytes(pickle.dumps(Boom()))
    with pytest.raises(CheckpointError, match=r"evil\.npz is not a readable"):
        load_checkpoint(tmp_path / "evil.npz")
    assert (tmp_path / "victim").exists()


# --------------------------------------------------------------------------- training

def test_loss_falls_and_logs_are_written(digits, tmp_path):
    trainer = make_trainer(digits, epochs=3, out_dir=tmp_path, lr=0.1)
    history = trainer.fit()
    assert [r["epoch"] for r in history] == [1, 2, 3]
    assert history[-1]["train_loss"] < 0.6 * history[0]["train_loss"]
    assert history[-1]["test_accuracy"] > 0.5          # chance is 0.1
    rows = (tmp_path / "log.csv").read_text().splitlines()
    assert rows[0].split(",")[:4] == ["epoch", "global_step", "lr", "train_loss"]
    assert len(rows) == 4 and rows[3].startswith("3,24,")
    log = json.loads((tmp_path / "log.json").read_text())
    assert log["config"] == {"model": "mlp"} and log["history"] == history
    assert load_checkpoint(tmp_path / "checkpoint.npz")["epoch"] == 3


def test_resume_after_an_epoch_is_bit_exact(digits, tmp_path):
    straight = make_trainer(digits, epochs=2)
    straight.fit()

    first = make_trainer(digits, epochs=2, out_dir=tmp_path)
    first.epochs = 1
    first.fit()
    del first
    minidl.manual_seed(12345)        # whatever happened in between must not matter
    resumed = make_trainer(digits, epochs=2, out_dir=tmp_path)
    resumed.load_checkpoint(tmp_path / "checkpoint.npz")
    history = resumed.fit()
    assert_same_state(weights(resumed), weights(straight))
    assert [r["train_loss"] for r in history] == [r["train_loss"] for r in straight.history]


def interrupt_at(trainer, step):
    """Send Ctrl-C (SIGINT) to ourselves during optimizer step number ``step``."""
    original, count = trainer.optimizer.step, [0]

    def step_then_interrupt():
        original()
        count[0] += 1
        if count[0] == step:
            signal.raise_signal(signal.SIGINT)

    trainer.optimizer.step = step_then_interrupt


def test_ctrl_c_saves_the_last_step_and_resuming_is_bit_exact(digits, tmp_path, capsys):
    straight = make_trainer(digits, epochs=2)
    straight.fit()

    interrupted = make_trainer(digits, epochs=2, out_dir=tmp_path)
    interrupt_at(interrupted, 11)                   # epoch 2 (8 steps each), its step 3
    with pytest.raises(TrainingInterrupted, match=r"interrupted at epoch 2, step 3 of 8; "
                                                  r"checkpoint saved to .*checkpoint\.npz"):
        interrupted.fit()
    assert "Ctrl-C: stopping after this step" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    saved = load_checkpoint(tmp_path / "checkpoint.npz")
    assert (saved["epoch"], saved["step_in_epoch"], saved["global_step"]) == (1, 3, 11)

    resumed = make_trainer(digits, epochs=2)
    resumed.load_checkpoint(tmp_path / "checkpoint.npz")
    history = resumed.fit()
    assert_same_state(weights(resumed), weights(straight))
    assert history[-1]["train_loss"] == straight.history[-1]["train_loss"]

    interrupted.fit()                # or simply go on in the same process
    assert_same_state(weights(interrupted), weights(straight))


def test_precise_bn_changes_only_the_running_statistics_and_resumes_bit_exact(digits,
                                                                             tmp_path):
    plain = make_trainer(digits, epochs=2)
    plain.fit()
    straight = make_trainer(digits, epochs=2, precise_bn=3)
    straight.fit()
    bn, plain_bn = straight.model[2], plain.model[2]
    for (name, p), q in zip(straight.model.named_parameters(), plain.model.parameters()):
        assert numpy.array_equal(p.data, q.data), name        # the same training
    assert int(bn.num_batches_tracked.data) == 3               # re-estimated over 3 batches
    assert not numpy.allclose(bn.running_mean.data, plain_bn.running_mean.data)
    assert [r["train_loss"] for r in straight.history] == [r["train_loss"]
                                                          for r in plain.history]

    interrupted = make_trainer(digits, epochs=2, out_dir=tmp_path, precise_bn=3)
    interrupt_at(interrupted, 11)                   # epoch 2, its step 3
    with pytest.raises(TrainingInterrupted):
        interrupted.fit()
    resumed = make_trainer(digits, epochs=2, precise_bn=3)
    resumed.load_checkpoint(tmp_path / "checkpoint.npz")
    resumed.fit()
    assert_same_state(weights(resumed), weights(straight))
    for key in ("train_loss", "test_loss", "test_accuracy"):
        assert [r[key] for r in resumed.history] == [r[key] for r in straight.history], key


def test_a_keyboard_interrupt_inside_a_step_keeps_the_last_epoch_checkpoint(digits, tmp_path):
    trainer = make_trainer(digits, epochs=2, out_dir=tmp_path)
    calls = [0]

    def hook(module, inputs, output):
        calls[0] += 1
        if calls[0] == 12:       # epoch 2, step 2 (epoch 1: 8 steps + 2 test batches)
            raise KeyboardInterrupt

    trainer.model.register_forward_hook(hook)
    with pytest.raises(TrainingInterrupted, match=r"in the middle of a step of epoch 2; the "
                                                  r"checkpoint .*checkpoint\.npz holds the end "
                                                  r"of epoch 1") as info:
        trainer.fit()
    assert info.value.checkpoint == str(tmp_path / "checkpoint.npz")
    assert load_checkpoint(tmp_path / "checkpoint.npz")["epoch"] == 1


def test_nan_loss_stops_and_names_epoch_and_step(digits, tmp_path):
    trainer = make_trainer(digits, epochs=2, out_dir=tmp_path, log_every=4)
    calls = [0]

    def poison(module, inputs, output):
        calls[0] += 1
        return output * float("nan") if calls[0] == 6 else output

    trainer.model.register_forward_hook(poison)
    with pytest.raises(TrainingError, match=r"the loss became nan at epoch 1, step 6 \(global "
                                            r"step 6\); training stopped without saving"):
        trainer.fit()
    assert not (tmp_path / "checkpoint.npz").exists()


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning",
                            "ignore:invalid value:RuntimeWarning")
def test_a_huge_learning_rate_diverges_with_a_clear_message(digits):
    trainer = make_trainer(digits, epochs=1, lr=1e10)
    with pytest.raises(TrainingError, match=r"the loss became (nan|inf) at epoch 1, step \d+ "
                                            r".*Lower the learning rate"):
        trainer.fit()


def test_evaluate_in_eval_mode_without_grad(digits):
    trainer = make_trainer(digits)
    model, test = trainer.model, digits[1]
    running = model[2].running_mean.numpy().copy()
    loss, accuracy = evaluate(model, DataLoader(test, 64))
    assert model.training                          # the mode is restored
    assert numpy.array_equal(model[2].running_mean.numpy(), running)
    with minidl.no_grad():
        logits = model.eval()(minidl.tensor(test[0]))
    model.train()
    z = logits.numpy().astype(numpy.float64)
    log_probs = z - z.max(1, keepdims=True)
    log_probs -= numpy.log(numpy.exp(log_probs).sum(1, keepdims=True))
    assert loss == pytest.approx(-log_probs[numpy.arange(len(z)), test[1]].mean(), rel=1e-5)
    assert accuracy == numpy.mean(z.argmax(1) == test[1])


def test_trainer_checks_its_arguments(digits):
    trainer = make_trainer(digits)
    for name, value, error, message in (
            ("seed", -1, ValueError, "Trainer: seed must be >= 0, got -1"),
            ("epochs", 0, ValueError, "Trainer: epochs must be >= 1, got 0"),
            ("epochs", 2.0, TypeError, "Trainer: epochs must be an integer, got 2.0"),
            ("log_every", True, TypeError, "Trainer: log_every must be an integer, got True"),
            ("precise_bn", 0, ValueError, "Trainer: precise_bn must be >= 1, got 0")):
        with pytest.raises(error, match=message):
            Trainer(trainer.model, trainer.optimizer, trainer.train_loader, **{name: value})
    no_schedule = Trainer(trainer.model, trainer.optimizer, trainer.train_loader)
    with pytest.raises(ValueError, match="saved with a learning-rate schedule, but this trainer "
                                         "has none"):
        no_schedule.load_state_dict(trainer.state_dict())


def test_a_step_on_the_gpu_copies_one_batch_in_and_only_documented_scalars_out(digits,
                                                                               fake_gpu):
    trainer = make_trainer(digits, epochs=1, device="cuda", log_every=3)
    trainer.test_loader = None
    assert trainer.model[1].weight.device == "cuda"
    fake_gpu.reset_transfers()
    history = trainer.fit()
    steps = len(trainer.train_loader)               # 8 steps: flushes after 1, 4, 7, 8
    # per step: images + labels in, nothing out (labels are range-checked on the host);
    # per flush: the window's losses and correct counts, in one copy
    assert fake_gpu.transfers == {"to_device": 2 * steps, "to_host": 4}
    assert history[0]["train_loss"] > 0 and 0 <= history[0]["train_accuracy"] <= 1


# --------------------------------------------------------------------------- what it shows

def test_the_log_keeps_the_rate_each_epoch_used_not_the_one_after_it(digits):
    trainer = make_trainer(digits, epochs=2)
    history = trainer.fit()
    steps = len(trainer.train_loader)
    # the rate of each epoch's last step; after the schedule's very last step it is 0
    assert [r["lr"] for r in history] == pytest.approx(
        [trainer.schedule.lr_at(steps - 1)[0], trainer.schedule.lr_at(2 * steps - 1)[0]])
    assert history[-1]["lr"] > 0 and trainer.optimizer.param_groups[0]["lr"] == 0


def test_the_bar_shows_loss_from_the_first_step_rate_and_images_per_second(digits, capsys,
                                                                         monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)              # the plain bar, into a log
    trainer = make_trainer(digits, epochs=1, log_every=20)
    trainer.verbose = True
    trainer.fit()
    bar = [line for line in capsys.readouterr().err.splitlines() if line.startswith("epoch")]
    first = re.fullmatch(r"epoch 1/1  1/8 \[.*, loss=([\d.]+), acc=[\d.]+%, lr=([\d.e-]+), "
                         r"img/s=(\d+)\]", bar[0])
    assert first, bar[0]
    assert float(first[2]) == pytest.approx(0.05) and int(first[3]) > 0
    assert float(first[1]) == pytest.approx(trainer.history[0]["train_loss"], rel=0.5)


def test_training_curves_are_drawn_into_the_run_folder_when_matplotlib_is_there(digits,
                                                                               tmp_path,
                                                                               monkeypatch):
    pytest.importorskip("matplotlib")
    make_trainer(digits, epochs=1, out_dir=tmp_path / "with").fit()
    assert (tmp_path / "with" / "training_curves.png").read_bytes()[:4] == b"\x89PNG"
    monkeypatch.setitem(sys.modules, "matplotlib", None)          # not installed
    make_trainer(digits, epochs=1, out_dir=tmp_path / "without").fit()
    assert sorted(os.listdir(tmp_path / "without")) == ["checkpoint.npz", "log.csv", "log.json"]


def test_a_validation_loader_is_scored_every_epoch_and_the_test_loader_at_the_end(digits,
                                                                                 tmp_path):
    (x, y), test = digits
    trainer = make_trainer(digits, epochs=3, out_dir=tmp_path, lr=0.1)
    trainer.val_loader = DataLoader((x[:64], y[:64]), 32)
    history = trainer.fit()
    assert all(r["val_accuracy"] is not None for r in history)
    assert [r["test_loss"] is None for r in history] == [True, True, False]
    best = trainer.best_epoch()
    assert history[best - 1]["val_accuracy"] == max(r["val_accuracy"] for r in history)
    assert load_checkpoint(tmp_path / "best.npz")["epoch"] == best
    header = (tmp_path / "log.csv").read_text().splitlines()[0].split(",")
    assert header[5:9] == ["val_loss", "val_accuracy", "test_loss", "test_accuracy"]
    assert make_trainer(digits).best_epoch() is None
