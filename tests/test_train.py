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
from hypothesis import given
from hypothesis import strategies as st

import minidl
from minidl import diagnostics, nn
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
                 callbacks=(), precise_bn=None):
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
                   config={"model": "mlp"}, callbacks=callbacks, verbose=False,
                   precise_bn=precise_bn)


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
                                                                         no_tqdm):
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


# --------------------------------------------------------------------------- region tracking

def test_region_tracker_records_step_0_and_every_epoch_as_diagnostics_measures(digits,
                                                                                tmp_path,
                                                                                device):
    tracker = diagnostics.RegionTracker(64, seed=3, batch_size=40)
    trainer = make_trainer(digits, epochs=2, out_dir=tmp_path, callbacks=[tracker],
                           device=device)
    # the same initial model, measured directly on the batch the seed picks
    initial = make_trainer(digits, epochs=2, device=device).model
    images = digits[0][0][numpy.sort(numpy.random.default_rng(3).choice(256, 64, replace=False))]
    expected = diagnostics.model_summary(diagnostics.collect(initial, images, batch_size=40,
                                                             batch_stats=True))
    trainer.fit()
    assert numpy.array_equal(tracker.images, images)
    history = tracker.history
    assert len(history) == trainer.epochs + 1
    assert [(e["epoch"], e["global_step"]) for e in history] == [(0, 0), (1, 8), (2, 16)]
    assert history[0] == {"epoch": 0, "global_step": 0, **expected}
    assert [layer["layer"] for layer in history[0]["layers"]] == ["3"]
    assert history[-1]["layers"][0]["condition_number"] is not None
    final = diagnostics.collect(trainer.model, images, batch_size=40, batch_stats=True)
    assert history[-1] == {"epoch": 2, "global_step": 16, **diagnostics.model_summary(final)}
    assert history[0] != history[-1]         # training moved the regions
    saved = json.loads((tmp_path / diagnostics.REGIONS_NAME).read_text())
    assert saved == {"images": 64, "batch_stats": True, "history": history}


def test_tracking_regions_does_not_change_training(digits):
    plain = make_trainer(digits, epochs=2)
    plain.fit()
    tracked = make_trainer(digits, epochs=2, callbacks=[diagnostics.RegionTracker(50)])
    tracked.fit()
    assert_same_state(weights(plain), weights(tracked))      # buffers included
    assert plain.history[-1]["test_loss"] == tracked.history[-1]["test_loss"]


def test_resume_keeps_the_region_history(digits, tmp_path):
    whole = diagnostics.RegionTracker(50)
    make_trainer(digits, epochs=3, callbacks=[whole]).fit()
    first = diagnostics.RegionTracker(50)
    trainer = make_trainer(digits, epochs=3, out_dir=tmp_path, callbacks=[first])
    interrupt_at(trainer, 12)            # in epoch 2: a checkpoint after steps 1-12
    with pytest.raises(TrainingInterrupted):
        trainer.fit()
    assert len(first.history) == 2
    second = diagnostics.RegionTracker(50)
    resumed = make_trainer(digits, epochs=3, out_dir=tmp_path, callbacks=[second])
    resumed.load_checkpoint(tmp_path / "checkpoint.npz")
    assert second.history == first.history
    resumed.fit()
    assert second.history == whole.history and len(second.history) == 4
    saved = json.loads((tmp_path / diagnostics.REGIONS_NAME).read_text())
    assert saved["history"] == whole.history


@pytest.mark.parametrize("tracker_state", [{"images": 4}, {"history": "x", "images": 4},
                                           {"history": [], "images": 0}])
def test_a_bad_tracker_state_changes_nothing(digits, tmp_path, tracker_state):
    source = make_trainer(digits, epochs=1, callbacks=[diagnostics.RegionTracker(20)])
    source.fit()
    state = source.state_dict()
    state["callbacks"]["RegionTracker"] = tracker_state
    path = tmp_path / "bad.npz"
    save_checkpoint(path, state)
    target = make_trainer(digits, epochs=1, callbacks=[diagnostics.RegionTracker(20)])
    before = target.state_dict()
    with pytest.raises(CheckpointError, match="its callbacks does not fit .*RegionTracker"):
        target.load_checkpoint(path)
    assert_equal_nested(target.state_dict(), before)


