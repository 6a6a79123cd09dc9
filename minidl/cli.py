"""The ``minidl`` command (also ``python -m minidl``): train, eval, predict, models, diagnose.

    minidl train --model min-small --dataset digits       # a good run with the defaults
    minidl train --resume runs/min-small-digits           # continue an interrupted run
    minidl train --resume runs/min-small-digits --epochs 8   # extend a finished run
    minidl train --model nin-small --dataset digits --track-regions   # regions every epoch
    minidl eval runs/min-small-digits/checkpoint.npz
    minidl predict runs/min-small-digits digit.png more.npy   # class and probability each
    minidl models
    minidl diagnose runs/min-small-digits                 # linear-region statistics + plots

Each subcommand is a :class:`Command` in :data:`COMMANDS`: a name, a help
line, a function adding its arguments to an ``argparse`` parser, and a
function running it with the parsed arguments (returning the exit status, or
None for 0).  A run function reports a problem of the user's input by
raising :class:`CommandError` (or ``DataError`` / ``CheckpointError``):
``main`` prints it as one line on stderr and exits with status 2, as it does
for a diverged run (``TrainingError``) and for an ``OSError`` (a file that
cannot be read or written, a full disk); argparse's own errors are one line
too.  Any other exception is a bug in minidl: ``main`` prints its traceback
and a line asking to report it, and exits with status 1.
"""
import argparse
import contextlib
import errno
import json
import math
import os
import shlex
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Callable, NamedTuple

import numpy

from . import __version__, backend, diagnostics, distributed, models, plots, recipes
from .checkpoint import CheckpointError, naming
from .data import DATASETS, DataError, DataLoader, dataset_info, read_array, read_images
from .functional._checks import check_number
from .tables import format_table
from .train import BEST_NAME, CHECKPOINT_NAME, TrainingError, TrainingInterrupted, evaluate

__all__ = ["main", "Command", "COMMANDS", "CommandError"]


class CommandError(Exception):
    """A problem with what the user asked for: printed as one line, exit status 2."""


class Command(NamedTuple):
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], "int | None"]


# the training flags that define a run: saved in its config, fixed when resuming (but
# --epochs, which may grow to extend a run)
RUN_FLAGS = ("model", "dataset") + recipes.HYPERPARAMETERS
# what --threads sets when threadpoolctl is missing: read by the BLAS libraries as NumPy loads
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
TRACK_IMAGES = 500          # --track-regions without a number
REGIONS_PLOT = "regions.png"


def _per_dataset(key):
    """A help text's default of hyper-parameter ``key``: one value, or one per data set."""
    values = {name: recipes.DEFAULTS[name][key] for name in recipes.DEFAULTS}
    if len(set(values.values())) == 1:
        return f"(default: {values['digits']})"
    return "(default per data set: " + ", ".join(f"{k} {v}" for k, v in values.items()) + ")"


# ---------------------------------------------------------------------------- train

