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
and always ``init``, passed to ``minidl.models.create``), ``minidl_version``,
the ``device`` the run trained on, its ``data_dir`` (the data root, absolute,
so that a resumed run finds the same files without being told), and
``lr_sweep`` when :func:`sweep_lr` chose its learning rate.  This module is
the only one that reads or writes that layout; ``minidl train``, ``eval`` and
``diagnose`` call it.  See ``docs/training.md``.
"""
import math
from pathlib import Path

import numpy

from . import __version__, backend, models
from .autograd import Tensor, no_grad
from .checkpoint import CheckpointError, load_checkpoint, naming
from .data import (DATASETS, DataError, DataLoader, DistributedSampler, cache_dir, dataset_info,
                   to_float)
from .data import load as load_dataset
from .data.transforms import (Compose, GlobalContrastNormalization, Normalize, RandomCrop,
                              RandomHorizontalFlip, ZCAWhitening)
from .distributed import DataParallel, get_communicator
from .functional import softmax
from .functional._checks import check_number
from .nn import Module, SyncBatchNorm
from .optim import (SGD, Adam, CosineAnnealingLR, LinearWarmup, MultiStepLR, SequentialLR,
                    weight_decay_groups)
from .train import CHECKPOINT_NAME, Trainer, TrainingError

__all__ = ["DEFAULTS", "ADAM_LR", "CHOSEN_LR", "SWEEP_EPOCHS", "SWEEP_VAL_SPLIT", "sweep_lr",
           "EVAL_BATCH_SIZE", "HYPERPARAMETERS", "MODEL_OVERRIDES", "PREPROCESSING",
           "AUGMENTATIONS",
           "hyperparameters", "run_config", "build_preprocessing", "build_augmentation",
           "build_model", "build_optimizer", "build_schedule", "load_data", "split_validation",
           "load_splits", "build_trainer", "read_run", "restore_model", "restore_preprocessing",
           "TrainedModel", "load_run"]

# Hyper-parameters per data set when none is given.  Learning rates are for SGD with
# momentum; optimizer="adam" without an lr uses ADAM_LR.  digits: a short run on 4,000
# images, so no dropout (it slows the first epochs most); min-small then reaches about
# 98% test accuracy in about 45 s on 2 CPU cores.  preprocess and augment: see
# build_preprocessing and build_augmentation.
DEFAULTS = {
    "digits": dict(epochs=6, batch_size=64, lr=0.1, momentum=0.9, weight_decay=5e-4,
                   optimizer="sgd", schedule="cosine", warmup=0, dropout=0.0,
                   preprocess="per-channel", augment="none"),
    "mnist": dict(epochs=15, batch_size=128, lr=0.1, momentum=0.9, weight_decay=5e-4,
                  optimizer="sgd", schedule="cosine", warmup=1, preprocess="per-channel",
                  augment="none"),
    "cifar10": dict(epochs=100, batch_size=128, lr=0.1, momentum=0.9, weight_decay=5e-4,
                    optimizer="sgd", schedule="cosine", warmup=2, preprocess="gcn-zca",
                    augment="crop-flip"),
    "cifar100": dict(epochs=100, batch_size=128, lr=0.1, momentum=0.9, weight_decay=5e-4,
                     optimizer="sgd", schedule="cosine", warmup=2, preprocess="gcn-zca",
                     augment="crop-flip"),
    "svhn": dict(epochs=30, batch_size=128, lr=0.05, momentum=0.9, weight_decay=5e-4,
                 optimizer="sgd", schedule="cosine", warmup=1, preprocess="per-channel",
                 augment="none"),
}
ADAM_LR = 1e-3
# The SGD learning rate per model on digits when none is given, each chosen on a validation
# split of the training images (never the test images) by
#     minidl train --model MODEL --dataset digits --lr-sweep 0.3,0.1,0.03,0.01
# (sweep_lr: 2 epochs per rate, 20% of every class held out, seed 0, the model's default init;
# the validation accuracies are in docs/models.md).
CHOSEN_LR = {"nin-small": 0.03, "nin-bn-small": 0.1, "maxout-nin-small": 0.03, "mim-small": 0.3,
             "min-small": 0.3}
SWEEP_EPOCHS = 2
SWEEP_VAL_SPLIT = 0.2      # held out for a sweep when the run has no val_split of its own
EVAL_BATCH_SIZE = 500
# the settings of a run besides model and data set, in the order a run config lists them
HYPERPARAMETERS = ("epochs", "batch_size", "lr", "momentum", "weight_decay", "optimizer",
                   "schedule", "warmup", "seed", "limit", "val_split", "preprocess", "augment",
                   "precise_bn")
MODEL_OVERRIDES = ("dropout", "pieces", "init")     # passed to minidl.models.create
OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("cosine", "step", "none")
PREPROCESSING = ("gcn-zca", "per-image", "per-channel")
AUGMENTATIONS = ("none", "crop", "crop-flip")
# mirrored, a digit turns into another shape (or another digit): crop-flip only on these
MIRRORABLE = ("cifar10", "cifar100")


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
    ``preprocess`` is one of :data:`PREPROCESSING` (see
    :func:`build_preprocessing`), ``augment`` one of :data:`AUGMENTATIONS`
    (see :func:`build_augmentation`; crop-flip on CIFAR only).
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
    for key, choices in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES),
                         ("preprocess", PREPROCESSING), ("augment", AUGMENTATIONS)):
        if settings[key] not in choices:
            raise ValueError(f"hyperparameters: {key} must be one of {', '.join(choices)}, "
                             f"got {settings[key]!r}")
    if settings["augment"] == "crop-flip" and dataset not in MIRRORABLE:
        raise ValueError(f"hyperparameters: augment crop-flip mirrors images, which changes "
                         f"what a digit means; for {dataset} use crop or none")

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
    sets ``dropout`` to 0 and, for SGD, the model's :data:`CHOSEN_LR`; the
    model's own defaults hold otherwise, and ``init`` is recorded as the
    model's default (``minidl.models.default_init``) when not given.  The
    model and the overrides are checked as ``minidl.models.create`` does.
    """
    settings = hyperparameters(dataset, **{k: v for k, v in given.items()
                                           if k not in MODEL_OVERRIDES})
    if (dataset == "digits" and given.get("lr") is None and settings["optimizer"] == "sgd"
            and model in CHOSEN_LR):
        settings["lr"] = CHOSEN_LR[model]
    overrides = {key: DEFAULTS[dataset].get(key) if given.get(key) is None else given[key]
                 for key in MODEL_OVERRIDES}
    if overrides["init"] is None:
        overrides["init"] = models.default_init(model)
    overrides = models.check_overrides(model, **{k: v for k, v in overrides.items()
                                                 if v is not None})
    return {"model": model, "dataset": dataset, **settings, "overrides": overrides,
            "minidl_version": __version__}