def test_region_tracker_and_callbacks_check_their_arguments(digits):
    with pytest.raises(ValueError, match="RegionTracker: images must be"):
        diagnostics.RegionTracker(0)
    with pytest.raises(ValueError, match=r"images must be a number or an array .* got \(3,\)"):
        diagnostics.RegionTracker(numpy.zeros(3))
    with pytest.raises(TypeError, match="RegionTracker: batch_stats must be True or False"):
        diagnostics.RegionTracker(10, batch_stats=1)
    with pytest.raises(ValueError, match="callbacks with a state must be of different classes"):
        make_trainer(digits, callbacks=[diagnostics.RegionTracker(5),
                                        diagnostics.RegionTracker(6)])


# --------------------------------------------------------------------------- damaged checkpoints

SMALL_STATE = {"w": numpy.arange(6.0).reshape(2, 3), "step": 3, "names": ("a", "b")}


def small_checkpoint(tmp_path):
    path = tmp_path / "small.npz"
    save_checkpoint(path, SMALL_STATE)
    return path, path.read_bytes()


def assert_refused_or_intact(path):
    """A damaged copy either loads as the original (the bytes hit no data) or is refused."""
    try:
        state = load_checkpoint(path)
    except CheckpointError as exc:
        assert str(path) in str(exc)
    else:
        assert_equal_nested(state, SMALL_STATE)


def test_a_checkpoint_cut_at_any_offset_is_a_checkpoint_error_naming_the_file(tmp_path):
    good, data = small_checkpoint(tmp_path)
    cut = tmp_path / "cut.npz"
    for offset in range(len(data)):
        cut.write_bytes(data[:offset])
        with pytest.raises(CheckpointError, match=re.escape(str(cut))):
            load_checkpoint(cut)


def test_a_byte_flipped_anywhere_is_refused_or_changes_nothing(tmp_path):
    good, data = small_checkpoint(tmp_path)
    flipped = tmp_path / "flipped.npz"
    for offset in range(len(data)):
        damaged = bytearray(data)
        damaged[offset] ^= 1 << offset % 8        # one bit, a different one at each offset
        flipped.write_bytes(bytes(damaged))
        assert_refused_or_intact(flipped)


@given(flips=st.lists(st.tuples(st.integers(0, 10 ** 6), st.integers(1, 255)), min_size=2,
                      max_size=8))
def test_several_flipped_bytes_are_refused_or_change_nothing(tmp_path, flips):
    good, data = small_checkpoint(tmp_path)
    damaged = bytearray(data)
    for offset, mask in flips:
        damaged[offset % len(data)] ^= mask
    (tmp_path / "flips.npz").write_bytes(bytes(damaged))
    assert_refused_or_intact(tmp_path / "flips.npz")