def _train_arguments(parser):
    run = parser.add_argument_group("the run (defaults per data set: see docs/training.md)")
    run.add_argument("--model", metavar="NAME", help="model name: " + ", ".join(models.available()))
    run.add_argument("--dataset", metavar="NAME", help="data set: " + ", ".join(DATASETS))
    run.add_argument("--epochs", type=_positive_int,
                     help="number of epochs; on --resume, a larger number extends the run "
                          + _per_dataset("epochs"))
    run.add_argument("--batch-size", type=_positive_int,
                     help="training batch size " + _per_dataset("batch_size"))
    run.add_argument("--optimizer", choices=recipes.OPTIMIZERS,
                     help="optimizer " + _per_dataset("optimizer"))
    run.add_argument("--lr", type=_positive_float,
                     help=f"peak learning rate {_per_dataset('lr')[:-1]}, but on digits a "
                          f"model's recipes.CHOSEN_LR where it has one; adam: "
                          f"{recipes.ADAM_LR})")
    run.add_argument("--momentum", type=_nonnegative_float,
                     help="SGD momentum " + _per_dataset("momentum"))
    run.add_argument("--weight-decay", type=_nonnegative_float,
                     help="L2 weight decay on weights (never on biases or batch-norm "
                          "parameters) " + _per_dataset("weight_decay"))
    run.add_argument("--schedule", choices=recipes.SCHEDULES,
                     help="learning-rate schedule, stepped every iteration "
                          + _per_dataset("schedule"))
    run.add_argument("--warmup", type=_nonnegative_int, metavar="EPOCHS",
                     help="epochs of linear warm-up from lr/10 before the schedule "
                          + _per_dataset("warmup"))
    run.add_argument("--seed", type=_nonnegative_int, help="run seed (default: 0)")
    run.add_argument("--dropout", type=_probability,
                     help="model dropout probability (default: 0 on digits, the model's "
                          "own, 0.5, elsewhere)")
    run.add_argument("--pieces", type=_positive_int,
                     help="maxout pieces (maxout models; default: the model's)")
    run.add_argument("--init", choices=models.initialization.SCHEMES,
                     help="weight initialization (default: the model's source's; see "
                          "docs/models.md)")
    run.add_argument("--lr-sweep", type=_rates, metavar="LR,LR,...",
                     help="first train each of these learning rates for --sweep-epochs on a "
                          "validation split held out of the training images (--val-split, "
                          f"else {recipes.SWEEP_VAL_SPLIT}; never the test images), then the "
                          "run with the best; the results go into the run's config")
    run.add_argument("--sweep-epochs", type=_positive_int, metavar="EPOCHS",
                     help=f"epochs per learning rate of --lr-sweep (default: "
                          f"{recipes.SWEEP_EPOCHS})")
    run.add_argument("--limit", type=_positive_int, metavar="N",
                     help="use only the first N training and N test images (quick trials; "
                          "default: all)")
    run.add_argument("--preprocess", choices=recipes.PREPROCESSING,
                     help="gcn-zca: global contrast normalization + ZCA whitening fitted on the "
                          "training images (maxout, NIN); per-image: each image to mean 0, std "
                          "1; per-channel: each channel to mean 0, std 1 "
                          + _per_dataset("preprocess"))
    run.add_argument("--augment", choices=recipes.AUGMENTATIONS,
                     help="per-batch augmentation: random crops of the image padded by 4 "
                          "(crop), and horizontal flips (crop-flip: CIFAR only) "
                          + _per_dataset("augment"))
    run.add_argument("--val-split", type=_fraction, metavar="FRACTION",
                     help="hold out this fraction of every class of the training images "
                          "(seeded by --seed) to validate on after each epoch, keep the best "
                          "epoch in best.npz and test only after the last epoch (default: "
                          "none; test after every epoch)")
    run.add_argument("--track-regions", nargs="?", type=_positive_int, const=TRACK_IMAGES,
                     metavar="N",
                     help="measure every ReLU/maxout layer's degenerate share, entropy and "
                          "conditioning on N training images (seeded by --seed; "
                          f"{TRACK_IMAGES} without N) before training and after every epoch, "
                          f"into {diagnostics.REGIONS_NAME} and, with matplotlib, "
                          f"{REGIONS_PLOT} (a resumed run that tracked goes on tracking; "
                          "default: off)")
    run.add_argument("--precise-bn", type=_positive_int, metavar="N",
                     help="after each epoch, re-estimate the batch-norm running statistics "
                          "over N training batches with the final weights, before evaluating "
                          "(docs/batch_norm.md; default: off)")
    where = parser.add_argument_group("where")
    where.add_argument("--out", type=Path, metavar="DIR",
                       help="output folder for checkpoint.npz, log.csv, log.json and "
                            "training_curves.png (default: runs/MODEL-DATASET, numbered when "
                            "taken)")
    where.add_argument("--resume", nargs="?", const="", metavar="PATH",
                       help="continue the run saved in PATH (a run folder or checkpoint); "
                            "without PATH: --out, else the latest runs/MODEL-DATASET folder")
    _device_and_data_arguments(parser)
    scale = parser.add_argument_group("data-parallel (docs/distributed.md)")
    scale.add_argument("--distributed", action="store_true",
                       help="be one process of `mpirun -n P minidl train ...`: --batch-size is "
                            "the global batch, split over the P processes")
    scale.add_argument("--nproc", type=_positive_int, metavar="P",
                       help="start P processes with this environment's mpirun (--distributed)")


