"""Why batch norm matters for maxout units: linear regions with and without BN, measured.

    python examples/bn_regions.py                 # the full experiment, a few minutes on 2 cores
    python examples/bn_regions.py --quick         # a reduced run of seconds (the tests use it)

Liao & Carneiro (2016) observed that without normalization the inputs of
piecewise-linear units pile up on one side of their breakpoints: a maxout
unit whose first piece always wins is one linear function, a ReLU that is
never positive is dead, and this gets worse with depth.  Batch norm in front
of each unit keeps every linear region in use.

Part 1 trains fully connected maxout networks (4 pieces) of several depths on
the digits data set in three settings that share everything else: the same
initial weights (for each seed), optimizer, learning rate, epochs and batch size.

* ``BN``: Linear -> BatchNorm1d -> Maxout in every hidden layer.
* ``no BN``: Linear -> Maxout.
* ``no BN, scaled init``: the control.  Orthogonal weights, zero biases, and
  each layer's weights scaled by one number so that its pre-activations have
  variance 1 on a batch of training images (layer-sequential unit variance,
  Mishkin & Matas 2016).  The signal keeps its scale through depth, so what
  degeneration remains comes from the inputs' shift away from the
  breakpoints, which only a per-unit normalization removes.

For every model, ``minidl.diagnostics`` measures per layer the share of
degenerate units (one region takes more than 99% of a unit's inputs), the
normalized entropy of the region shares and the condition number of the
pre-activations, at initialization (batch norm on batch statistics: its
running statistics are not estimated yet) and after training (evaluation
mode); the test accuracy comes from the trainer.  A
``minidl.diagnostics.RegionTracker`` records the degenerate share and entropy
at step 0 and after every epoch in between.  Part 2 measures the same on the
convolutional NIN models of ``minidl.models`` after a short training with the
digits recipe of ``minidl train`` (``minidl.recipes``; the learning rate of
each model is its ``recipes.CHOSEN_LR`` where that table exists); a model
this minidl does not have is skipped with a note.

Every experiment runs ``--seeds`` seeds (``--seed``, ``--seed`` + 1, ...: the
initial weights and the shuffling change with the seed),
and every number of the tables is the mean +- the sample standard deviation
over the seeds; ``results.json`` keeps each seed's numbers.  The plots of
region shares show the first seed.

Prints the tables and writes to ``--out`` (default runs/bn_regions/)
results.md, results.json and PNG plots (these need matplotlib:
pip install "minidl[plot]").  ``--docs docs/results.md`` also puts the tables
into that page, between its ``bn_regions`` markers, and the plots and
results.json beside it.  docs/diagnostics.md explains the numbers.
"""
import argparse
import json
import os
import shutil
import time

import numpy

import minidl
from minidl import diagnostics, models, nn, recipes
from minidl.data import DataLoader
from minidl.tables import format_table, markdown_table
from minidl.train import Trainer, TrainingError

SETTINGS = ("BN", "no BN", "no BN, scaled init")
# --quick: the same code on a few hundred images and tiny widths (seconds, for the tests)
SIZES = {
    "full": dict(depths=[2, 4, 8, 12], width=64, epochs=8, lr=0.02, limit=None, measure=1000,
                 nin_models=["nin-small", "nin-bn-small", "maxout-nin-small", "mim-small",
                             "min-small"],
                 nin_epochs=6, nin_limit=None, nin_measure=500),
    "quick": dict(depths=[2, 4], width=8, epochs=1, lr=0.02, limit=300, measure=100,
                  nin_models=["nin-small", "mim-small"], nin_epochs=1, nin_limit=64,
                  nin_measure=16),
}
# the numbers of a run that the tables give as mean +- std over seeds: name -> how to read it
NUMBERS = {
    "degenerate_init": lambda run: run["init"]["degenerate_share"],
    "degenerate_trained": lambda run: run["trained"]["degenerate_share"],
    "entropy_init": lambda run: run["init"]["mean_entropy"],
    "entropy_trained": lambda run: run["trained"]["mean_entropy"],
    "test_accuracy": lambda run: run["test_accuracy"],
}
# The digits recipe leaves dropout out of the NIN models, which suits this experiment too:
# within one epoch it mostly slows training, and with BN its variance shift between training
# and evaluation (Li et al. 2019) makes the evaluation-mode accuracy of so short a run say little.
NIN_MEASURE_BATCH = 250      # conv activations of 250 images fit comfortably in memory
# --docs: the generated part of the results page lies between these lines
DOCS_BEGIN = "<!-- bn_regions: begin (written by examples/bn_regions.py --docs) -->"
DOCS_END = "<!-- bn_regions: end -->"


