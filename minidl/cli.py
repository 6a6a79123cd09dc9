"""The ``minidl`` command (also ``python -m minidl``): train, eval, models, diagnose.

    minidl train --model min-small --dataset digits       # a good run with the defaults
    minidl train --resume runs/min-small-digits           # continue an interrupted run
    minidl eval runs/min-small-digits/checkpoint.npz
    minidl models
    minidl diagnose runs/min-small-digits                 # linear-region statistics + plots

Each subcommand is a :class:`Command` in :data:`COMMANDS`: a name, a help
line, a function adding its arguments to an ``argparse`` parser, and a
function running it with the parsed arguments (returning the exit status, or
None for 0).  A run function reports a problem of the user's input by
raising :class:`CommandError` (or ``DataError`` / ``CheckpointError``):
``main`` prints it as one line on stderr and exits with status 2.
"""
import argparse
import contextlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable, NamedTuple

from . import __version__, backend, diagnostics, distributed, models, plots, recipes
from .checkpoint import CheckpointError
from .data import DATASETS, DataError, DataLoader, dataset_info
from .functional._checks import check_number
from .tables import format_table
from .train import CHECKPOINT_NAME, TrainingError, TrainingInterrupted, evaluate

__all__ = ["main", "Command", "COMMANDS", "CommandError"]


class CommandError(Exception):
    """A problem with what the user asked for: printed as one line, exit status 2."""


class Command(NamedTuple):
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], "int | None"]


# the training flags that define a run: saved in its config, fixed when resuming
RUN_FLAGS = ("model", "dataset") + recipes.HYPERPARAMETERS


# ---------------------------------------------------------------------------- train

def _train_arguments(parser):
    run = parser.add_argument_group("the run (defaults per data set: see docs/training.md)")
    run.add_argument("--model", metavar="NAME", help="model name: " + ", ".join(models.available()))
    run.add_argument("--dataset", metavar="NAME", help="data set: " + ", ".join(DATASETS))
    run.add_argument("--epochs", type=_positive_int, help="number of epochs")
    run.add_argument("--batch-size", type=_positive_int, help="training batch size")
    run.add_argument("--optimizer", choices=("sgd", "adam"), help="optimizer (default sgd)")
    run.add_argument("--lr", type=_positive_float, help="peak learning rate")
    run.add_argument("--momentum", type=_nonnegative_float, help="SGD momentum (default 0.9)")
    run.add_argument("--weight-decay", type=_nonnegative_float,
                     help="L2 weight decay on weights (never on biases or batch-norm parameters)")
    run.add_argument("--schedule", choices=("cosine", "step", "none"),
                     help="learning-rate schedule, stepped every iteration (default cosine)")
    run.add_argument("--warmup", type=_nonnegative_int, metavar="EPOCHS",
                     help="epochs of linear warm-up from lr/10 before the schedule")
    run.add_argument("--seed", type=_nonnegative_int, help="run seed (default 0)")
    run.add_argument("--dropout", type=float, help="model dropout probability (model default 0.5)")
    run.add_argument("--pieces", type=_positive_int, help="maxout pieces (maxout models)")
    run.add_argument("--limit", type=_positive_int, metavar="N",
                     help="use only the first N training and N test images (quick trials)")
    where = parser.add_argument_group("where")
    where.add_argument("--out", type=Path, metavar="DIR",
                       help="output folder for checkpoint.npz, log.csv and log.json "
                            "(default runs/MODEL-DATASET, numbered when taken)")
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
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default $MINIDL_DEVICE or cpu)")
    parser.add_argument("--data-dir", type=Path, metavar="DIR",
                        help="data root (default $MINIDL_DATA or ~/.cache/minidl)")
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
    if args.resume is not None:
        path, state, config = recipes.load_run(_resume_path(args))
        _check_resume_flags(args, config)
        out = os.path.dirname(os.path.abspath(path))
    else:
        if args.model is None or args.dataset is None:
            raise CommandError("train needs --model and --dataset (or --resume PATH)")
        state = None
        config = _run_config(args)
        out = _new_out_dir(args)
    size = distributed.world_size() if parallel else 1
    if config["batch_size"] % size:
        raise CommandError(f"--batch-size {config['batch_size']} (the global batch) does not "
                           f"divide among {size} processes")
    trainer = recipes.build_trainer(config, out, device=device, root=args.data_dir,
                                    download=args.download, state=state, distributed=parallel)
    if state is not None:
        print(f"resuming {path} at epoch {trainer.epoch + 1}, step {trainer.step_in_epoch}")
    else:
        print(f"training {config['model']} ({trainer.model.num_parameters():,} parameters) on "
              f"{config['dataset']} ({trainer.train_loader.num_samples():,} training images) "
              f"on {device}; writing to {out}")
    if parallel:
        print(f"data-parallel on {size} processes: global batch {config['batch_size']} = "
              f"{size} x {config['batch_size'] // size}, lr {config['lr']}")
    try:
        history = trainer.fit()
    except TrainingInterrupted as exc:
        print(f"minidl: {exc}", file=sys.stderr)
        if exc.checkpoint is not None:
            print(f"resume with: minidl train --resume {out}", file=sys.stderr)
        return 130
    print(f"test accuracy: {100 * history[-1]['test_accuracy']:.1f}%")
    return 0


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
        if given is not None and given != saved:
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
    parser.add_argument("--batch-size", type=_positive_int, default=recipes.EVAL_BATCH_SIZE)
    parser.add_argument("--limit", type=_positive_int, metavar="N",
                        help="evaluate on the first N test images only")
    _device_and_data_arguments(parser)