def _device_and_data_arguments(parser):
    _device_arguments(parser)
    _data_arguments(parser)


def _device_arguments(parser):
    parser.add_argument("--device",
                        help="cpu, cuda or cuda:N (default: $MINIDL_DEVICE, else cpu)")
    parser.add_argument("--threads", type=_positive_int, metavar="N",
                        help="use at most N CPU threads for NumPy's matrix products and "
                             "minidl's elementwise passes (default: all cores)")


def _data_arguments(parser):
    parser.add_argument("--data-dir", type=Path, metavar="DIR",
                        help="data root (default: $MINIDL_DATA, else ~/.cache/minidl)")
    parser.add_argument("--download", action="store_true",
                        help="download the data set if its files are missing")


def run_train(args):
    if args.nproc is not None and not distributed.launched_by_mpi():
        return _launch(args.nproc, args.argv)
    if not (args.distributed or args.nproc is not None):
        return _train(args, parallel=False)
    communicator = distributed.init()
    if args.nproc is not None and args.nproc != communicator.size:
        raise CommandError(f"--nproc {args.nproc} but mpirun started {communicator.size} "
                           f"processes")
    if communicator.rank == 0:
        return _train(args, parallel=True)
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):  # rank 0 reports
        return _train(args, parallel=True)


def _launch(nproc, argv):
    """Run this command again in ``nproc`` processes under mpirun; its exit status."""
    command = distributed.mpirun_command(nproc, [sys.executable, "-m", "minidl", *argv])
    print("running: " + " ".join(command), flush=True)
    return subprocess.call(command, env=distributed.worker_environment(nproc))


