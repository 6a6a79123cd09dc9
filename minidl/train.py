"""The training loop: :class:`Trainer` (with its checkpoints and logs) and :func:`evaluate`.

    trainer = Trainer(model, optimizer, train_loader, test_loader=test_loader,
                      schedule=schedule, epochs=10, seed=0, out_dir="run")
    history = trainer.fit()            # one dict per epoch; also run/log.csv, run/log.json
    ...                                # later, or after Ctrl-C:
    trainer.load_checkpoint("run/checkpoint.npz")
    trainer.fit()                      # continues exactly where the checkpoint left off

Device traffic per training step: the batch's images and labels are copied to
the model's device (two copies), and nothing comes back: the label range is
checked on the host before the copy.  The loss and
the number of correct predictions stay on the device; they are copied to the
host together after an epoch's first step, once every ``log_every`` steps
and at the end of an epoch, which is also when a NaN or infinite loss is noticed.

Reproducibility: at the start of epoch ``e`` the global generators are seeded
with ``minidl.manual_seed`` from ``(seed, e)``, and a checkpoint holds every
other source of randomness (the loader's shuffling generator, the host
generator within an epoch).  So on the CPU a run resumed from a checkpoint
ends with the same weights, bit for bit, as a run never interrupted (on the
same machine, BLAS library and thread count: those set the rounding).  On a GPU
that holds at epoch boundaries; within an epoch the device's dropout generator
(whose state CuPy cannot save) restarts from a new seed.

What to train with, and rebuilding a run from its checkpoint, is
``minidl.recipes``.  See ``docs/training.md``.
"""
import contextlib
import csv
import io
import itertools
import json
import math
import os
import signal
import sys
import threading
import time

import numpy

from . import backend
from .autograd import Tensor, no_grad
from .checkpoint import CheckpointError, load_checkpoint, naming, save_checkpoint
from .fileio import atomic_write, remove_stale_temporaries
from .functional import cross_entropy
from .functional._checks import check_number
from .functional.loss import check_label_range
from .nn.utils import update_bn_stats
from .plots import plot_training_curves
from .progress import progress

__all__ = ["Trainer", "evaluate", "TrainingError", "TrainingInterrupted", "CHECKPOINT_NAME",
           "BEST_NAME", "CURVES_NAME"]

CHECKPOINT_NAME = "checkpoint.npz"
BEST_NAME = "best.npz"                  # the epoch of highest validation accuracy
CURVES_NAME = "training_curves.png"
RUN_FILES = (CHECKPOINT_NAME, BEST_NAME, "log.csv", "log.json", CURVES_NAME)   # in out_dir
LOG_FIELDS = ("epoch", "global_step", "lr", "train_loss", "train_accuracy", "val_loss",
              "val_accuracy", "test_loss", "test_accuracy", "time_s")


class TrainingError(RuntimeError):
    """Training cannot go on: the training, validation or test loss became NaN or infinite."""


# the plain entries of a trainer state and the types they must have
_STATE_KINDS = {"model": (dict,), "optimizer": (dict,), "schedule": (dict, type(None)),
                "epoch": (int,), "step_in_epoch": (int,), "global_step": (int,),
                "epochs": (int,), "seed": (int,), "loader": (dict,), "host_rng": (dict,),
                "totals": (list,), "history": (list,), "config": (dict,), "extra": (dict,)}


@contextlib.contextmanager
def _part(name):
    """Turn the ValueError or TypeError of checking part ``name`` into a CheckpointError."""
    try:
        yield
    except (ValueError, TypeError, KeyError) as exc:
        raise CheckpointError(f"its {name} does not fit this trainer: {exc}") from None


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped :meth:`Trainer.fit`; ``checkpoint`` is the file to resume from (or None)."""

    def __init__(self, message, checkpoint):
        super().__init__(message)
        self.checkpoint = checkpoint


def _model_device(model):
    first = next(iter(model.parameters()), None)
    return first.device if first is not None else backend.Device("cpu")


def _to_device(images, labels, device):
    """One batch as tensors on ``device``: one copy of each array."""
    return Tensor(backend.to_device(images, device)), Tensor(backend.to_device(labels, device))


def _count_correct(logits, labels):
    """The number of rows whose largest logit is the label's, as a device scalar."""
    return (logits.argmax(axis=1) == labels).sum()


