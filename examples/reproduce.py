"""The paper's comparison on real data: measured test errors beside the published ones.

    python examples/reproduce.py --data-dir ~/data                       # full size, 3 seeds
    python examples/reproduce.py --data-dir ~/data --limit 10000 --epochs 8   # reduced size
    python examples/reproduce.py --datasets cifar10 --augment crop-flip       # the augmented setting

Trains every model of the comparison (``nin``, ``nin-bn``, ``maxout-nin``,
``mim``, ``min``; ``--size small`` takes their ``-small`` variants) on every
data set of ``--datasets`` whose files are in ``--data-dir`` (the others are
skipped with a note), once per seed of ``--seeds``, with the ``minidl train``
recipe of the data set (``minidl.recipes``), then prints a table of the test
error (mean ± sample standard deviation over the seeds) next to the test
error each model's paper published for the same data set and augmentation,
with the citation.  A model missing from ``minidl.models.available()`` is
skipped with a note.

Every run is an ordinary run folder under ``--out``/runs (``minidl eval`` and
``mdl.load_run`` read it): running the script again reuses the finished runs
of the same settings and resumes unfinished ones.  Writes ``--out``/results.md
and ``--out``/results.json (every run's numbers, the summary, the sources).

Reduced runs (``--limit``, few ``--epochs``) are far from the papers' hundreds
of epochs on the whole training set: their errors show how the models rank at
equal effort, not the published numbers.  See docs/reproduce.md.
"""
import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from minidl import models, recipes
from minidl.data import cache_dir
from minidl.tables import format_table, markdown_table
from minidl.train import CHECKPOINT_NAME, TrainingError

MODELS = ("nin", "nin-bn", "maxout-nin", "mim", "min")
DATASETS = ("cifar10", "cifar100", "mnist", "svhn")

# paper -> (short citation for the table, full citation)
SOURCES = {
    "nin": ("Lin et al. 2014", "Lin, Chen & Yan 2014, Network In Network, ICLR, "
                               "arXiv 1312.4400"),
    "maxout": ("Goodfellow et al. 2013", "Goodfellow, Warde-Farley, Mirza, Courville & Bengio "
                                         "2013, Maxout Networks, ICML, arXiv 1302.4389"),
    "mim": ("Liao & Carneiro 2016", "Liao & Carneiro 2016, On the Importance of Normalisation "
                                    "Layers in Deep Learning with Piecewise Linear Activation "
                                    "Units, WACV, arXiv 1508.00330"),
    "min": ("Chang & Chen 2015", "Chang & Chen 2015, Batch-normalized Maxout Network in "
                                 "Network, arXiv 1511.02583"),
}
# Published test errors (%) of each paper's model: (paper, data set, augmentation) ->
# (error, how it was checked).  "crop-flip" stands for the papers' translations and
# horizontal flips.  The papers' SVHN numbers train on the train and extra splits with local
# contrast normalization; minidl trains on the train split only.  "checked": the number
# agrees with the Papers with Code listing of the paper's results (which gives accuracies
# or errors rounded to 0.1 or 0.01); "unchecked": from the paper's tables as cited in later
# work, not found in a source the search tools reached.
PUBLISHED = {
    ("nin", "cifar10", "none"): (10.41, "unchecked"),
    ("nin", "cifar10", "crop-flip"): (8.81, "checked"),
    ("nin", "cifar100", "none"): (35.68, "checked"),
    ("nin", "mnist", "none"): (0.47, "checked"),
    ("nin", "svhn", "none"): (2.35, "checked"),
    ("maxout", "cifar10", "none"): (11.68, "unchecked"),
    ("maxout", "cifar10", "crop-flip"): (9.38, "unchecked"),
    ("maxout", "cifar100", "none"): (38.57, "checked"),
    ("maxout", "mnist", "none"): (0.45, "checked"),
    ("maxout", "svhn", "none"): (2.47, "checked"),
    ("mim", "cifar10", "none"): (8.52, "unchecked"),
    ("mim", "cifar100", "none"): (29.20, "unchecked"),
    ("mim", "mnist", "none"): (0.35, "unchecked"),
    ("mim", "svhn", "none"): (1.97, "unchecked"),
    ("min", "cifar10", "none"): (7.85, "unchecked"),
    ("min", "cifar10", "crop-flip"): (6.75, "checked"),
    ("min", "cifar100", "none"): (28.86, "checked"),
    ("min", "mnist", "none"): (0.24, "checked"),
    ("min", "svhn", "none"): (1.81, "checked"),
}
# the published model each of ours is built after; nin-bn and maxout-nin are controls that
# no paper reports on its own, and Goodfellow et al.'s maxout network is shown for reference
PAPER_OF = {"nin": "nin", "mim": "mim", "min": "min"}