# ---------------------------------------------------------------------------- building a run

def build_preprocessing(dataset, preprocess=None):
    """The deterministic preprocessing ``preprocess`` (see below), not yet fitted.

    Fitted on the training images and applied once to every split (its fitted
    state goes into the checkpoint).  None stands for the data set's default
    (:data:`DEFAULTS`): gcn-zca for CIFAR, per-channel otherwise.

    * ``gcn-zca``: global contrast normalization of every image (mean 0, L2
      norm 55) then ZCA whitening fitted on the training images, as in the NIN
      paper's CIFAR pipeline (and Goodfellow et al.'s maxout).
    * ``per-image``: every image to mean 0 and standard deviation 1 over its
      own C*H*W values; nothing fitted (the preprocessing attributed to Chang
      & Chen's MIN; not confirmed from their paper's text).
    * ``per-channel``: each channel to mean 0 and standard deviation 1 with
      statistics of the training images.
    """
    preprocess = preprocess or DEFAULTS[dataset]["preprocess"]
    if preprocess == "gcn-zca":
        return Compose([GlobalContrastNormalization(), ZCAWhitening()])
    if preprocess == "per-image":
        return Compose([GlobalContrastNormalization(scale=1.0, use_std=True)])
    if preprocess == "per-channel":
        return Compose([Normalize()])
    raise ValueError(f"build_preprocessing: preprocess must be one of "
                     f"{', '.join(PREPROCESSING)}, got {preprocess!r}")