def run_eval(args):
    device = _device(args.device)
    _, state, config = recipes.load_run(args.checkpoint)
    trained_on = config["dataset"]
    dataset = args.dataset or trained_on
    want, have = dataset_info(dataset), dataset_info(trained_on)
    if any(want[k] != have[k] for k in ("channels", "image_size", "num_classes")):
        raise CommandError(f"the model was trained on {trained_on} ({_shape(have)}) and cannot "
                           f"be evaluated on {dataset} ({_shape(want)})")
    model = recipes.restore_model(state, device)
    x, y = recipes.load_data(dataset, "test", args.data_dir, args.download, args.limit,
                             recipes.restore_preprocessing(state))
    loss, accuracy = evaluate(model, DataLoader((x, y), args.batch_size))
    print(f"{config['model']} trained on {trained_on}, evaluated on {dataset} test "
          f"({len(y):,} images) on {device}")
    print(f"test loss: {loss:.4f}")
    print(f"test accuracy: {100 * accuracy:.1f}%")
    return 0


def _shape(info):
    return f"{info['channels']}x{info['image_size']}x{info['image_size']}, " \
           f"{info['num_classes']} classes"


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
    path, state, config = recipes.load_run(args.checkpoint)
    dataset = args.dataset or config["dataset"]
    want, have = dataset_info(dataset), dataset_info(config["dataset"])
    if (want["channels"], want["image_size"]) != (have["channels"], have["image_size"]):
        raise CommandError(f"the model was trained on {config['dataset']} images and cannot "
                           f"take {dataset} images (other channels or size)")
    model = recipes.restore_model(state, device)
    images, _ = recipes.load_data(dataset, args.split, args.data_dir, args.download,
                                  args.limit or None, recipes.restore_preprocessing(state))
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
    Command("models", "the models with their parameter counts", _models_arguments, run_models),
    Command("diagnose", "linear-region statistics of a checkpoint's ReLU/maxout units, and plots",
            _diagnose_arguments, run_diagnose),
]


def build_parser():
    parser = argparse.ArgumentParser(
        prog="minidl", description="Train and evaluate NIN / MIN models with minidl.")
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
        return args.run(args) or 0
    except (CommandError, DataError, CheckpointError) as exc:
        _error(exc, getattr(args, "download", True))
        return 2
    except TrainingError as exc:
        _error(exc, True)
        return 1
    except KeyboardInterrupt:
        print("minidl: interrupted", file=sys.stderr)
        return 130


def _error(exc, download):
    """Print ``exc`` as one line on stderr (a long data error keeps its first line)."""
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    message = lines[0]
    if isinstance(exc, DataError) and len(lines) > 1 and not download:
        message += " (pass --download to fetch it)"
    print(f"minidl: error: {message}", file=sys.stderr)


def _device(spec):
    try:
        device = backend.device(spec) if spec else backend.get_default_device()
    except (TypeError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    if device.type == "cuda" and not backend.gpu_available():
        raise CommandError(f"--device {device} was asked for but "
                           f"{backend.gpu_unavailable_reason()}")
    return device


def _number(integer=False, low=0, low_open=False):
    """An argparse type: a finite number of at least (above, with ``low_open``) ``low``."""
    def parse(text):
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        finite = {} if integer else {"high": math.inf, "high_open": True}
        try:
            return check_number("minidl", "the value", value, integer=integer, low=low,
                                low_open=low_open, **finite)
        except ValueError as exc:   # argparse names the flag: keep "must be ..., got ..."
            raise argparse.ArgumentTypeError(str(exc).partition(" the value ")[2]) from None
    return parse


_positive_int = _number(integer=True, low=1)
_nonnegative_int = _number(integer=True)
_positive_float = _number(low_open=True)
_nonnegative_float = _number()
