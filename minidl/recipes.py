"""Recipes: what to train with per data set, building a run, and restoring one from a checkpoint.

    config = run_config("min-small", "digits", epochs=3)   # the digits defaults, 3 epochs
    trainer = build_trainer(config, out_dir="runs/demo")    # data, model, optimizer, schedule
    trainer.fit()
    ...
    model = load_run("runs/demo")                           # eval mode, preprocessing attached
    classes, probabilities = model.predict(raw_uint8_images)
    path, state, config = read_run("runs/demo")             # a checkpoint and its run config
    network = restore_model(state)                          # expects *preprocessed* input
    x, y = load_data(config["dataset"], "test", preprocessing=restore_preprocessing(state))

A *run config* is the JSON-ready dict that :func:`run_config` returns and the
trainer saves in ``checkpoint.npz`` and ``log.json``: ``model``, ``dataset``,
the :data:`HYPERPARAMETERS`, ``overrides`` (the :data:`MODEL_OVERRIDES` given,
passed to ``minidl.models.create``), ``minidl_version``, and the ``device``
the run trained on.  This module is the only one that reads or writes that
layout; ``minidl train``, ``eval`` and ``diagnose`` call it.  See
``docs/training.md``.
"""
import math
from pathlib import Path

import numpy

from . import __version__, backend, models
from .autograd import Tensor, no_grad
from .checkpoint import CheckpointError, load_checkpoint
from .data import DATASETS, DataError, DataLoader, DistributedSampler, dataset_info, to_float
from .data import load as load_dataset
from .data.transforms import (Compose, GlobalContrastNormalization, Normalize, RandomCrop,
                              RandomHorizontalFlip, ZCAWhitening)
from .distributed import DataParallel, get_communicator
from .functional import softmax
from .functional._checks import check_number
from .nn import Module, SyncBatchNorm
from .optim import (SGD, Adam, CosineAnnealingLR, LinearWarmup, MultiStepLR, SequentialLR,
                    weight_decay_groups)
from .train import CHECKPOINT_NAME, Trainer

__all__ = ["DEFAULTS", "ADAM_LR", "EVAL_BATCH_SIZE", "HYPERPARAMETERS", "MODEL_OVERRIDES",
           "hyperparameters", "run_config", "build_preprocessing", "build_augmentation",
           "build_model", "build_optimizer", "build_schedule", "load_data", "split_validation",
           "load_splits", "build_trainer", "read_run", "restore_model", "restore_preprocessing",
           "TrainedModel", "load_run"]

# Hyper-parameters per data set when none is given.  Learning rates are for SGD with
# momentum; optimizer="adam" without an lr uses ADAM_LR.  digits: a short run on 4,000
# images, so no dropout (it slows the first epochs most); min-small then reaches about
# 98% test accuracy in about 80 s on 2 CPU cores.
DEFAULTS = {
    "digits": dict(epochs=6, batch_size=64, lr=0.1, momentum=0.9, weight_decay=5e-4,
                   optimizer="sgd", schedule="cosine", warmup=0, dropout=0.0),
    "mnist": dict(epochs=15, batch_size=128, lr=0.1, momentum=0.9, weight_decay=5e-4,
                  optimizer="sgd", schedule="cosine", warmup=1),
    "cifar10": dict(epochs=100, batch_size=128, lr=0.1, momentum=0.9, weight_decay=5e-4,
                    optimizer="sgd", schedule="cosine", warmup=2),
    "cifar100": dict(epochs=100, batch_size=128, lr=0.1, momentum=0.9, weight_decay=5e-4,
                     optimizer="sgd", schedule="cosine", warmup=2),
    "svhn": dict(epochs=30, batch_size=128, lr=0.05, momentum=0.9, weight_decay=5e-4,
                 optimizer="sgd", schedule="cosine", warmup=1),
}
ADAM_LR = 1e-3
EVAL_BATCH_SIZE = 500
# the settings of a run besides model and data set, in the order a run config lists them
HYPERPARAMETERS = ("epochs", "batch_size", "lr", "momentum", "weight_decay", "optimizer",
                   "schedule", "warmup", "seed", "limit", "val_split", "precise_bn")