def build_augmentation(dataset, augment=None):
    """The per-batch augmentation ``augment`` of ``dataset``'s training loader, or None.

    ``crop``: random crops of the image's size out of the image padded by 4;
    ``crop-flip``: the same and a horizontal flip of half the images;
    ``none``: None.  None stands for the data set's default (:data:`DEFAULTS`):
    crop-flip for CIFAR, none for digits, MNIST and SVHN (the papers train
    those without augmentation, and a mirrored digit is another shape).
    """
    augment = augment or DEFAULTS[dataset]["augment"]
    if augment not in AUGMENTATIONS:
        raise ValueError(f"build_augmentation: augment must be one of "
                         f"{', '.join(AUGMENTATIONS)}, got {augment!r}")
    if augment == "none":
        return None
    crop = RandomCrop(dataset_info(dataset)["image_size"], padding=4)
    return Compose([crop, RandomHorizontalFlip()] if augment == "crop-flip" else [crop])


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
                val_split=None, seed=0, test=True, preprocess=None):
    """``(preprocessing, train, val, test)``: the splits, preprocessed, as ``(images, labels)``.

    ``val``: the part of the (first ``limit``) training images that
    :func:`split_validation` holds out with ``val_split`` and ``seed``; None
    without a ``val_split``.  ``test=False``: the test split is not even
    read, and ``test`` is None (what a learning-rate sweep needs).
    ``preprocessing``: an already fitted one (a resumed run's); None builds
    :func:`build_preprocessing` of ``preprocess`` and fits it on the training
    images (without the validation part).
    """
    train = load_data(dataset, "train", root, download, limit)
    val = None
    if val_split is not None:
        train, val = split_validation(*train, val_split, seed)
    if preprocessing is None:
        preprocessing = build_preprocessing(dataset, preprocess)
        preprocessing.fit(train[0])
    test = load_data(dataset, "test", root, download, limit, preprocessing) if test else None
    if val is not None:
        val = (preprocessing(val[0]), val[1])
    return preprocessing, (preprocessing(train[0]), train[1]), val, test