# ---------------------------------------------------------------------------- models

def maxout_mlp(depth, width, pieces, batch_norm):
    """Flatten, ``depth`` x (Linear -> [BatchNorm1d] -> Maxout), Linear to 10 classes.

    The Linear layers keep their bias even before BN, where it has no effect,
    so that from one seed the networks with and without BN start from the
    very same weights.
    """
    layers, fan_in = [nn.Flatten()], 28 * 28
    for _ in range(depth):
        layers.append(nn.Linear(fan_in, width * pieces))
        if batch_norm:
            layers.append(nn.BatchNorm1d(width * pieces))
        layers.append(nn.Maxout(pieces))
        fan_in = width
    layers.append(nn.Linear(fan_in, 10))
    return nn.Sequential(*layers)


def scale_preserving_init(model, images):
    """Orthogonal hidden weights, zero biases, pre-activation variance 1, layer by layer.

    One factor per layer, not per unit: the scale of the signal is fixed,
    its per-unit offsets are left alone.
    """
    hidden = [m for m in model if isinstance(m, nn.Linear)][:-1]
    x = minidl.tensor(images)
    with minidl.no_grad():
        for module in model:
            if module in hidden:
                nn.init.orthogonal_(module.weight)
                nn.init.zeros_(module.bias)
                module.weight.data /= float(module(x).data.std())
            x = module(x)


# ---------------------------------------------------------------------------- runs

def train(model, data, settings, tracker):
    """Train with the optimizer and schedule of ``settings`` (``minidl.recipes.hyperparameters``).

    ``tracker``: a RegionTracker, called at step 0 and after every epoch.
    Returns (history, None) or (history so far, why it stopped).
    """
    train_split, test_split = data
    loader = DataLoader(train_split, settings["batch_size"], shuffle=True, seed=settings["seed"])
    optimizer = recipes.build_optimizer(model, settings)
    trainer = Trainer(model, optimizer, loader,
                      test_loader=DataLoader(test_split, recipes.EVAL_BATCH_SIZE),
                      schedule=recipes.build_schedule(optimizer, settings, len(loader)),
                      epochs=settings["epochs"], seed=settings["seed"], callbacks=[tracker],
                      verbose=False)
    try:
        trainer.fit()
    except TrainingError as exc:
        return trainer.history, str(exc).split(";")[0]
    return trainer.history, None


def measure(model, data, images, batch_size, settings):
    """Statistics at initialization, training, statistics after; returns (run, stats, stats).

    The run's ``regions``: the tracker's pooled degenerate share and entropy
    per epoch (batch statistics, as training sees them; no covariance, to
    keep it cheap).
    """
    initial = diagnostics.collect(model, images, batch_size=batch_size, batch_stats=True)
    tracker = diagnostics.RegionTracker(images, batch_size=batch_size, covariance=False)
    started = time.perf_counter()
    history, error = train(model, data, settings, tracker)
    trained = diagnostics.collect(model, images, batch_size=batch_size)
    run = {"seed": settings["seed"], "init": diagnostics.model_summary(initial),
           "trained": diagnostics.model_summary(trained), "history": history, "error": error,
           "test_accuracy": history[-1]["test_accuracy"] if history and not error else None,
           "regions": [{key: entry[key] for key in ("epoch", "degenerate_share",
                                                     "mean_entropy")}
                       for entry in tracker.history],
           "seconds": round(time.perf_counter() - started, 1)}
    return run, initial, trained


def seed_list(args):
    return [args.seed + i for i in range(args.seeds)]


def spread(values):
    """{"mean", "std", "n"} of the values that are not None (std: sample std, ddof 1)."""
    kept = [v for v in values if v is not None]
    if not kept:
        return {"mean": None, "std": None, "n": 0}
    std = float(numpy.std(kept, ddof=1)) if len(kept) > 1 else None
    return {"mean": float(numpy.mean(kept)), "std": std, "n": len(kept)}