def _train(args, parallel):
    device = _device(args.device)
    if args.lr_sweep is None and args.sweep_epochs is not None:
        raise CommandError("--sweep-epochs needs --lr-sweep")
    if args.lr_sweep is not None and (args.lr is not None or args.resume is not None
                                      or parallel):
        given = "--lr" if args.lr is not None else "--resume" if args.resume is not None \
            else "a data-parallel run"
        raise CommandError(f"--lr-sweep chooses the learning rate of a new run on one process; "
                           f"it cannot go with {given}")
    if args.resume is not None:
        path, state, config = recipes.read_run(_resume_path(args))
        _check_resume_flags(args, config)
        if args.epochs is not None:
            config = dict(config, epochs=args.epochs)
        out = os.path.dirname(os.path.abspath(path))
    else:
        if args.model is None or args.dataset is None:
            raise CommandError("train needs --model and --dataset (or --resume PATH)")
        path, state = None, None
        config = _run_config(args)
        out = _new_out_dir(args)
        if args.lr_sweep is not None:
            config = recipes.sweep_lr(config, args.lr_sweep,
                                      args.sweep_epochs or recipes.SWEEP_EPOCHS, device=device,
                                      root=args.data_dir, download=args.download)
            print("lr sweep (validation accuracy after the last epoch): " + ", ".join(
                f"{r['lr']:g}: " + ("diverged" if r["val_accuracy"] is None
                                    else f"{100 * r['val_accuracy']:.1f}%")
                for r in config["lr_sweep"]["results"]) + f"; chosen lr {config['lr']:g}")
    size = distributed.world_size() if parallel else 1
    if config["batch_size"] % size:
        raise CommandError(f"--batch-size {config['batch_size']} (the global batch) does not "
                           f"divide among {size} processes")
    # a damaged callbacks entry is the trainer's to name (a CheckpointError) when it loads
    callbacks = state.get("callbacks") if state is not None else None
    saved_tracker = callbacks.get("RegionTracker") if isinstance(callbacks, dict) else None
    saved_images = saved_tracker.get("images") if isinstance(saved_tracker, dict) else None
    if saved_images is not None and args.track_regions not in (None, saved_images):
        raise CommandError(f"--track-regions {args.track_regions} differs from the resumed "
                           f"run's {saved_images} images; leave it out to go on tracking those")
    tracked = args.track_regions is not None or saved_tracker is not None
    tracker = diagnostics.RegionTracker(args.track_regions or TRACK_IMAGES) if tracked else None
    with naming(path) if state is not None else contextlib.nullcontext():
        trainer = recipes.build_trainer(config, out, device=device, root=_data_dir(args, config),
                                        download=args.download, state=state,
                                        distributed=parallel,
                                        callbacks=[tracker] if tracked else [])
    if state is not None and trainer.epoch >= trainer.epochs:
        raise CommandError(f"{path} finished its {trainer.epochs} epochs; extend the run with "
                           f"a larger --epochs")
    if state is not None:
        print(f"resuming {path} at epoch {trainer.epoch + 1}, step {trainer.step_in_epoch}")
    else:
        print(f"training {config['model']} ({trainer.model.num_parameters():,} parameters) on "
              f"{config['dataset']} ({trainer.train_loader.num_samples():,} training images) "
              f"on {device}; writing to {out}")
    if parallel:
        print(f"data-parallel on {size} processes: global batch {config['batch_size']} = "
              f"{size} x {config['batch_size'] // size}, lr {config['lr']}")
    _busy_hint()
    try:
        history = trainer.fit()
    except TrainingInterrupted as exc:
        print(f"minidl: {exc}", file=sys.stderr)
        if exc.checkpoint is not None:
            # absolute and quoted: the line works pasted into a shell anywhere
            print(f"resume with: minidl train --resume {shlex.quote(os.path.abspath(out))}",
                  file=sys.stderr)
        return 130
    if tracked and trainer.out_dir is not None:
        _plot_regions(tracker, config, trainer.out_dir)
    best = trainer.best_epoch()
    if best is not None:
        print(f"best validation accuracy: {100 * history[best - 1]['val_accuracy']:.1f}% at "
              f"epoch {best} ({os.path.join(out, BEST_NAME)})")
    print(f"test accuracy: {100 * history[-1]['test_accuracy']:.1f}%")
    return 0


def _plot_regions(tracker, config, out):
    """regions.png of a run's RegionTracker, or a note that matplotlib is missing."""
    try:
        path = plots.plot_region_history(
            tracker.history, os.path.join(out, REGIONS_PLOT),
            title=f"{config['model']} on {config['dataset']}: {len(tracker.images)} training "
                  f"images, batch statistics")
    except ImportError as exc:
        print(f"no {REGIONS_PLOT}: {exc}")
        return
    print(f"region statistics per epoch: {os.path.join(out, diagnostics.REGIONS_NAME)}, {path}")


def _data_dir(args, config):
    """The data root: --data-dir, else the one the run trained with, else the default (None)."""
    if args.data_dir is not None:
        return args.data_dir
    return config.get("data_dir")


def _run_config(args):
    given = {key: getattr(args, key)
             for key in recipes.HYPERPARAMETERS + recipes.MODEL_OVERRIDES}
    try:
        return recipes.run_config(args.model, args.dataset, **given)
    except ValueError as exc:
        raise CommandError(str(exc)) from None


def _check_resume_flags(args, config):
    """An error if a flag asks for another run than the checkpoint's ``config``."""
    for key in RUN_FLAGS + recipes.MODEL_OVERRIDES:
        given = getattr(args, key)
        saved = (config["overrides"].get(key) if key in recipes.MODEL_OVERRIDES
                 else config.get(key))
        if key == "epochs" and given is not None and given < saved:
            raise CommandError(f"--epochs {given} is fewer than the resumed run's {saved}; a "
                               f"resumed run can be extended, not shortened")
        if given is not None and given != saved and key != "epochs":
            flag = "--" + key.replace("_", "-")
            raise CommandError(f"{flag} {given} differs from the resumed run's {saved!r}; a "
                               f"resumed run keeps its settings (use a new --out for a new run)")