def write_header(path, header, arrays=None):
    """An .npz with this raw ``__header__`` (bytes, or JSON of ``header``) and ``arrays``."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    numpy.savez(path, __header__=numpy.frombuffer(raw, numpy.uint8), **(arrays or {}))


GOOD_HEADER = {"format": "minidl-checkpoint", "version": 1}


@pytest.mark.parametrize("header, message", [
    (b"\xff\xfe not utf-8", r"not a readable minidl checkpoint.*UnicodeDecodeError"),
    (b"{not json", r"not a readable minidl checkpoint.*JSONDecodeError"),
    (b"[" * 100_000 + b"]" * 100_000, r"nested too deeply"),
    ([1, 2], r"is not a minidl checkpoint \(its header has no format"),
    ({"format": "other"}, r"is not a minidl checkpoint \(its header has no format"),
    ({"format": "minidl-checkpoint", "version": "1"}, r"format version '1'"),
    (GOOD_HEADER, r"its header has no 'state' entry"),
    (dict(GOOD_HEADER, state={"__ndarray__": "a9"}), r"names an array 'a9'"),
    (dict(GOOD_HEADER, state={"__ndarray__": [1]}), r"names an array \[1\]"),
    (dict(GOOD_HEADER, state={"__npscalar__": None}), r"names an array None"),
    (dict(GOOD_HEADER, state={"__tuple__": 5}), r"__tuple__ marker of int, not a list"),
    (dict(GOOD_HEADER, state={"__items__": {"a": 1}}), r"__items__ marker of dict"),
    (dict(GOOD_HEADER, state={"__items__": [[1]]}), r"not a list of \[key, value\] pairs"),
    (dict(GOOD_HEADER, state={"__items__": [[[1], 2]]}), r"not a list of \[key, value\] pairs"),
    (dict(GOOD_HEADER, state={"x": {"__tuple__": [{"__items__": 0}]}}), r"__items__ marker"),
])
def test_a_malformed_header_is_a_checkpoint_error_saying_what_is_wrong(tmp_path, header,
                                                                         message):
    path = tmp_path / "checkpoint.npz"
    write_header(path, header)
    with pytest.raises(CheckpointError, match=re.escape(str(path)) + ".*" + message):
        load_checkpoint(path)


def test_a_deep_but_valid_json_header_is_refused_not_a_recursion_error(tmp_path):
    path = tmp_path / "deep.npz"
    depth = 50_000
    raw = b'{"format": "minidl-checkpoint", "version": 1, "state": ' + b"[" * depth \
        + b"]" * depth + b"}"
    write_header(path, raw)
    with pytest.raises(CheckpointError, match=r"deep\.npz is corrupt: its header is nested too "
                                              r"deeply"):
        load_checkpoint(path)


@pytest.mark.parametrize("content", ["npy", "pickled npy", "zip of text", "empty zip"])
def test_other_files_under_a_checkpoint_name_are_refused(tmp_path, content):
    import zipfile
    path = tmp_path / "checkpoint.npz"
    if content == "npy":
        with open(path, "wb") as f:
            numpy.save(f, numpy.arange(5))
        message = r"is a single \.npy array, not a minidl checkpoint"
    elif content == "pickled npy":
        with open(path, "wb") as f:
            numpy.save(f, numpy.array([None, 1]), allow_pickle=True)
        message = r"is not a readable minidl checkpoint"
    else:
        with zipfile.ZipFile(path, "w") as archive:
            if content == "zip of text":
                archive.writestr("notes.txt", "hello")
        message = r"is not a minidl checkpoint \(it has no __header__ entry\)"
    with pytest.raises(CheckpointError, match=re.escape(str(path)) + " " + message) as error:
        load_checkpoint(path)
    assert "allow_pickle" not in str(error.value)


# --------------------------------------------------------------------------- transactional loads

def damaged(state, part, change):
    """A deep copy of trainer ``state`` with ``change(copy)`` applied."""
    copy = pickle.loads(pickle.dumps(state))
    change(copy)
    return copy


def set_key(path, value):
    def change(state):
        target = state
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return change


def drop_key(path):
    def change(state):
        target = state
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
    return change


TRAINER_DAMAGE = {
    "no model": (drop_key(["model"]), r"the trainer state has no 'model'"),
    "model is a list": (set_key(["model"], [1, 2]), r"'model' is a list, expected dict"),
    "epoch is a string": (set_key(["epoch"], "3"), r"'epoch' is a str, expected int"),
    "epoch is a bool": (set_key(["epoch"], True), r"'epoch' is a bool, expected int"),
    "another model (a weight's shape)": (set_key(["model", "5.weight"], numpy.zeros((10, 31))),
                                         r"its model does not fit.*'5\.weight' has shape "
                                         r"\(10, 31\).*expects \(10, 32\)"),
    "another model (a missing layer)": (drop_key(["model", "5.bias"]),
                                        r"its model does not fit.*missing key\(s\): '5\.bias'"),
    "another model (an extra layer)": (set_key(["model", "6.weight"], numpy.zeros(3)),
                                       r"unexpected key\(s\): '6\.weight'"),
    "a weight of strings": (set_key(["model", "5.bias"], numpy.array(["x"] * 10)),
                            r"'5\.bias' has dtype <U1"),
    "a float count": (set_key(["model", "2.num_batches_tracked"], numpy.array(1.5)),
                      r"num_batches_tracked' has dtype float64"),
    "optimizer group count": (set_key(["optimizer", "param_groups"], []),
                              r"its optimizer does not fit.*0 parameter group"),
    "optimizer lr": (set_key(["optimizer", "param_groups", 0, "lr"], "fast"),
                     r"its optimizer does not fit.*lr must be a real number"),
    "momentum of another shape": (set_key(["optimizer", "state", 0, "momentum_buffer"],
                                          numpy.zeros(3)),
                                  r"momentum_buffer'\] has shape \(3,\)"),
    "optimizer state of another optimizer": (set_key(["optimizer", "state", 0],
                                                     {"exp_avg": numpy.zeros(1)}),
                                             r"entries \['exp_avg'\]"),
    "optimizer state a list": (set_key(["optimizer", "state"], [1]), r"a dict 'state'"),
    "schedule keys": (drop_key(["schedule", "T_max"]), r"its schedule does not fit"),
    "schedule value": (set_key(["schedule", "T_max"], "16"), r"'T_max' is '16'"),
    "schedule rates": (set_key(["schedule", "base_lrs"], [0.1]), r"1 base learning rate"),
    "no schedule": (set_key(["schedule"], None), r"without a learning-rate schedule"),
    "loader generator": (set_key(["loader", "bit_generator", "bit_generator"], "MT19937"),
                         r"its loader does not fit.*bit generator MT19937"),
    "loader state": (set_key(["loader", "bit_generator", "state"], {"state": "x"}),
                     r"its loader does not fit.*malformed"),
    "host generator": (set_key(["host_rng", "state"], 5), r"its host_rng does not fit"),
    "totals": (set_key(["totals"], [1.0]), r"its totals does not fit"),
    "history": (set_key(["history"], [1.0]), r"its history does not fit.*one dict per"),
}


@pytest.mark.parametrize("case", TRAINER_DAMAGE)
def test_a_bad_part_of_a_checkpoint_changes_nothing_and_names_the_file_and_part(digits,
                                                                               tmp_path, case):
    source = make_trainer(digits, epochs=1, out_dir=tmp_path / "run")
    source.fit()
    change, message = TRAINER_DAMAGE[case]
    path = tmp_path / "bad.npz"
    save_checkpoint(path, damaged(source.state_dict(), case, change))
    target = make_trainer(digits, epochs=1)
    before = target.state_dict()
    with pytest.raises(CheckpointError, match=re.escape(str(path)) + ": .*" + message):
        target.load_checkpoint(path)
    assert_equal_nested(target.state_dict(), before)


# --------------------------------------------------------------------------- leftovers

KILLED_SAVE = """
import os, signal, sys
import numpy
from minidl import checkpoint