def _read_back(losses, corrects):
    """Copy lists of device scalars to the host in one transfer: two float64 arrays."""
    xp = backend.get_array_module(losses[0])
    packed = xp.stack([xp.stack(losses).astype(xp.float64),
                       xp.stack(corrects).astype(xp.float64)])
    host = backend.to_numpy(packed)
    return host[0], host[1]


def evaluate(model, loader, device=None):
    """Mean cross-entropy loss and accuracy (a fraction) of ``model`` over ``loader``.

    Runs in evaluation mode under ``no_grad`` and restores the model's mode
    afterwards.  Per-batch results stay on the device and are copied to the
    host once, at the end.
    """
    device = device if device is not None else _model_device(model)
    was_training = model.training
    model.eval()
    losses, corrects, sizes = [], [], []
    try:
        with no_grad():
            for images, labels in loader:
                x, y = _to_device(images, labels, device)
                logits = model(x)
                check_label_range(labels, logits.shape[1])
                losses.append(cross_entropy(logits, y, check_labels=False).data)
                corrects.append(_count_correct(logits.data, y.data))
                sizes.append(len(labels))
    finally:
        model.train(was_training)
    if not sizes:
        raise ValueError("evaluate: the loader yielded no batches")
    losses, corrects = _read_back(losses, corrects)
    total = sum(sizes)
    return float(numpy.dot(losses, sizes) / total), float(corrects.sum() / total)


def _epoch_seed(seed, epoch):
    """The seed of epoch ``epoch``: independent streams for every (seed, epoch) pair."""
    return int(numpy.random.SeedSequence([seed, epoch]).generate_state(1, numpy.uint64)[0])


class _InterruptFlag:
    requested = False