# where and by which minidl a run went, not its settings: ignored when reusing a run folder
RUN_PLACE = ("device", "data_dir", "minidl_version")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    parser.add_argument("--models", nargs="+", default=list(MODELS), metavar="MODEL",
                        help="the models to compare (default: %(default)s)")
    parser.add_argument("--size", choices=("full", "small"), default="full",
                        help="small: the models' -small variants (about 4x narrower)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, help="default: the data set's recipe")
    parser.add_argument("--limit", type=int, metavar="N",
                        help="the first N training and N test images (default: all)")
    parser.add_argument("--batch-size", type=int, help="default: the data set's recipe")
    parser.add_argument("--lr", type=float,
                        help="one learning rate for every model (default: the data set's "
                             "recipe; minidl's CHOSEN_LR rates were chosen on digits only)")
    parser.add_argument("--augment", choices=recipes.AUGMENTATIONS, default="none",
                        help="none: the papers' headline setting (default: %(default)s)")
    parser.add_argument("--preprocess", choices=recipes.PREPROCESSING,
                        help="default: the data set's recipe")
    parser.add_argument("--data-dir", metavar="DIR",
                        help="data root (default: $MINIDL_DATA, else ~/.cache/minidl)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=os.path.join("runs", "reproduce"))
    parser.add_argument("--verbose", action="store_true", help="progress bars and epoch lines")
    return parser.parse_args(argv)


# ---------------------------------------------------------------------------- runs

def run_settings(args, model, dataset, seed):
    """The run config of one run, and where its learning rate comes from."""
    lr_from = "recipe" if args.lr is None else "--lr"
    epochs = args.epochs or recipes.DEFAULTS[dataset]["epochs"]
    # the recipe's warm-up, but never the whole of a short run
    warmup = min(recipes.DEFAULTS[dataset]["warmup"], epochs - 1)
    config = recipes.run_config(model, dataset, epochs=epochs, batch_size=args.batch_size,
                                lr=args.lr, warmup=warmup, seed=seed, limit=args.limit,
                                augment=args.augment, preprocess=args.preprocess)
    return config, lr_from


def settings_of(config):
    """A run config without :data:`RUN_PLACE`: what makes two runs the same run."""
    return {k: v for k, v in config.items() if k not in RUN_PLACE}


def train_one(config, out_dir, args):
    """Train the run of ``config`` in ``out_dir``: ``(history, training images)``.

    A finished run of the same config there is reused, an unfinished one
    resumed.  ``history`` is None when the loss diverged (the trainer stops
    with a TrainingError).
    """
    state = None
    if os.path.isfile(os.path.join(out_dir, CHECKPOINT_NAME)):
        _, state, saved = recipes.read_run(out_dir)
        if settings_of(saved) != settings_of(config):
            raise SystemExit(f"{out_dir} holds a run of other settings; remove it or choose "
                             f"another --out")
    trainer = recipes.build_trainer(config, out_dir, device=args.device, root=args.data_dir,
                                    state=state, verbose=args.verbose)
    images = trainer.train_loader.num_samples()
    if trainer.epoch == trainer.epochs:
        return trainer.history, images
    try:
        return trainer.fit(), images
    except TrainingError as exc:
        print(f"  diverged: {exc}")
        return None, images


def missing_data(dataset, root):
    """Why ``dataset`` is left out (its folder in ``root`` holds no files), or None.

    Files that are there but damaged are an error, not a reason to skip.
    """
    folder = Path(root if root is not None else cache_dir()) / dataset
    if folder.is_dir() and any(folder.iterdir()):
        for split in ("train", "test"):
            recipes.load_data(dataset, split, root, limit=1)    # DataError when damaged
        return None
    return f"no files in {folder}"


def run_all(args):
    """Every run: a list of dicts (one per data set, model and seed), and the skip notes."""
    runs, skipped = [], []
    available = models.available()
    names = [m if args.size == "full" else f"{m}-small" for m in args.models]
    for name in [n for n in names if n not in available]:
        skipped.append(f"model {name}: not in minidl.models.available()")
    names = [n for n in names if n in available]
    for dataset in args.datasets:
        missing = missing_data(dataset, args.data_dir)
        if missing:
            skipped.append(f"data set {dataset}: {missing}")
            continue
        for name in names:
            for seed in args.seeds:
                config, lr_from = run_settings(args, name, dataset, seed)
                out_dir = os.path.join(args.out, "runs", dataset, f"{name}-seed{seed}")
                print(f"{dataset}  {name}  seed {seed}  lr {config['lr']} ({lr_from})", flush=True)
                history, images = train_one(config, out_dir, args)
                runs.append(run_record(config, lr_from, history, images, out_dir))
    for note in skipped:
        print(f"skipped {note}")
    return runs, skipped


def run_record(config, lr_from, history, images, out_dir):
    """What results.json keeps of one run: its settings, test error (%) and training time."""
    record = {"dataset": config["dataset"], "model": config["model"], "seed": config["seed"],
              "lr": config["lr"], "lr_from": lr_from, "epochs": config["epochs"],
              "preprocess": config["preprocess"], "augment": config["augment"],
              "train_images": images, "run": out_dir, "diverged": history is None,
              "test_error": None, "train_seconds": None, "seconds_per_image": None}
    if history is not None:
        record["test_error"] = 100 * (1 - history[-1]["test_accuracy"])
        # the epochs' training time, evaluation left out
        record["train_seconds"] = sum(r["time_s"] for r in history)
        record["seconds_per_image"] = record["train_seconds"] / (images * config["epochs"])
    return record


# ---------------------------------------------------------------------------- results

def mean_std(values):
    """Mean and sample standard deviation (None for a single value)."""
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def published(model, dataset, augment):
    """The published entry of ``model``'s paper for the setting, as a dict, or None."""
    paper = PAPER_OF.get(model.removesuffix("-small"))
    entry = PUBLISHED.get((paper, dataset, augment))
    if entry is None:
        return None
    return {"paper": paper, "test_error": entry[0], "checked": entry[1] == "checked",
            "source": SOURCES[paper][1]}


def summarize(runs, augment):
    """One row per data set and model: the seeds' errors, their mean and std, the published."""
    rows = {}
    for run in runs:
        rows.setdefault((run["dataset"], run["model"]), []).append(run)
    summary = []
    for (dataset, model), group in rows.items():
        errors = [r["test_error"] for r in group if not r["diverged"]]
        mean, std = mean_std(errors)
        speed, _ = mean_std([r["seconds_per_image"] for r in group if not r["diverged"]])
        summary.append({"dataset": dataset, "model": model,
                        "seeds": [r["seed"] for r in group], "test_errors": errors,
                        "diverged": sum(r["diverged"] for r in group), "mean": mean,
                        "std": std, "seconds_per_image": speed,
                        "published": published(model, dataset, augment)})
    return summary


def _error_cell(row):
    if row["mean"] is None:
        return "diverged"
    cell = f"{row['mean']:.2f}" + ("" if row["std"] is None else f" ± {row['std']:.2f}")
    cell += f" ({len(row['test_errors'])} run{'s' if len(row['test_errors']) > 1 else ''}"
    return cell + (f", {row['diverged']} diverged)" if row["diverged"] else ")")


def table(summary, augment):
    """The comparison as (header, rows): ours, then the reference rows of maxout."""
    header = ("data set", "model", "test error % (mean ± std)", "s/image", "published %",
              "source")
    rows = []
    for row in summary:
        paper = row["published"]
        rows.append((row["dataset"], row["model"], _error_cell(row),
                     "-" if row["seconds_per_image"] is None
                     else f"{row['seconds_per_image']:.2g}",
                     "-" if paper is None
                     else f"{paper['test_error']:.2f}" + ("" if paper["checked"] else "*"),
                     "-" if paper is None else SOURCES[paper["paper"]][0]))
    for dataset in dict.fromkeys(r["dataset"] for r in summary):
        entry = PUBLISHED.get(("maxout", dataset, augment))
        if entry is not None:
            rows.append((dataset, "maxout (reference, not run)", "-", "-",
                         f"{entry[0]:.2f}" + ("" if entry[1] == "checked" else "*"),
                         SOURCES["maxout"][0]))
    return header, rows


def report(args, summary, skipped, seconds):
    """results.md: the settings, the table, the notes and the full citations."""
    size = (f"the first {args.limit:,} training and test images" if args.limit
            else "the whole training and test sets")
    epochs = "the recipes' epochs" if args.epochs is None else f"{args.epochs} epoch(s)"
    lines = ["# The comparison on real data, measured", "",
             f"Produced by `python examples/reproduce.py {' '.join(args.argv)}` in "
             f"{seconds:.0f} s on {args.device}: {size}, "
             f"{epochs}, "
             f"seeds {', '.join(map(str, args.seeds))}, augmentation {args.augment}.", "",
             markdown_table(*table(summary, args.augment)), "",
             "Test error: mean ± sample standard deviation over the seeds. s/image: training "
             "seconds per image and epoch. Published: the test error of the paper's own model "
             f"in the setting run here (augmentation {args.augment}), trained in full; "
             "* marks a number not checked against a second source. The papers' SVHN numbers "
             "train on the train and extra splits with local contrast normalization."]
    lines += [""] + [f"- skipped {note}" for note in skipped] if skipped else []
    lines += ["", "## Sources", ""] + [f"- {short}: {full}" for short, full in SOURCES.values()]
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    started = time.perf_counter()
    runs, skipped = run_all(args)
    summary = summarize(runs, args.augment)
    print("\n" + format_table(*table(summary, args.augment), align="<<>>><"))
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(report(args, summary, skipped, time.perf_counter() - started))
    results = {"settings": vars(args), "runs": runs,
               "summary": summary, "skipped": skipped, "sources": SOURCES}
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    print(f"wrote results.md and results.json to {args.out}")
    return results


if __name__ == "__main__":
    main()