def summarize(row):
    """Add to an experiment's row the mean and std over its seeds of every table number.

    ``summary``: NUMBERS name -> spread; ``layers``: per layer, the spread
    of the entropy and condition number at init and trained; ``regions``:
    per epoch, the spread of the tracked degenerate share and entropy (a
    seed that diverged counts up to its last epoch).
    """
    runs = row["runs"]
    row["summary"] = {name: spread([read(run) for run in runs]) for name, read in
                      NUMBERS.items()}
    row["layers"] = {when: [{key: spread([run[when]["layers"][i][key] for run in runs])
                             for key in ("mean_entropy", "condition_number")}
                            for i in range(len(runs[0][when]["layers"]))]
                     for when in ("init", "trained")}
    epochs = max(len(run["regions"]) for run in runs)
    row["regions"] = [{"epoch": e, **{key: spread([run["regions"][e][key] for run in runs
                                                   if e < len(run["regions"])])
                                      for key in ("degenerate_share", "mean_entropy")}}
                      for e in range(epochs)]
    row["diverged"] = sum(run["error"] is not None for run in runs)
    return row


def run_mlps(args, data):
    """Part 1: every depth in every setting.  Returns the rows and the plot panels per depth."""
    images = data[0][0][:args.measure]
    # plain SGD with momentum, the same for every model (not the digits recipe's rate and decay)
    settings = recipes.hyperparameters("digits", epochs=args.epochs, lr=args.lr, momentum=0.9,
                                       weight_decay=0.0, schedule="none",
                                       batch_size=args.batch_size, seed=args.seed)
    rows, panels = [], {}
    for depth in args.depths:
        panels[depth] = {}
        for setting in SETTINGS:
            row = {"depth": depth, "setting": setting, "label": f"depth {depth}, {setting}",
                   "lr": args.lr, "runs": []}
            for seed in seed_list(args):
                minidl.manual_seed(seed)
                model = maxout_mlp(depth, args.width, args.pieces, batch_norm=setting == "BN")
                if setting == "no BN, scaled init":
                    scale_preserving_init(model, images)
                # one batch: batch statistics then come from all measured images at once
                run, initial, trained = measure(model, data, images, len(images),
                                                dict(settings, seed=seed))
                row["runs"].append(run)
                if seed == args.seed:
                    panels[depth][f"{setting}, init"] = initial
                    panels[depth][f"{setting}, trained"] = trained
                _progress(row["label"], run)
            rows.append(summarize(row))
    return rows, panels


def run_nins(args, data):
    """Part 2: the NIN family, a short training each.  Returns the rows and the plot panels."""
    (train_x, train_y), test = data
    train_x, train_y = train_x[:args.nin_limit], train_y[:args.nin_limit]
    images = train_x[:args.nin_measure]
    rows, panels = [], {}
    for name in args.nin_models:
        if name not in models.available():
            print(f"{name}: skipped, this minidl has no such model", flush=True)
            continue
        row = {"model": name, "label": name, "runs": []}
        for seed in seed_list(args):
            # the model's CHOSEN_LR: run_config's digits default
            config = recipes.run_config(name, "digits", epochs=args.nin_epochs, seed=seed)
            minidl.manual_seed(seed)
            model = recipes.build_model(config)
            run, initial, trained = measure(model, ((train_x, train_y), test), images,
                                            NIN_MEASURE_BATCH, config)
            row.update(units=initial[0].kind, batch_norm=model.batch_norm, lr=config["lr"])
            row["runs"].append(run)
            if seed == args.seed:
                panels[f"{name}, init"] = initial
                panels[f"{name}, trained"] = trained
            _progress(name, run)
        rows.append(summarize(row))
    return rows, panels


def _progress(label, run):
    accuracy = "diverged" if run["error"] else _pct(run["test_accuracy"])
    print(f"{label:<28} seed {run['seed']}: degenerate units "
          f"{_pct(run['init']['degenerate_share'])} at init, "
          f"{_pct(run['trained']['degenerate_share'])} trained; test accuracy {accuracy} "
          f"({run['seconds']} s)", flush=True)


# ---------------------------------------------------------------------------- tables

def _pct(share):
    return f"{100 * share:.1f}%"


def pm(spread, fmt, scale=1, unit="", sep=" ± "):
    """``mean ± std`` of a :func:`spread`, each written by ``fmt`` after ``scale``; "-" if none."""
    if spread["mean"] is None:
        return "-"
    text = fmt(scale * spread["mean"])
    if spread["std"] is not None:
        text += sep + fmt(scale * spread["std"])
    return text + unit


def _percent(spread):
    return pm(spread, "{:.1f}".format, 100, "%")


def _entropy(spread):
    return pm(spread, "{:.3f}".format)