@contextlib.contextmanager
def _deferred_interrupts():
    """Turn the first Ctrl-C into a flag, checked after each step; a second one stops at once.

    Only where Python's default SIGINT handler is in place in the main thread:
    elsewhere (a worker thread, a program with its own handler) Ctrl-C raises
    KeyboardInterrupt as usual.
    """
    flag = _InterruptFlag()
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield flag
        return

    def handler(signum, frame):
        if flag.requested:
            raise KeyboardInterrupt
        flag.requested = True
        print("\nCtrl-C: stopping after this step to save a checkpoint "
              "(press Ctrl-C again to stop at once, without saving)", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


class Trainer:
    """Train ``model`` with ``optimizer`` over ``train_loader`` for ``epochs`` epochs.

    schedule: a learning-rate scheduler stepped after every optimizer step
        (so build it in iterations: ``T_max = epochs * len(train_loader)``).
    val_loader: evaluated after every epoch (validation loss and accuracy in
        the log); the epoch of highest validation accuracy is saved to
        ``best.npz`` too.
    test_loader: evaluated after every epoch without a ``val_loader``, after
        the last epoch only with one (test loss and accuracy in the log).
    seed: the run seed (a non-negative int); epoch ``e`` starts with
        ``minidl.manual_seed`` of a seed derived from ``(seed, e)``.
    out_dir: where ``checkpoint.npz`` (every epoch, and on Ctrl-C), ``log.csv``,
        ``log.json`` and, with matplotlib installed, ``training_curves.png`` go;
        None writes nothing.
    log_every: how many steps between copies of the loss to the host (the
        progress bar's running numbers and the NaN check).
    config: JSON-ready facts about the run (model name, data set, hyper-parameters),
        saved in the checkpoint and ``log.json``.
    extra_state: more state for the checkpoint only (e.g. fitted preprocessing arrays).
    callbacks: objects told about the run, each with any of the methods
        ``on_fit_start(trainer)`` (each ``fit()``, before its first step),
        ``on_epoch_end(trainer)`` (after an epoch's record joins ``history``,
        before the checkpoint and logs are written), and ``state_dict()`` /
        ``load_state_dict(state)``, whose state goes into the checkpoint under
        the callback's class name (so a resumed run keeps it); e.g.
        :class:`minidl.diagnostics.RegionTracker`.
    verbose: print a progress bar and one line per epoch.
    precise_bn: at the end of every epoch, before evaluating, re-estimate the
        batch-norm running statistics over this many training batches with the
        epoch's final weights (``minidl.nn.utils.update_bn_stats``); None: no.
        The weights train as without it.

    The model must already be on its device; batches go to the device of its
    first parameter.
    """

    def __init__(self, model, optimizer, train_loader, *, val_loader=None, test_loader=None,
                 schedule=None, epochs=1, seed=0, out_dir=None, log_every=20, config=None,
                 extra_state=None, callbacks=(), verbose=True, precise_bn=None):
        seed = check_number("Trainer", "seed", seed, integer=True, low=0)
        epochs = check_number("Trainer", "epochs", epochs, integer=True, low=1)
        log_every = check_number("Trainer", "log_every", log_every, integer=True, low=1)
        if precise_bn is not None:
            precise_bn = check_number("Trainer", "precise_bn", precise_bn, integer=True, low=1)
        self.model, self.optimizer, self.schedule = model, optimizer, schedule
        self.train_loader, self.val_loader, self.test_loader = (train_loader, val_loader,
                                                                test_loader)
        self.epochs, self.seed, self.log_every = epochs, seed, log_every
        self.out_dir = None if out_dir is None else os.fspath(out_dir)
        self.config = dict(config or {})
        self.extra_state = dict(extra_state or {})
        self.verbose = verbose
        self.callbacks = list(callbacks)
        stateful = [type(c).__name__ for c in self.callbacks if hasattr(c, "state_dict")]
        if len(set(stateful)) < len(stateful):
            raise ValueError(f"Trainer: callbacks with a state must be of different classes "
                             f"(their states are saved by class name), got {stateful}")
        self.precise_bn = precise_bn
        self.device = _model_device(model)
        self.epoch = 0            # the epoch in progress, counted from 0
        self.step_in_epoch = 0    # steps of that epoch already done
        self.global_step = 0
        self.history = []         # one dict per finished epoch (LOG_FIELDS)
        self._totals = [0.0, 0.0, 0]        # this epoch: sum of losses * sizes, correct, seen
        self._epoch_loader_state = None     # the loader's state when this epoch began
        self._host_rng_state = None         # set by load_state_dict for a mid-epoch resume
        self._step_lr = None                # the learning rate of the last step taken

    @property
    def checkpoint_path(self):
        return None if self.out_dir is None else os.path.join(self.out_dir, CHECKPOINT_NAME)

    # ------------------------------------------------------------------ the loop
    def fit(self):
        """Train until ``epochs`` epochs are done; return the history (one dict per epoch).

        Raises TrainingError when the training loss, or a validation or test
        loss after an epoch, becomes NaN or infinite, and
        TrainingInterrupted (a KeyboardInterrupt) after Ctrl-C, once the
        checkpoint of the last completed step is written.
        """
        if self.out_dir is not None:
            os.makedirs(self.out_dir, exist_ok=True)
            for name in RUN_FILES:      # what a killed write of an earlier session left
                remove_stale_temporaries(os.path.join(self.out_dir, name))
        self._notify("on_fit_start")
        with _deferred_interrupts() as interrupt:
            try:
                while self.epoch < self.epochs:
                    self._run_epoch(interrupt)
                    if interrupt.requested and self.epoch < self.epochs:
                        raise self._stop()
            except TrainingInterrupted:
                raise
            except KeyboardInterrupt:
                raise self._interrupted_mid_step() from None
        return self.history

    def _run_epoch(self, interrupt):
        started = time.perf_counter()
        if self.step_in_epoch == 0:
            backend.manual_seed(_epoch_seed(self.seed, self.epoch))
            self._epoch_loader_state = self.train_loader.state_dict()
            self._totals = [0.0, 0.0, 0]
        else:   # resuming mid-epoch: replay the epoch's batch order, skip the batches done
            backend.manual_seed(_epoch_seed(self.seed, self.epoch))
            backend.host_rng().bit_generator.state = self._host_rng_state
            self.train_loader.load_state_dict(self._epoch_loader_state)
        batches = itertools.islice(iter(self.train_loader), self.step_in_epoch, None)
        bar = progress(total=len(self.train_loader), desc=f"epoch {self.epoch + 1}/{self.epochs}",
                       disable=not self.verbose)
        bar.update(self.step_in_epoch)
        window = ([], [], [])     # device losses, device correct counts, batch sizes
        speed = (started, self._totals[2])     # for images/s: the time and count we began at
        self.model.train()
        try:
            for images, labels in batches:
                self._step(images, labels, window)
                # the first step is copied back at once, so the bar shows a loss from the start
                if (len(window[0]) == self.log_every or self.step_in_epoch == 1
                        or interrupt.requested):
                    self._flush(window, bar, speed)
                bar.update()      # after the flush: a bar drawn now shows the new numbers
                if interrupt.requested:
                    raise self._stop()
            self._flush(window, bar, speed)
        finally:
            bar.close()
        self._end_epoch(time.perf_counter() - started)

    def _step(self, images, labels, window):
        x, y = _to_device(images, labels, self.device)
        logits = self.model(x)
        check_label_range(labels, logits.shape[1])          # on the host: no device sync
        loss = cross_entropy(logits, y, check_labels=False)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self._step_lr = self.optimizer.param_groups[0]["lr"]
        if self.schedule is not None:
            self.schedule.step()
        window[0].append(loss.data)
        window[1].append(_count_correct(logits.data, y.data))
        window[2].append(len(labels))
        self.step_in_epoch += 1
        self.global_step += 1

    def _flush(self, window, bar, speed):
        """Copy the window's losses to the host, check them, add them to the epoch's totals.

        The bar then shows the epoch's running loss and accuracy, the learning
        rate of the last step and the images per second since ``speed``, a
        ``(perf_counter time, images seen)`` pair.
        """
        losses, corrects, sizes = window
        if not losses:
            return
        losses, corrects = _read_back(losses, corrects)
        bad = numpy.flatnonzero(~numpy.isfinite(losses))
        if bad.size:
            step = self.step_in_epoch - len(losses) + int(bad[0]) + 1
            raise TrainingError(
                f"the loss became {losses[bad[0]]} at epoch {self.epoch + 1}, step {step} "
                f"(global step {self.global_step - len(losses) + int(bad[0]) + 1}); training "
                f"stopped without saving. Lower the learning rate (it was "
                f"{self.optimizer.param_groups[0]['lr']:.4g}) or check the data")
        self._totals[0] += float(numpy.dot(losses, sizes))
        self._totals[1] += float(corrects.sum())
        self._totals[2] += sum(sizes)
        for part in window:
            part.clear()
        started, seen = speed
        rate = (self._totals[2] - seen) / max(time.perf_counter() - started, 1e-9)
        bar.set_postfix(loss=self._totals[0] / self._totals[2],
                        acc=f"{100 * self._totals[1] / self._totals[2]:.1f}%",
                        lr=f"{self._step_lr:.3g}", **{"img/s": f"{rate:.0f}"})

    def _end_epoch(self, seconds):
        loss_sum, correct, seen = self._totals
        # the rate the epoch's last step used (the optimizer's is the next step's: 0 at the end)
        record = {"epoch": self.epoch + 1, "global_step": self.global_step,
                  "lr": float(self._step_lr),
                  "train_loss": loss_sum / seen, "train_accuracy": correct / seen,
                  "val_loss": None, "val_accuracy": None, "test_loss": None,
                  "test_accuracy": None}
        if self.precise_bn is not None:
            # the loader's generator orders (and augments) the next epoch: put it back, so
            # that precise BN changes the running statistics and nothing else
            loader_state = self.train_loader.state_dict()
            update_bn_stats(self.model, self.train_loader, batches=self.precise_bn)
            self.train_loader.load_state_dict(loader_state)
        if self.val_loader is not None:
            record["val_loss"], record["val_accuracy"] = evaluate(self.model, self.val_loader,
                                                                  self.device)
        last = self.epoch + 1 == self.epochs
        if self.test_loader is not None and (self.val_loader is None or last):
            record["test_loss"], record["test_accuracy"] = evaluate(self.model, self.test_loader,
                                                                    self.device)
        for split in ("val", "test"):
            loss = record[f"{split}_loss"]
            if loss is not None and not math.isfinite(loss):
                raise TrainingError(
                    f"the {'validation' if split == 'val' else 'test'} loss became {loss} at "
                    f"epoch {self.epoch + 1} (training loss {record['train_loss']:.4g}); "
                    f"training stopped without saving. Lower the learning rate (it was "
                    f"{self._step_lr:.4g}) or check the data")
        record["time_s"] = round(seconds, 3)
        self.history.append(record)
        self.epoch += 1
        self.step_in_epoch = 0
        self._epoch_loader_state = self.train_loader.state_dict()   # the next epoch's start
        if self.verbose:
            print(_format_record(record, self.epochs), flush=True)
        self._notify("on_epoch_end")
        if self.out_dir is not None:
            self.save_checkpoint()
            if self.best_epoch() == record["epoch"]:
                self.save_checkpoint(os.path.join(self.out_dir, BEST_NAME))
            self.write_logs()

    def _notify(self, event):
        for callback in self.callbacks:
            if hasattr(callback, event):
                getattr(callback, event)(self)

    def best_epoch(self):
        """The finished epoch (from 1) of highest validation accuracy, the first of ties; or None."""
        scored = [r for r in self.history if r.get("val_accuracy") is not None]
        if not scored:
            return None
        return max(scored, key=lambda r: r["val_accuracy"])["epoch"]

    def _stop(self):
        """Save a checkpoint of the last completed step and make the exception to stop with.

        The trainer keeps that state too, so calling ``fit()`` again goes on from there.
        """
        self._host_rng_state = backend.host_rng().bit_generator.state
        path = self.save_checkpoint()
        where = f"checkpoint saved to {path}" if path else "no checkpoint saved (no out_dir)"
        if self.step_in_epoch:
            when = (f"at epoch {self.epoch + 1}, step {self.step_in_epoch} of "
                    f"{len(self.train_loader)}")
        else:
            when = f"after epoch {self.epoch}"
        return TrainingInterrupted(f"training interrupted {when}; {where}", path)

    def _interrupted_mid_step(self):
        done = len(self.history)
        path = self.checkpoint_path
        if path is not None and done and os.path.isfile(path):
            where = f"the checkpoint {path} holds the end of epoch {done}"
        else:
            where = "no checkpoint was written"
            path = None
        return TrainingInterrupted(f"training interrupted in the middle of a step of epoch "
                                   f"{self.epoch + 1}; {where} (this trainer's state is "
                                   f"half-updated: load a checkpoint before fit())", path)

    # ------------------------------------------------------------------ state
    def state_dict(self):
        """Everything needed to continue the run: model, optimizer, schedule, counters, generators.

        Between steps only: ``step_in_epoch`` steps of epoch ``epoch`` are done,
        and the loader state is the one the epoch began with.
        """
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": None if self.schedule is None else self.schedule.state_dict(),
            "epoch": self.epoch, "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step, "epochs": self.epochs, "seed": self.seed,
            "loader": self._epoch_loader_state or self.train_loader.state_dict(),
            "host_rng": backend.host_rng().bit_generator.state,
            "totals": list(self._totals),
            "history": self.history,
            "config": self.config,
            "extra": self.extra_state,
            "callbacks": {type(c).__name__: c.state_dict() for c in self.callbacks
                          if hasattr(c, "state_dict")},
        }

    def load_state_dict(self, state):
        """Restore a state from :meth:`state_dict`; the next ``fit()`` continues from it.

        All or nothing: the model, optimizer, schedule and loader parts and the
        counters are all checked before any is assigned, so after an error
        (a CheckpointError naming the part) the trainer is as it was.
        ``epochs`` stays this trainer's own, so a finished run can be extended.
        """
        self._check_state(state)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.schedule is not None:
            self.schedule.load_state_dict(state["schedule"])
        self.train_loader.load_state_dict(state["loader"])
        self._epoch_loader_state = state["loader"]
        self._host_rng_state = state["host_rng"]
        self.epoch, self.step_in_epoch = state["epoch"], state["step_in_epoch"]
        self.global_step, self.seed = state["global_step"], state["seed"]
        self._totals = list(state["totals"])
        self.history = list(state["history"])
        self.config = dict(state["config"])
        self.extra_state = dict(state["extra"])
        # a checkpoint of a run without callbacks (or of an older minidl) has none to restore
        saved = state.get("callbacks", {})
        for callback in self.callbacks:
            if hasattr(callback, "load_state_dict") and type(callback).__name__ in saved:
                callback.load_state_dict(saved[type(callback).__name__])

    def _check_state(self, state):
        """Check every part of ``state``, changing nothing; CheckpointError names a bad part."""
        if not isinstance(state, dict):
            raise CheckpointError(f"a trainer state is a dict, got {type(state).__name__}")
        missing = [key for key in _STATE_KINDS if key not in state]
        if missing:
            raise CheckpointError(f"the trainer state has no {', '.join(map(repr, missing))} "
                                  f"(it was not saved by Trainer.save_checkpoint)")
        for key, kinds in _STATE_KINDS.items():
            if not isinstance(state[key], kinds) or isinstance(state[key], bool):
                names = " or ".join(k.__name__ for k in kinds)
                raise CheckpointError(f"the trainer state's {key!r} is a "
                                      f"{type(state[key]).__name__}, expected {names}")
        if (self.schedule is None) != (state["schedule"] is None):
            raise CheckpointError("the checkpoint was saved " + (
                "without a learning-rate schedule, but this trainer has one"
                if self.schedule is not None else
                "with a learning-rate schedule, but this trainer has none"))
        with _part("model"):
            self.model._checked_state(state["model"])
        with _part("optimizer"):
            self.optimizer._checked_state(state["optimizer"])
        if self.schedule is not None:
            with _part("schedule"):
                self.schedule._check_state_dict(state["schedule"])
        with _part("loader"):
            self.train_loader._checked_state(state["loader"])
        with _part("host_rng"):
            type(backend.host_rng().bit_generator)().state = state["host_rng"]
        with _part("totals"):
            if len(state["totals"]) != 3:
                raise ValueError(f"expected [loss sum, correct, seen], got {state['totals']!r}")
        with _part("history"):
            if not all(isinstance(record, dict) for record in state["history"]):
                raise ValueError("expected one dict per finished epoch")
        with _part("callbacks"):
            saved = state.get("callbacks", {})
            if not (isinstance(saved, dict) and all(isinstance(v, dict) for v in saved.values())):
                raise ValueError("expected a dict of one state dict per callback class")
            for callback in self.callbacks:
                check = getattr(callback, "_checked_state", None)
                if check is not None and type(callback).__name__ in saved:
                    check(saved[type(callback).__name__])

    def save_checkpoint(self, path=None):
        """Write :meth:`state_dict` atomically to ``path`` (default: out_dir/checkpoint.npz).

        Temporary files a killed earlier save to ``path`` left are removed first.
        """
        path = path if path is not None else self.checkpoint_path
        if path is None:
            return None
        save_checkpoint(path, self.state_dict())
        return path

    def load_checkpoint(self, path):
        """Restore the state saved in checkpoint file ``path``; returns the state read.

        CheckpointError names the file and what is wrong; the trainer is then
        unchanged.  Temporary files a killed save to ``path`` left are removed.
        """
        state = load_checkpoint(path)
        with naming(path):
            self.load_state_dict(state)
        remove_stale_temporaries(path)
        return state

    def write_logs(self):
        """Write ``log.csv`` (a row per epoch) and ``log.json`` (config, history) atomically.

        With matplotlib installed, ``training_curves.png`` too (loss and accuracy per epoch).
        """
        rows = io.StringIO()
        writer = csv.DictWriter(rows, fieldnames=LOG_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in r.items()}
                         for r in self.history)
        log = json.dumps({"config": self.config, "history": self.history}, indent=1)
        atomic_write(os.path.join(self.out_dir, "log.csv"),
                     lambda f: f.write(rows.getvalue().encode()))
        atomic_write(os.path.join(self.out_dir, "log.json"), lambda f: f.write(log.encode()))
        metrics = [m for m in ("train_loss", "val_loss", "train_accuracy", "val_accuracy",
                               "test_accuracy")
                   if any(r.get(m) is not None for r in self.history)]
        try:
            plot_training_curves({self.config.get("model", "run"): self.history},
                                 os.path.join(self.out_dir, CURVES_NAME), metrics=metrics)
        except ImportError:     # matplotlib is optional: the logs hold the same numbers
            pass


def _format_record(record, epochs):
    text = (f"epoch {record['epoch']}/{epochs}  train loss {record['train_loss']:.4f}  "
            f"train acc {100 * record['train_accuracy']:.1f}%")
    for split in ("val", "test"):
        if record.get(f"{split}_accuracy") is not None:
            text += (f"  {split} loss {record[f'{split}_loss']:.4f}  "
                     f"{split} acc {100 * record[f'{split}_accuracy']:.1f}%")
    return text + f"  lr {record['lr']:.3g}  {record['time_s']:.1f}s"