def build_trainer(config, out_dir=None, *, device="cpu", root=None, download=False, state=None,
                  verbose=True, distributed=False, test=True, callbacks=()):
    """A :class:`~minidl.train.Trainer` for run ``config``, ready to ``fit()``.

    Loads and preprocesses the data (from ``root``, downloading with
    ``download``), seeds ``minidl.manual_seed(config["seed"])``, builds the
    model on the host and moves it to ``device``, then the loaders, optimizer
    and schedule.  ``state``: a checkpoint of this run to continue (its
    fitted preprocessing and every piece of training state are restored).
    A ``config`` with more ``epochs`` than the state's extends the run: its
    schedule is rebuilt for the new length and taken to the step reached.
    ``config["device"]`` is set to ``device`` and ``config["data_dir"]`` to
    the absolute data root (``root``, else ``minidl.data.cache_dir()``).
    ``test=False``: the test split is never read and the trainer has no test
    loader.  ``callbacks``: passed to the trainer (before ``state`` is
    restored, so they get their saved state back).  A ``state`` that does not
    fit the run is a CheckpointError.

    ``distributed``: one process of a data-parallel run over
    ``minidl.distributed``'s communicator: the model's batch norms become
    ``SyncBatchNorm`` inside a ``DataParallel``, each process trains on its
    ``DistributedSampler`` shard with ``batch_size / world_size`` images per
    step (``batch_size`` stays the global batch, so the learning rate of the
    recipe applies unchanged), and only rank 0 prints and writes ``out_dir``.
    Every process evaluates the whole test set.
    """
    device = backend.device(device)
    data_dir = str(Path(root if root is not None else cache_dir()).absolute())
    config = dict(config, device=str(device), data_dir=data_dir)
    dataset = config["dataset"]
    fitted = None if state is None else restore_preprocessing(state)
    preprocessing, train, val, test = load_splits(dataset, root, download, config["limit"],
                                                  fitted, config.get("val_split"),
                                                  config["seed"], test, config.get("preprocess"))
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
                              transform=build_augmentation(dataset, config.get("augment")),
                              sampler=sampler)
    optimizer = build_optimizer(model, config)
    trainer = Trainer(model, optimizer, train_loader,
                      val_loader=None if val is None else DataLoader(val, EVAL_BATCH_SIZE),
                      test_loader=None if test is None else DataLoader(test, EVAL_BATCH_SIZE),
                      schedule=build_schedule(optimizer, config, len(train_loader)),
                      epochs=config["epochs"], seed=config["seed"], out_dir=out_dir,
                      config=config, extra_state={"preprocessing": preprocessing.state_dict()},
                      callbacks=callbacks, verbose=verbose,
                      precise_bn=config.get("precise_bn"))
    if state is not None:
        trainer.load_state_dict(state)
        extended = config["epochs"] != trainer.config["epochs"]
        trainer.config.update(device=str(device), epochs=config["epochs"], data_dir=data_dir)
        if extended and trainer.schedule is not None:
            # the longer run's schedule, at the step reached (a schedule is a function of
            # its step count: set it one short and step once to apply the rate)
            trainer.schedule = build_schedule(optimizer, config, len(train_loader))
            trainer.schedule.last_epoch = trainer.global_step - 1
            trainer.schedule.step()
    return trainer


def sweep_lr(config, lrs, epochs=SWEEP_EPOCHS, *, device="cpu", root=None, download=False,
             verbose=True):
    """Run ``config`` with its learning rate chosen on validation data: the config to train.

    Trains ``config`` once per rate of ``lrs`` for ``epochs`` epochs (the
    same schedule shape, warm-up capped below ``epochs``) on the training
    images less a validation part: the run's own ``val_split``, else
    :data:`SWEEP_VAL_SPLIT` (stratified and drawn with the run seed, see
    :func:`split_validation`).  The test split is never read.  The rate of the
    highest validation accuracy after the last epoch wins (the first of
    equals); a rate whose loss diverges scores nothing.  Returns ``config``
    with that ``lr`` and an ``lr_sweep`` record: ``lrs``, ``epochs``,
    ``val_split``, ``results`` (per rate ``lr``, ``val_accuracy``,
    ``val_loss``, None when it diverged) and ``chosen``.  TrainingError when
    every rate diverges.
    """
    lrs = [check_number("sweep_lr", "lrs", lr, low=0, low_open=True, high=math.inf,
                        high_open=True) for lr in lrs]
    if not lrs:
        raise ValueError("sweep_lr: lrs must hold at least one learning rate")
    epochs = check_number("sweep_lr", "epochs", epochs, integer=True, low=1)
    val_split = config["val_split"] or SWEEP_VAL_SPLIT
    trial = dict(config, epochs=epochs, warmup=min(config["warmup"], epochs - 1),
                 val_split=val_split)
    results = []
    for lr in lrs:
        if verbose:
            print(f"lr sweep: lr {lr:g}, {epochs} epochs, validating on {val_split:g} of the "
                  f"training images", flush=True)
        trainer = build_trainer(dict(trial, lr=lr), device=device, root=root, download=download,
                                verbose=verbose, test=False)
        try:
            last = trainer.fit()[-1]
            results.append({"lr": lr, "val_accuracy": last["val_accuracy"],
                            "val_loss": last["val_loss"]})
        except TrainingError:
            results.append({"lr": lr, "val_accuracy": None, "val_loss": None})
    scored = [r for r in results if r["val_accuracy"] is not None]
    if not scored:
        raise TrainingError(f"lr sweep: the loss diverged at every learning rate of "
                            f"{', '.join(map(str, lrs))}; try smaller ones")
    chosen = max(scored, key=lambda r: r["val_accuracy"])["lr"]   # max keeps the first of equals
    return dict(config, lr=chosen, lr_sweep={"lrs": lrs, "epochs": epochs,
                                             "val_split": val_split, "results": results,
                                             "chosen": chosen})