def _resume_path(args):
    """The checkpoint (or run folder) that --resume names."""
    if args.resume:
        path = Path(args.resume)
    elif args.out is not None:
        path = args.out
    elif args.model is not None and args.dataset is not None:
        taken = [d for d in _default_out_dirs(args.model, args.dataset)
                 if (d / CHECKPOINT_NAME).is_file()]
        if not taken:
            raise CommandError(f"no run of {args.model} on {args.dataset} to resume in runs/; "
                               f"pass --resume PATH")
        path = taken[-1]
    else:
        raise CommandError("--resume needs a PATH, or --out, or --model and --dataset")
    return path


def _default_out_dirs(model, dataset):
    """runs/MODEL-DATASET, runs/MODEL-DATASET-2, ... as far as they exist, and one more."""
    base = Path("runs") / f"{model}-{dataset}"
    folders = [base]
    while folders[-1].exists():
        folders.append(base.with_name(f"{base.name}-{len(folders) + 1}"))
    return folders


def _new_out_dir(args):
    if args.out is not None:
        if (args.out / CHECKPOINT_NAME).exists():
            raise CommandError(f"{args.out} already holds a run; continue it with --resume or "
                               f"choose another --out")
        return str(args.out)
    free = [d for d in _default_out_dirs(args.model, args.dataset)
            if not (d / CHECKPOINT_NAME).exists()]
    return str(free[0])


# ---------------------------------------------------------------------------- eval

def _eval_arguments(parser):
    parser.add_argument("checkpoint", metavar="CHECKPOINT",
                        help="a checkpoint.npz, or the run folder holding it")
    parser.add_argument("--dataset", metavar="NAME",
                        help="evaluate on this data set's test split (default: the run's): "
                             + ", ".join(DATASETS))
    parser.add_argument("--batch-size", type=_positive_int, default=recipes.EVAL_BATCH_SIZE,
                        help="evaluation batch size")
    parser.add_argument("--limit", type=_positive_int, metavar="N",
                        help="evaluate on the first N test images only (default: all)")
    _device_and_data_arguments(parser)


def run_eval(args):
    device = _device(args.device)
    path, state, config = recipes.read_run(args.checkpoint)
    trained_on = config["dataset"]
    dataset = args.dataset or trained_on
    want, have = dataset_info(dataset), dataset_info(trained_on)
    if any(want[k] != have[k] for k in ("channels", "image_size", "num_classes")):
        raise CommandError(f"the model was trained on {trained_on} ({_shape(have)}) and cannot "
                           f"be evaluated on {dataset} ({_shape(want)})")
    with naming(path):
        model = recipes.restore_model(state, device)
        preprocessing = recipes.restore_preprocessing(state)
    x, y = recipes.load_data(dataset, "test", _data_dir(args, config), args.download,
                             args.limit, preprocessing)
    loss, accuracy = evaluate(model, DataLoader((x, y), args.batch_size))
    print(f"{config['model']} trained on {trained_on}, evaluated on {dataset} test "
          f"({len(y):,} images) on {device}")
    print(f"test loss: {loss:.4f}")
    print(f"test accuracy: {100 * accuracy:.1f}%")
    return 0


def _shape(info):
    return f"{info['channels']}x{info['image_size']}x{info['image_size']}, " \
           f"{info['num_classes']} classes"


# ---------------------------------------------------------------------------- predict

def _predict_arguments(parser):
    parser.add_argument("checkpoint", metavar="CHECKPOINT",
                        help="a checkpoint.npz (or best.npz), or the run folder holding it")
    parser.add_argument("files", metavar="FILE", nargs="+",
                        help="raw images as the data set stores them: .npy (HxW, NxHxW, "
                             "NxCxHxW; uint8 0-255 or floats 0-1), .png/.jpg (one picture, "
                             'not resized; needs Pillow: pip install "minidl[image]") or IDX '
                             "(e.g. t10k-images-idx3-ubyte.gz)")
    parser.add_argument("--labels", metavar="FILE",
                        help="the true classes of all the images in order (.npy or IDX): "
                             "print the accuracy too")
    parser.add_argument("--batch-size", type=_positive_int, default=recipes.EVAL_BATCH_SIZE,
                        help="images per forward pass")
    _device_arguments(parser)