def _accuracy(row):
    text = _percent(row["summary"]["test_accuracy"])
    return text + (f" ({row['diverged']} of {len(row['runs'])} diverged)" if row["diverged"]
                   else "")


def _numbers(row):
    summary = row["summary"]
    return (_percent(summary["degenerate_init"]), _percent(summary["degenerate_trained"]),
            _entropy(summary["entropy_init"]), _entropy(summary["entropy_trained"]),
            _accuracy(row))


NUMBER_HEADER = ("degenerate init", "degenerate trained", "entropy init", "entropy trained",
                 "test acc")


def mlp_table(rows):
    header = ("depth", "setting") + NUMBER_HEADER
    body = [(str(r["depth"]), r["setting"]) + _numbers(r) for r in rows]
    return header, body


def nin_table(rows):
    header = ("model", "units", "BN", "lr") + NUMBER_HEADER
    body = [(r["model"], r["units"], "yes" if r["batch_norm"] else "no", f"{r['lr']:g}")
            + _numbers(r) for r in rows]
    return header, body


def per_layer_table(rows, key, fmt, title):
    """One row per experiment and time of measurement: ``key`` of every layer, mean±std."""
    header = ("model", "when", title)
    body = [(r["label"], when, " ".join(pm(layer[key], fmt, sep="±")
                                        for layer in r["layers"][when]))
            for r in rows for when in ("init", "trained")]
    return header, body


def entropy_table(rows):
    return per_layer_table(rows, "mean_entropy", "{:.2f}".format,
                           "normalized entropy per layer (input to output)")


def condition_table(rows):
    return per_layer_table(rows, "condition_number", "{:.2g}".format,
                           "pre-activation condition number per layer (input to output)")


def regions_table(rows):
    """Per experiment, the tracked share of degenerate units after each epoch (0: init)."""
    header = ("model", "degenerate units per epoch, 0 = init (batch statistics)")
    body = [(r["label"], "  ".join(f"{e['epoch']}: {_percent(e['degenerate_share'])}"
                                   for e in r["regions"])) for r in rows]
    return header, body


def _figure(images, name, caption):
    """A Markdown image paragraph for plot ``name``, if it was drawn (else nothing)."""
    if images is None or name not in images[1]:
        return []
    return [f"![{caption}]({images[0]}{name})", ""]


def report(args, mlp_rows, nin_rows, seconds, images=None):
    """results.md: the tables in Markdown, with the settings that produced them.

    ``images``: (prefix, names) of the drawn plots, linked as ``prefix + name``.
    """
    command = "python examples/bn_regions.py" + (" --quick" if args.quick else "")
    seeds = ", ".join(map(str, seed_list(args)))
    deepest = max(args.depths)
    lines = [
        "# Batch norm and linear regions, measured", "",
        f"Produced by `{command}` in {seconds:.0f} s. Every number is the mean ± the sample "
        f"standard deviation over {args.seeds} seed(s) ({seeds}); `results.json` holds the "
        f"value of each seed. The plots of region shares show seed {args.seed}.", "",
        "## Maxout MLPs on digits", "",
        f"{args.pieces} pieces, {args.width} units per hidden layer; SGD, lr {args.lr}, "
        f"momentum 0.9, batch {args.batch_size}, {args.epochs} epoch(s), the same for every "
        f"model; for each seed the three settings start from the same weights. Statistics "
        f"over {args.measure} training images: at initialization with batch statistics in BN, "
        f"after training in evaluation mode. A unit is degenerate when one piece wins on more "
        f"than 99% of its inputs; entropy is the normalized entropy of the pieces' shares, "
        f"averaged over units.", "",
        markdown_table(*mlp_table(mlp_rows)), "",
        *_figure(images, f"region_shares_depth{deepest}.png",
                 f"Region shares per layer at depth {deepest}, with and without BN, at "
                 f"initialization and after training"),
        *_figure(images, f"largest_share_depth{deepest}.png",
                 f"Histogram of the largest region share per unit at depth {deepest}"),
        *_figure(images, "training_curves.png", "Training loss and test accuracy per epoch"),
        "### Degenerate units over training", "",
        "Measured by `minidl.diagnostics.RegionTracker` on the same images before training "
        "and after every epoch, with batch norm on batch statistics (as the training forward "
        "pass sees it), so the BN models' last epoch can differ a little from the "
        "evaluation-mode column above.", "",
        markdown_table(*regions_table(mlp_rows)), "",
        *_figure(images, f"regions_depth{deepest}.png",
                 f"Degenerate share and entropy over training at depth {deepest}"),
        "### Normalized entropy per layer", "", markdown_table(*entropy_table(mlp_rows)), "",
        "### Condition number of the pre-activation covariance per layer", "",
        f"Over the covariance's numerical rank: each layer computes {args.pieces} x "
        f"{args.width} pre-activations from {args.width} inputs, so the covariance of its "
        f"{args.pieces * args.width} channels has rank {args.width} at most (the first layer's: "
        f"784).", "", markdown_table(*condition_table(mlp_rows))]
    if nin_rows:
        digits = recipes.hyperparameters("digits")
        lines += [
            "", "## NIN models on digits", "",
            f"{args.nin_epochs} epoch(s) with the `minidl train` settings for digits "
            f"({digits['optimizer'].upper()}, momentum {digits['momentum']}, weight decay "
            f"{digits['weight_decay']}, {digits['schedule']} schedule, batch "
            f"{digits['batch_size']}) and each model's learning rate (column lr: "
            f"`minidl.recipes.CHOSEN_LR` where minidl has it, else the digits default "
            f"{digits['lr']}); statistics over {args.nin_measure} training images (every "
            f"pixel position counts as an input).", "",
            markdown_table(*nin_table(nin_rows)), "",
            "Degenerate units over training (RegionTracker, batch statistics):", "",
            markdown_table(*regions_table(nin_rows)), "",
            *_figure(images, "regions_nin.png",
                     "Degenerate share and entropy of the NIN models over training (solid: "
                     "BN, dashed: no BN; mean over seeds)"),
            markdown_table(*entropy_table(nin_rows)), "",
            *_figure(images, "region_shares_nin.png", "Region shares per layer of the NIN "
                     "models"),
            *_figure(images, "largest_share_nin.png", "Histogram of the largest region share "
                     "per unit of the NIN models")]
    return "\n".join(lines).rstrip("\n") + "\n"