def write_half_then_die(f, arrays):
    f.write(b"PK" + bytes(4096))
    f.flush()
    os.kill(os.getpid(), signal.SIGKILL)

checkpoint._write = write_half_then_die
checkpoint.save_checkpoint(sys.argv[1], {"w": numpy.zeros(3)})
"""


def kill_during_save(path, times=1):
    import subprocess
    for _ in range(times):
        done = subprocess.run([sys.executable, "-c", KILLED_SAVE, str(path)],
                              env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
        assert done.returncode == -signal.SIGKILL


def temporaries(folder):
    return sorted(name for name in os.listdir(folder) if name.endswith(".tmp"))


def test_the_next_save_removes_the_temporary_files_of_killed_saves(tmp_path):
    path = tmp_path / "checkpoint.npz"
    save_checkpoint(path, {"epoch": 1})
    kill_during_save(path, times=3)       # each save removed the one killed before it
    assert len(temporaries(tmp_path)) == 1 and load_checkpoint(path) == {"epoch": 1}
    others = [".checkpoint.npz.short.tmp", ".best.npz.abcdefgh.tmp", "checkpoint.npz.tmp",
              ".checkpoint.npz.ABCDEFGH.tmp"]
    for name in others:      # not temporaries of checkpoint.npz: left alone
        (tmp_path / name).write_text("keep")
    save_checkpoint(path, {"epoch": 2})
    assert temporaries(tmp_path) == sorted(others)
    assert load_checkpoint(path) == {"epoch": 2}


def test_resuming_a_run_removes_the_temporary_files_of_killed_writes(digits, tmp_path):
    trainer = make_trainer(digits, epochs=2, out_dir=tmp_path)
    trainer.epochs = 1
    trainer.fit()
    kill_during_save(tmp_path / "checkpoint.npz")
    (tmp_path / ".log.json.k1ll3d_0.tmp").write_text("{")       # as atomic_write names them
    resumed = make_trainer(digits, epochs=2, out_dir=tmp_path)
    resumed.load_checkpoint(tmp_path / "checkpoint.npz")
    assert temporaries(tmp_path) == [".log.json.k1ll3d_0.tmp"]
    resumed.fit()
    assert temporaries(tmp_path) == []


# --------------------------------------------------------------------------- evaluation losses

@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
@pytest.mark.parametrize("split", ["val", "test"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_a_non_finite_evaluation_loss_stops_the_run(digits, tmp_path, split, bad):
    (x, y), _ = digits
    trainer = make_trainer(digits, epochs=2, out_dir=tmp_path)
    if split == "val":
        trainer.val_loader = DataLoader((x[:64], y[:64]), 32)

    def poison_evaluation(module, inputs, output):
        return output if module.training else output * 0 + bad

    trainer.model.register_forward_hook(poison_evaluation)
    name = "validation" if split == "val" else "test"
    with pytest.raises(TrainingError, match=rf"the {name} loss became (nan|inf) at epoch 1 "
                                            rf"\(training loss \d"):
        trainer.fit()
    assert not (tmp_path / "checkpoint.npz").exists()