def run_predict(args):
    """``minidl predict``: one line per image, ``NAME  class C  probability P``."""
    model = recipes.load_run(args.checkpoint, _device(args.device))
    channels = model.info["channels"]
    predicted = []
    for name in args.files:
        try:
            images = read_images(name, channels)
            classes, probabilities = model.predict(images, args.batch_size)
        except ImportError as exc:      # Pillow, for a picture
            raise CommandError(str(exc)) from None
        except (TypeError, ValueError) as exc:      # not a DataError: the shape or dtype
            if isinstance(exc, DataError):
                raise
            raise CommandError(f"{name}: {exc}") from None
        single = numpy.ndim(images) == (2 if channels == 1 else 3)
        for i, (c, p) in enumerate(zip(classes, probabilities)):
            print(f"{name if single else f'{name}[{i}]'}  class {c}  probability {p[c]:.4f}")
        predicted.append(classes)
    if args.labels is not None:
        labels = read_array(args.labels)
        if labels.dtype.kind not in "iu":
            raise CommandError(f"--labels {args.labels} holds {labels.dtype} values; class "
                               f"labels are integers")
        labels = labels.astype(numpy.int64).ravel()
        predicted = numpy.concatenate(predicted)
        if len(labels) != len(predicted):
            raise CommandError(f"--labels {args.labels} holds {len(labels):,} labels for "
                               f"{len(predicted):,} images")
        print(f"accuracy: {100 * numpy.mean(predicted == labels):.1f}% "
              f"({len(labels):,} images)")
    return 0


# ---------------------------------------------------------------------------- models

def _models_arguments(parser):
    pass


def run_models(args):
    rows = []
    for name, description in models.available().items():
        counts = [f"{models.create(name, d).num_parameters():,}" for d in ("digits", "cifar10")]
        rows.append((name, *counts, description))
    print(format_table(("model", "digits", "cifar10", "description"), rows, align="<>><",
                       rule=False))
    return 0


# ---------------------------------------------------------------------------- diagnose

def _diagnose_arguments(parser):
    """The arguments of ``minidl diagnose`` (added to an ``argparse`` parser)."""
    parser.add_argument("checkpoint", metavar="CHECKPOINT",
                        help="a checkpoint.npz, or the run folder holding it")
    parser.add_argument("--dataset", metavar="NAME",
                        help="the images to measure on (default: the run's data set)")
    parser.add_argument("--split", default="test", help="data set split (default test)")
    parser.add_argument("--limit", type=_nonnegative_int, default=1000, metavar="N",
                        help="measure on the first N images (default 1000; 0: all)")
    parser.add_argument("--batch-size", type=_positive_int, default=250)
    parser.add_argument("--batch-stats", action="store_true",
                        help="batch norm on each batch's statistics instead of the running ones")
    parser.add_argument("--no-covariance", action="store_true",
                        help="skip the pre-activation covariance (rank and condition number)")
    parser.add_argument("--out", metavar="DIR",
                        help="folder for diagnostics.json and the plots (default: a "
                             "'diagnostics' folder next to the checkpoint)")
    _device_and_data_arguments(parser)