def write_docs(page, out, text):
    """Put ``text`` (less its title) into ``page`` between the bn_regions markers.

    Its headings go one level down, under the page's own; the plots and
    results.json go to the folder ``results`` beside the page.
    """
    with open(page) as f:
        old = f.read()
    if DOCS_BEGIN not in old or DOCS_END not in old:
        raise SystemExit(f"--docs {page}: the page has no {DOCS_BEGIN} ... {DOCS_END} block")
    body = "\n".join("#" + line if line.startswith("#") else line
                     for line in text.split("\n")[1:]).strip("\n")
    before, rest = old.split(DOCS_BEGIN, 1)
    after = rest.split(DOCS_END, 1)[1]
    with open(page, "w") as f:
        f.write(f"{before}{DOCS_BEGIN}\n{body}\n{DOCS_END}{after}")
    folder = os.path.join(os.path.dirname(page), "results")
    os.makedirs(folder, exist_ok=True)
    for name in os.listdir(out):
        if name.endswith(".png") or name == "results.json":
            shutil.copy(os.path.join(out, name), folder)


# ---------------------------------------------------------------------------- plots

def mean_regions(row):
    """The seeds' mean degenerate share and entropy per epoch, as a RegionTracker history."""
    return [{"epoch": e["epoch"], "degenerate_share": e["degenerate_share"]["mean"],
             "mean_entropy": e["mean_entropy"]["mean"]} for e in row["regions"]]


def write_plots(out, mlp_rows, mlp_panels, nin_rows, nin_panels):
    """Draw the PNG files; returns their paths, or says why there are none."""
    from minidl import plots
    paths = []
    dashes = dict(zip(SETTINGS, ("-", "--", ":")))
    try:
        for depth, panels in mlp_panels.items():
            paths.append(plots.plot_region_shares(
                panels, os.path.join(out, f"region_shares_depth{depth}.png")))
            paths.append(plots.plot_largest_share_histogram(
                panels, os.path.join(out, f"largest_share_depth{depth}.png")))
            rows = [r for r in mlp_rows if r["depth"] == depth]
            paths.append(plots.plot_region_comparison(
                {r["setting"]: mean_regions(r) for r in rows},
                os.path.join(out, f"regions_depth{depth}.png"),
                styles={r["setting"]: {"linestyle": dashes[r["setting"]]} for r in rows},
                title=f"depth {depth}, mean over seeds"))
        if nin_panels:
            paths.append(plots.plot_region_shares(
                nin_panels, os.path.join(out, "region_shares_nin.png")))
            paths.append(plots.plot_largest_share_histogram(
                nin_panels, os.path.join(out, "largest_share_nin.png")))
            paths.append(plots.plot_region_comparison(
                {r["model"]: mean_regions(r) for r in nin_rows},
                os.path.join(out, "regions_nin.png"),
                styles={r["model"]: {"linestyle": "-" if r["batch_norm"] else "--"}
                        for r in nin_rows},
                title="NIN models, mean over seeds"))
        colors = {d: f"C{i}" for i, d in enumerate(sorted({r["depth"] for r in mlp_rows}))}
        styles = {r["label"]: {"color": colors[r["depth"]], "linestyle": dashes[r["setting"]]}
                  for r in mlp_rows}
        # the first seed's curves: one line per experiment keeps the legend readable
        paths.append(plots.plot_training_curves(
            {r["label"]: r["runs"][0]["history"] for r in mlp_rows},
            os.path.join(out, "training_curves.png"), styles=styles))
    except ImportError as exc:
        print(f"no plots: {exc}")
    return paths