MODEL_OVERRIDES = ("dropout", "pieces")     # passed to minidl.models.create
OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("cosine", "step", "none")


# ---------------------------------------------------------------------------- configs

def hyperparameters(dataset, **given):
    """The :data:`HYPERPARAMETERS` of a run on ``dataset``: its defaults, with ``given`` in.

    A value of None stands for the default.  ``seed`` defaults to 0,
    ``limit`` (use only the first N training and N test images) to None: all
    images, and ``val_split`` (the fraction of the training images held out
    for validation, see :func:`split_validation`) to None: none, and
    ``precise_bn`` (training batches to re-estimate the batch-norm statistics
    over after each epoch, ``Trainer(precise_bn=...)``) to None: none.  ``warmup``
    counts epochs of linear warm-up from lr/10 and must be fewer than ``epochs``.
    """
    if dataset not in DEFAULTS:
        raise ValueError(f"unknown data set {dataset!r}; choose one of {', '.join(DATASETS)}")
    unknown = sorted(set(given) - set(HYPERPARAMETERS))
    if unknown:
        raise ValueError(f"hyperparameters: unknown setting(s) {', '.join(map(repr, unknown))}; "
                         f"valid: {', '.join(HYPERPARAMETERS)}")
    defaults = dict(DEFAULTS[dataset], seed=0, limit=None, val_split=None, precise_bn=None)
    settings = {key: defaults[key] if given.get(key) is None else given[key]
                for key in HYPERPARAMETERS}
    if given.get("lr") is None and settings["optimizer"] == "adam":
        settings["lr"] = ADAM_LR
    for key, choices in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES)):
        if settings[key] not in choices:
            raise ValueError(f"hyperparameters: {key} must be one of {', '.join(choices)}, "
                             f"got {settings[key]!r}")

    def check(key, **limits):
        settings[key] = check_number("hyperparameters", key, settings[key], **limits)

    finite = dict(high=math.inf, high_open=True)
    check("epochs", integer=True, low=1)
    check("batch_size", integer=True, low=1)
    check("lr", low=0, low_open=True, **finite)
    check("momentum", low=0, **finite)
    check("weight_decay", low=0, **finite)
    check("warmup", integer=True, low=0, high=settings["epochs"], high_open=True)
    check("seed", integer=True, low=0)
    for key in ("limit", "precise_bn"):
        if settings[key] is not None:
            check(key, integer=True, low=1)
    if settings["val_split"] is not None:
        check("val_split", low=0, high=1, low_open=True, high_open=True)
    return settings


def run_config(model, dataset, **given):
    """The run config of training ``model`` on ``dataset`` (see the module's docstring).

    ``given``: :data:`HYPERPARAMETERS` (see :func:`hyperparameters`) and
    :data:`MODEL_OVERRIDES`; None stands for the default.  The digits recipe
    sets ``dropout`` to 0; the model's own defaults hold otherwise.  The
    model and the overrides are checked as ``minidl.models.create`` does.
    """
    settings = hyperparameters(dataset, **{k: v for k, v in given.items()
                                           if k not in MODEL_OVERRIDES})
    overrides = {key: DEFAULTS[dataset].get(key) if given.get(key) is None else given[key]
                 for key in MODEL_OVERRIDES}
    overrides = models.check_overrides(model, **{k: v for k, v in overrides.items()
                                                 if v is not None})
    return {"model": model, "dataset": dataset, **settings, "overrides": overrides,
            "minidl_version": __version__}


# ---------------------------------------------------------------------------- building a run

def build_preprocessing(dataset):
    """The deterministic preprocessing of ``dataset``, not yet fitted.

    Fitted on the training images and applied once to every split (its fitted
    state goes into the checkpoint): global contrast normalization + ZCA
    whitening for CIFAR (as in the NIN and MIN papers), per-channel
    standardization otherwise.
    """
    if dataset in ("cifar10", "cifar100"):
        return Compose([GlobalContrastNormalization(), ZCAWhitening()])
    return Compose([Normalize()])


def build_augmentation(dataset):
    """The per-batch augmentation of ``dataset``'s training loader, or None.

    Random 32x32 crops of the image padded by 4 and horizontal flips for
    CIFAR; none for digits, MNIST and SVHN (flipping a digit changes its meaning).
    """
    if dataset in ("cifar10", "cifar100"):
        return Compose([RandomCrop(32, padding=4), RandomHorizontalFlip()])
    return None