def run_diagnose(args):
    """``minidl diagnose``: print the region table of a checkpoint's model and write plots.

    Writes ``diagnostics.json`` (the per-layer numbers) and, with matplotlib
    installed, ``region_shares.png`` and ``largest_share.png`` to ``--out``.
    """
    device = _device(args.device)
    path, state, config = recipes.read_run(args.checkpoint)
    dataset = args.dataset or config["dataset"]
    want, have = dataset_info(dataset), dataset_info(config["dataset"])
    if (want["channels"], want["image_size"]) != (have["channels"], have["image_size"]):
        raise CommandError(f"the model was trained on {config['dataset']} images and cannot "
                           f"take {dataset} images (other channels or size)")
    with naming(path):
        model = recipes.restore_model(state, device)
        preprocessing = recipes.restore_preprocessing(state)
    images, _ = recipes.load_data(dataset, args.split, _data_dir(args, config), args.download,
                                  args.limit or None, preprocessing)
    stats = diagnostics.collect(model, images, batch_size=args.batch_size,
                                batch_stats=args.batch_stats, covariance=not args.no_covariance)
    mode = "batch statistics" if args.batch_stats else "evaluation mode"
    title = (f"{config['model']} trained on {config['dataset']}: {len(images):,} {dataset} "
             f"{args.split} images, {mode}")
    print(diagnostics.format_table(stats, title=title))
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(path)), "diagnostics")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "diagnostics.json"), "w") as f:
        json.dump({"title": title, "layers": [s.summary() for s in stats]}, f, indent=1)
    panels = {title.split(":")[0]: stats}
    try:
        written = [plots.plot_region_shares(panels, os.path.join(out, "region_shares.png")),
                   plots.plot_largest_share_histogram(panels,
                                                      os.path.join(out, "largest_share.png"))]
    except ImportError as exc:
        print(f"no plots: {exc}")
        written = []
    print(f"wrote {', '.join(['diagnostics.json'] + [os.path.basename(w) for w in written])} "
          f"to {out}")
    return 0


# ---------------------------------------------------------------------------- main

COMMANDS = [
    Command("train", "train a model (a progress bar, one line per epoch, a checkpoint)",
            _train_arguments, run_train),
    Command("eval", "test loss and accuracy of a checkpoint", _eval_arguments, run_eval),
    Command("predict", "the class and its probability for each image of some files",
            _predict_arguments, run_predict),
    Command("models", "the models with their parameter counts", _models_arguments, run_models),
    Command("diagnose", "linear-region statistics of a checkpoint's ReLU/maxout units, and plots",
            _diagnose_arguments, run_diagnose),
]


class _Parser(argparse.ArgumentParser):
    """argparse with its errors on one line (status 2), and no abbreviated flags."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, allow_abbrev=False, formatter_class=_HelpFormatter, **kwargs)

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends "(default: X)" to a flag's help, unless it has none to show or says it already.

    A default of None means "decided later" (per data set, per model): those
    flags spell their defaults out in their help.
    """

    def _get_help_string(self, action):
        if action.default is None or action.default is False or "default" in action.help:
            return action.help
        return super()._get_help_string(action)