# ---------------------------------------------------------------------------- main

def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="a reduced run of seconds: tiny widths, a few hundred images")
    parser.add_argument("--out", default=os.path.join("runs", "bn_regions"),
                        help="output folder (default runs/bn_regions)")
    parser.add_argument("--depths", type=int, nargs="+", help="hidden layers of each MLP")
    parser.add_argument("--width", type=int, help="maxout units per hidden layer")
    parser.add_argument("--pieces", type=int, default=4, help="maxout pieces (default 4)")
    parser.add_argument("--epochs", type=int, help="training epochs of each MLP")
    parser.add_argument("--lr", type=float, help="SGD learning rate of the MLPs (momentum 0.9)")
    parser.add_argument("--batch-size", type=int, default=100, help="MLP batch size")
    parser.add_argument("--seed", type=int, default=0, help="the first seed (default 0)")
    parser.add_argument("--seeds", type=int, default=3,
                        help="seeds per experiment: --seed, --seed + 1, ... (default 3)")
    parser.add_argument("--docs", metavar="PAGE",
                        help="also write the tables into PAGE (e.g. docs/results.md) between "
                             "its bn_regions markers, and the plots and results.json into the "
                             "folder results/ beside it")
    parser.add_argument("--limit", type=int, help="use the first N training and test images")
    parser.add_argument("--measure", type=int, help="training images the MLP statistics use")
    parser.add_argument("--nin-models", nargs="*", metavar="NAME",
                        help="models of part 2 (nothing after the flag skips part 2)")
    parser.add_argument("--nin-epochs", type=int, help="training epochs of each part 2 model")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f"--seeds must be at least 1, got {args.seeds}")
    for key, value in SIZES["quick" if args.quick else "full"].items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    return args


def load(limit):
    """Digits, standardized as `minidl train` does: ((train_x, train_y), (test_x, test_y))."""
    _, train_split, _, test_split = recipes.load_splits("digits", limit=limit)
    return train_split, test_split


def main(argv=None):
    args = parse_args(argv)
    started = time.perf_counter()
    data = load(args.limit)
    mlp_rows, mlp_panels = run_mlps(args, data)
    nin_rows, nin_panels = run_nins(args, data) if args.nin_models else ([], {})
    os.makedirs(args.out, exist_ok=True)
    paths = write_plots(args.out, mlp_rows, mlp_panels, nin_rows, nin_panels)
    seconds = time.perf_counter() - started
    for table in [mlp_table(mlp_rows), regions_table(mlp_rows), entropy_table(mlp_rows)] + (
            [nin_table(nin_rows), regions_table(nin_rows), entropy_table(nin_rows)]
            if nin_rows else []):
        print("\n" + format_table(*table))
    names = {os.path.basename(p) for p in paths}
    text = report(args, mlp_rows, nin_rows, seconds, ("", names))
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(text)
    results = {"config": {k: v for k, v in vars(args).items() if k not in ("out", "docs")},
               "maxout_mlp": mlp_rows, "nin": nin_rows, "wall_time_s": round(seconds, 1)}
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1, allow_nan=False)
    if args.docs:
        write_docs(args.docs, args.out, report(args, mlp_rows, nin_rows, seconds,
                                               ("results/", names)))
    print(f"\nwrote results.md, results.json and {len(paths)} plots to {args.out}"
          + (f" and the tables to {args.docs}" if args.docs else "")
          + f"; wall time {seconds:.0f} s")
    return results


if __name__ == "__main__":
    main()