# ---------------------------------------------------------------------------- restoring a run

def read_run(checkpoint):
    """``(path, state, config)`` of ``checkpoint``: a checkpoint file or the run folder holding it.

    ``path`` is the checkpoint file, ``state`` what it holds, ``config`` its run
    config.  CheckpointError, naming the file, when the file is unreadable,
    holds no run config (it is not the checkpoint of a run that
    :func:`build_trainer` set up) or one this minidl cannot build.
    """
    path = Path(checkpoint)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    state = load_checkpoint(path)
    config = state.get("config") if isinstance(state, dict) else None
    if not isinstance(config, dict) or "model" not in config:
        raise CheckpointError(f"{path} has no run config: it was not written by `minidl train`")
    with naming(path):
        _check_config(config)
        for key, kind in (("model", dict), ("extra", dict)):
            if not isinstance(state.get(key), kind):
                raise CheckpointError(f"it has no {key!r} entry (a {kind.__name__}): it was "
                                      f"not written by `minidl train`")
    if config.get("dataset") in DEFAULTS:
        # a run from before preprocess and augment were settings trained with the defaults
        for key in ("preprocess", "augment"):
            config.setdefault(key, DEFAULTS[config["dataset"]][key])
    # and one from before init was a setting with the layers' own (PyTorch's) initialization
    config.setdefault("overrides", {}).setdefault("init", "default")
    return path, state, config


def _check_config(config):
    """CheckpointError unless ``config`` is a run config that :func:`run_config` accepts."""
    overrides = config.get("overrides")
    if not isinstance(overrides, dict) or not all(isinstance(config.get(k), str)
                                                  for k in ("model", "dataset")):
        raise CheckpointError("its run config lacks a model, data set or overrides")
    given = {key: config.get(key) for key in HYPERPARAMETERS}
    try:
        run_config(config["model"], config["dataset"], **given, **overrides)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"its run config is not one this minidl can build: {exc}") from None


def restore_model(state, device="cpu"):
    """The model of a checkpoint ``state``, its weights loaded, on ``device``, in eval mode.

    It expects *preprocessed* input, as it was trained on: apply
    :func:`restore_preprocessing` to raw images first, or use :func:`load_run`,
    whose ``predict`` does both.  CheckpointError when the weights do not fit
    the model as this minidl builds it (another architecture).
    """
    config = state["config"]
    model = build_model(config)
    try:
        model.load_state_dict(state["model"])
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"its weights do not fit the model {config['model']!r} on "
                              f"{config['dataset']} as this minidl builds it (saved by minidl "
                              f"{config.get('minidl_version')}, another architecture?): "
                              f"{exc}") from None
    return model.to(device).eval()


def restore_preprocessing(state):
    """The fitted preprocessing of a checkpoint ``state``: its config's, with the fitted state.

    A checkpoint from before ``preprocess`` was a setting gets its data set's
    default.  CheckpointError when the saved state does not fit the data set's images.
    """
    config = state["config"]
    dataset = config["dataset"]
    preprocessing = build_preprocessing(dataset, config.get("preprocess"))
    info = dataset_info(dataset)
    shape = (1, info["channels"], info["image_size"], info["image_size"])
    try:
        preprocessing.load_state_dict(state["extra"]["preprocessing"])
        # a blank image through it: the saved statistics must fit this data set's images
        if preprocessing(numpy.zeros(shape, numpy.float32)).shape != shape:
            raise ValueError(f"it does not map {shape} images to {shape}")
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise CheckpointError(f"its preprocessing does not fit {dataset}: "
                              f"{type(exc).__name__}: {exc}") from None
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
    with naming(path):
        return TrainedModel(restore_model(state, device), restore_preprocessing(state), config,
                            path).eval()