def build_parser():
    parser = _Parser(prog="minidl",
                     description="Train, evaluate and run NIN / MIM / MIN models with minidl.")
    parser.add_argument("--version", action="version", version=f"minidl {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        sub = commands.add_parser(command.name, help=command.help, description=command.help)
        command.add_arguments(sub)
        sub.set_defaults(run=command.run)
    return parser


def main(argv=None):
    """Run the command line ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)     # for --nproc's relaunch
    try:
        if getattr(args, "threads", None) is not None:
            _limit_threads(args.threads, reexec=argv is None)
        _device(None)   # MINIDL_DEVICE: every command's layers are created on it
        return args.run(args) or 0
    except (CommandError, DataError, CheckpointError, TrainingError) as exc:
        _error(exc)
        return 2
    except OSError as exc:
        _error(_os_error(exc))
        return 2
    except KeyboardInterrupt:
        print("minidl: interrupted", file=sys.stderr)
        return 130
    except Exception:       # noqa: BLE001 -- anything else is minidl's own fault
        traceback.print_exc()
        print(f"minidl: internal error: this is a bug in minidl {__version__}, not in what you "
              f"typed; please report it with the command line and the traceback above",
              file=sys.stderr)
        return 1


def _error(exc):
    """Print ``exc`` on one line on stderr: ``minidl: error: `` and its whole message."""
    print(f"minidl: error: {one_line(str(exc)) or type(exc).__name__}", file=sys.stderr)


def _os_error(exc):
    """An OSError in words: the file, what went wrong, and for a full disk what to do."""
    files = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
    text = f"{files}: {exc.strerror}" if files and exc.strerror else str(exc)
    if exc.errno == errno.ENOSPC:
        text += " (the disk is full: free some space or write to another --out)"
    return text


def one_line(message):
    """A message of several lines on one line.

    An indented line (a command, a URL) continues the line before it after a
    space, as does any line after one that ends in ":"; other lines are
    separate sentences, joined by "; ".
    """
    lines = [line for line in message.strip().splitlines() if line.strip()]
    text = lines[0].strip() if lines else ""
    for before, line in zip(lines, lines[1:]):
        indented = line[:1].isspace() and not before[:1].isspace()
        text += (" " if indented or before.rstrip().endswith(":") else "; ") + line.strip()
    return text


def _device(spec):
    """The device of ``--device spec``, or else the default one ($MINIDL_DEVICE, else cpu)."""
    source = f"--device {spec}" if spec else f"MINIDL_DEVICE={os.environ.get('MINIDL_DEVICE')}"
    try:
        device = backend.device(spec) if spec else backend.get_default_device()
    except (TypeError, ValueError) as exc:
        raise CommandError(f"{source}: {exc}") from None
    if device.type == "cuda" and not backend.gpu_available():
        raise CommandError(f"{source} asks for {device} but {backend.gpu_unavailable_reason()}")
    return device


def _limit_threads(threads, reexec):
    """Let NumPy's BLAS, and minidl's elementwise passes, use at most ``threads`` threads.

    With threadpoolctl installed it changes the limit of the libraries
    already loaded.  Without it the only way is the environment variables
    BLAS reads when it loads, which NumPy (imported by minidl itself) has
    already done: so the command starts itself again with them set when
    ``reexec`` (it is the real command line); otherwise (``main`` called from
    Python) it sets them for the processes started later and says so.
    """
    backend.set_num_threads(threads)
    try:
        import threadpoolctl
    except ImportError:
        threadpoolctl = None
    if threadpoolctl is not None:
        threadpoolctl.threadpool_limits(threads)
        return
    wanted = {name: str(threads) for name in THREAD_VARIABLES}
    if all(os.environ.get(name) == value for name, value in wanted.items()):
        return          # set before this process started: BLAS loaded with them
    os.environ.update(wanted)
    if reexec:
        sys.stdout.flush()
        os.execv(sys.executable, [sys.executable, "-m", "minidl", *sys.argv[1:]])
    print(f"minidl: note: --threads {threads} set {', '.join(THREAD_VARIABLES)}, but NumPy "
          f"was loaded before; only processes started from now on follow them (install "
          f'threadpoolctl to limit this one: pip install "minidl[threads]")', file=sys.stderr)


def _busy_hint():
    """A note on stderr when other processes already keep every core busy."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):       # not on every system
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if load >= cores:
        print(f"minidl: note: the machine is busy (load average {load:.1f} on {cores} CPU "
              f"cores): training will be slower than usual; --threads N caps minidl's "
              f"threads", file=sys.stderr)


def _number(integer=False, low=0, **limits):
    """An argparse type: an integer (or a finite number) in the range ``check_number`` takes."""
    if not integer:
        limits = {"high": math.inf, "high_open": True, **limits}
    expected = "an integer" if integer else "a number"

    def parse(text):
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        try:
            return check_number("minidl", "the value", value, integer=integer, low=low,
                                **limits)
        except ValueError as exc:   # argparse names the flag: keep "must be ..., got ..."
            raise argparse.ArgumentTypeError(str(exc).partition(" the value ")[2]) from None
    return parse


_positive_int = _number(integer=True, low=1)
_nonnegative_int = _number(integer=True)
_positive_float = _number(low_open=True)
_nonnegative_float = _number()
_probability = _number(high=1, high_open=True)
_fraction = _number(low_open=True, high=1, high_open=True)


def _rates(text):
    """An argparse type: comma-separated positive learning rates, e.g. ``0.3,0.1,0.03``."""
    return [_positive_float(part) for part in text.split(",")]