def build_model(config):
    """The model of a run config, freshly initialized, on the host, in training mode."""
    return models.create(config["model"], config["dataset"], **config["overrides"])


def build_optimizer(model, config):
    """SGD with momentum or Adam at ``config["lr"]``, weight decay on weights only."""
    groups = weight_decay_groups(model.named_parameters(), config["weight_decay"])
    if config["optimizer"] == "adam":
        return Adam(groups, lr=config["lr"])
    return SGD(groups, lr=config["lr"], momentum=config["momentum"])


def build_schedule(optimizer, config, steps_per_epoch):
    """The run's schedule, in iterations: warm-up from lr/10, then cosine, steps, or constant.

    None for a constant rate without warm-up.  "step" divides the rate by 10
    at half and at three quarters of the steps after the warm-up.
    """
    total = config["epochs"] * steps_per_epoch
    warmup = config["warmup"] * steps_per_epoch
    rest = total - warmup
    if config["schedule"] == "cosine":
        main = CosineAnnealingLR(optimizer, T_max=rest)
    elif config["schedule"] == "step":
        main = MultiStepLR(optimizer, milestones=[rest // 2, (3 * rest) // 4], gamma=0.1)
    else:
        main = None
    if not warmup:
        return main
    ramp = LinearWarmup(optimizer, warmup_steps=warmup, start_factor=0.1)
    if main is None:
        return ramp
    return SequentialLR(optimizer, [ramp, main], milestones=[warmup])


def load_data(dataset, split, root=None, download=False, limit=None, preprocessing=None):
    """A split as ``(images, labels)``: its first ``limit`` images, after ``preprocessing``."""
    images, labels = load_dataset(dataset, root=root, split=split, download=download)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return (images if preprocessing is None else preprocessing(images)), labels


def split_validation(images, labels, fraction, seed=0):
    """``(train, val)``: ``fraction`` of every class held out, drawn with ``seed``.

    Stratified: each class gives ``round(fraction * its count)`` images to
    the validation part, chosen at random by a generator seeded with
    ``seed`` (the run seed), so the split is the same on every resume.  Both
    parts keep the images' order.  DataError when either part would be empty.
    """
    rng = numpy.random.default_rng(seed)
    held = numpy.zeros(len(labels), dtype=bool)
    for label in numpy.unique(labels):
        members = numpy.flatnonzero(labels == label)
        held[rng.permutation(members)[:round(fraction * len(members))]] = True
    if held.all() or not held.any():
        raise DataError(f"val_split {fraction} of {len(labels)} training images leaves "
                         f"{'no training' if held.all() else 'no validation'} images")
    return (images[~held], labels[~held]), (images[held], labels[held])


def load_splits(dataset, root=None, download=False, limit=None, preprocessing=None,
                val_split=None, seed=0):
    """``(preprocessing, train, val, test)``: the splits, preprocessed, as ``(images, labels)``.

    ``val``: the part of the (first ``limit``) training images that
    :func:`split_validation` holds out with ``val_split`` and ``seed``; None
    without a ``val_split``.  ``preprocessing``: an already fitted one (a
    resumed run's); None builds :func:`build_preprocessing` and fits it on
    the training images (without the validation part).
    """
    train = load_data(dataset, "train", root, download, limit)
    val = None
    if val_split is not None:
        train, val = split_validation(*train, val_split, seed)
    if preprocessing is None:
        preprocessing = build_preprocessing(dataset)
        preprocessing.fit(train[0])
    test = load_data(dataset, "test", root, download, limit, preprocessing)
    if val is not None:
        val = (preprocessing(val[0]), val[1])
    return preprocessing, (preprocessing(train[0]), train[1]), val, test


def build_trainer(config, out_dir=None, *, device="cpu", root=None, download=False, state=None,
                  verbose=True, distributed=False):
    """A :class:`~minidl.train.Trainer` for run ``config``, ready to ``fit()``.

    Loads and preprocesses the data (from ``root``, downloading with
    ``download``), seeds ``minidl.manual_seed(config["seed"])``, builds the
    model on the host and moves it to ``device``, then the loaders, optimizer
    and schedule.  ``state``: a checkpoint of this run to continue (its
    fitted preprocessing and every piece of training state are restored).
    A ``config`` with more ``epochs`` than the state's extends the run: its
    schedule is rebuilt for the new length and taken to the step reached.
    ``config["device"]`` is set to ``device``.

    ``distributed``: one process of a data-parallel run over
    ``minidl.distributed``'s communicator: the model's batch norms become
    ``SyncBatchNorm`` inside a ``DataParallel``, each process trains on its
    ``DistributedSampler`` shard with ``batch_size / world_size`` images per
    step (``batch_size`` stays the global batch, so the learning rate of the
    recipe applies unchanged), and only rank 0 prints and writes ``out_dir``.
    Every process evaluates the whole test set.
    """
    device = backend.device(device)
    config = dict(config, device=str(device))
    dataset = config["dataset"]
    fitted = None if state is None else restore_preprocessing(state)
    preprocessing, train, val, test = load_splits(dataset, root, download, config["limit"],
                                                  fitted, config.get("val_split"),
                                                  config["seed"])
    backend.manual_seed(config["seed"])
    model = build_model(config).to(device)
    batch_size, sampler = config["batch_size"], None
    if distributed:
        communicator = get_communicator()
        if batch_size % communicator.size:
            raise ValueError(f"the global batch size {batch_size} does not divide among "
                             f"{communicator.size} processes")
        model = DataParallel(SyncBatchNorm.convert(model))
        sampler = DistributedSampler(train, communicator.size, communicator.rank,
                                     seed=config["seed"])
        batch_size //= communicator.size
        verbose = verbose and communicator.rank == 0
        out_dir = out_dir if communicator.rank == 0 else None
    train_loader = DataLoader(train, batch_size, shuffle=sampler is None, drop_last=False,
                              seed=config["seed"], prefetch=2,
                              transform=build_augmentation(dataset), sampler=sampler)
    optimizer = build_optimizer(model, config)
    trainer = Trainer(model, optimizer, train_loader,
                      val_loader=None if val is None else DataLoader(val, EVAL_BATCH_SIZE),
                      test_loader=DataLoader(test, EVAL_BATCH_SIZE),
                      schedule=build_schedule(optimizer, config, len(train_loader)),
                      epochs=config["epochs"], seed=config["seed"], out_dir=out_dir,
                      config=config, extra_state={"preprocessing": preprocessing.state_dict()},
                      verbose=verbose, precise_bn=config.get("precise_bn"))
    if state is not None:
        trainer.load_state_dict(state)
        extended = config["epochs"] != trainer.config["epochs"]
        trainer.config.update(device=str(device), epochs=config["epochs"])
        if extended and trainer.schedule is not None:
            # the longer run's schedule, at the step reached (a schedule is a function of
            # its step count: set it one short and step once to apply the rate)
            trainer.schedule = build_schedule(optimizer, config, len(train_loader))
            trainer.schedule.last_epoch = trainer.global_step - 1
            trainer.schedule.step()
    return trainer


# ---------------------------------------------------------------------------- restoring a run

def read_run(checkpoint):
    """``(path, state, config)`` of ``checkpoint``: a checkpoint file or the run folder holding it.

    ``path`` is the checkpoint file, ``state`` what it holds, ``config`` its run
    config.  CheckpointError when the file is unreadable or holds no run config
    (it is not the checkpoint of a run that :func:`build_trainer` set up).
    """
    path = Path(checkpoint)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    state = load_checkpoint(path)
    config = state.get("config") or {}
    if "model" not in config:
        raise CheckpointError(f"{path} has no run config: it was not written by `minidl train`")
    return path, state, config


def restore_model(state, device="cpu"):
    """The model of a checkpoint ``state``, its weights loaded, on ``device``, in eval mode.

    It expects *preprocessed* input, as it was trained on: apply
    :func:`restore_preprocessing` to raw images first, or use :func:`load_run`,
    whose ``predict`` does both.
    """
    try:
        model = build_model(state["config"])
    except KeyError as exc:
        raise CheckpointError(f"the checkpoint's config has no {exc}: it was not written by "
                              f"the minidl command") from None
    model.load_state_dict(state["model"])
    return model.to(device).eval()


def restore_preprocessing(state):
    """The fitted preprocessing of a checkpoint ``state``, for its config's data set."""
    preprocessing = build_preprocessing(state["config"]["dataset"])
    preprocessing.load_state_dict(state["extra"]["preprocessing"])
    return preprocessing


class TrainedModel(Module):
    """A trained network with the fitted preprocessing of its run (what :func:`load_run` returns).

    ``model(x)`` runs the network on a *preprocessed* tensor, as the trainer
    did; ``model.predict(images)`` takes raw images.  Attributes: ``network``
    (the trained module), ``preprocessing``, ``config`` (the run config),
    ``info`` (channels, image size and classes of the data set), ``path``.
    """

    def __init__(self, network, preprocessing, config, path=None):
        super().__init__()
        self.network, self.preprocessing, self.config, self.path = (network, preprocessing,
                                                                    config, path)
        self.info = dataset_info(config["dataset"])

    def forward(self, x):
        return self.network(x)

    def prepare(self, images):
        """Raw images as the preprocessed float32 NxCxHxW batch the network takes (host array).

        ``images``: uint8 pixels (0-255), or floats in [0, 1] as
        ``minidl.data.load`` returns them; HxW (one image of a one-channel
        data set), NxHxW (one channel) or CxHxW (several), or NxCxHxW.
        """
        images = numpy.asarray(images)
        if images.dtype == numpy.uint8:
            images = to_float(images)
        elif images.dtype.kind == "f":
            images = images.astype(numpy.float32)
        else:
            raise TypeError(f"predict: images must be uint8 pixels or floats in [0, 1], got "
                            f"dtype {images.dtype}")
        channels, size = self.info["channels"], self.info["image_size"]
        if images.ndim == 2 and channels == 1:
            images = images[None, None]
        elif images.ndim == 3:
            images = images[:, None] if channels == 1 else images[None]
        if images.ndim != 4 or images.shape[1:] != (channels, size, size):
            single = f"{size}x{size}" if channels == 1 else f"{channels}x{size}x{size}"
            raise ValueError(f"predict: images must be {single} or Nx{single} (or "
                             f"Nx{channels}x{size}x{size}) for a model trained on "
                             f"{self.config['dataset']}, got shape {numpy.shape(images)}")
        return self.preprocessing(images)

    def predict(self, images, batch_size=EVAL_BATCH_SIZE):
        """``(classes, probabilities)`` of raw ``images`` (see :meth:`prepare`): host arrays.

        ``classes``: int64 (N,), the class of the largest logit;
        ``probabilities``: float32 (N, classes), the softmax.  N is 1 for a
        single image.  Runs in eval mode under ``no_grad`` on the network's
        device, ``batch_size`` images at a time, and restores the mode.
        """
        x = self.prepare(images)
        batch_size = check_number("predict", "batch_size", batch_size, integer=True, low=1)
        device = next(iter(self.network.parameters())).device
        was_training = self.training
        self.eval()
        classes, probabilities = [], []
        try:
            with no_grad():
                for start in range(0, len(x), batch_size):
                    logits = self(Tensor(backend.to_device(x[start:start + batch_size], device)))
                    classes.append(backend.to_numpy(logits.data.argmax(axis=1)))
                    probabilities.append(softmax(logits, axis=1).numpy())
        finally:
            self.train(was_training)
        return (numpy.concatenate(classes).astype(numpy.int64),
                numpy.concatenate(probabilities))


def load_run(checkpoint, device="cpu"):
    """The trained model of a run, ready for inference: a :class:`TrainedModel` in eval mode.

    ``checkpoint``: a checkpoint file (``checkpoint.npz``, ``best.npz``) or a
    run folder.  The model sits on ``device`` with the run's fitted
    preprocessing attached, so ``load_run(path).predict(raw_images)`` gives
    the same classes as ``minidl eval`` scores.  :func:`read_run` gives the
    checkpoint's whole state instead.
    """
    path, state, config = read_run(checkpoint)
    return TrainedModel(restore_model(state, device), restore_preprocessing(state), config,
                        path).eval()
