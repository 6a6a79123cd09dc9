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
initial weights (one seed), optimizer, learning rate, epochs and batch size.

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
mode); the test accuracy comes from the trainer.  Part 2 measures the same on
the convolutional NIN models of ``minidl.models`` after a short training
with the digits recipe of ``minidl train`` (``minidl.recipes``).

Prints the tables and writes to ``--out`` (default runs/bn_regions/)
results.md, results.json and PNG plots (these need matplotlib:
pip install "minidl[plot]").  docs/diagnostics.md explains the numbers.
"""
import argparse
import json
import os
import time

import minidl
from minidl import diagnostics, nn, recipes
from minidl.data import DataLoader
from minidl.tables import format_table
from minidl.train import Trainer, TrainingError

SETTINGS = ("BN", "no BN", "no BN, scaled init")
# --quick: the same code on a few hundred images and tiny widths (seconds, for the tests)
SIZES = {
    "full": dict(depths=[2, 4, 8, 12], width=64, epochs=8, lr=0.02, limit=None, measure=1000,
                 nin_models=["nin-small", "nin-bn-small", "maxout-nin-small", "mim-small"],
                 nin_epochs=1, nin_limit=None, nin_measure=500),
    "quick": dict(depths=[2, 4], width=8, epochs=1, lr=0.02, limit=300, measure=100,
                  nin_models=["nin-small", "mim-small"], nin_epochs=1, nin_limit=64,
                  nin_measure=16),
}
# The digits recipe leaves dropout out of the NIN models, which suits this experiment too:
# within one epoch it mostly slows training, and with BN its variance shift between training
# and evaluation (Li et al. 2019) makes the evaluation-mode accuracy of so short a run say little.
NIN_MEASURE_BATCH = 250      # conv activations of 250 images fit comfortably in memory


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

def train(model, data, settings):
    """Train with the optimizer and schedule of ``settings`` (``minidl.recipes.hyperparameters``).

    Returns (history, None) or (history so far, why it stopped).
    """
    train_split, test_split = data
    loader = DataLoader(train_split, settings["batch_size"], shuffle=True, seed=settings["seed"])
    optimizer = recipes.build_optimizer(model, settings)
    trainer = Trainer(model, optimizer, loader,
                      test_loader=DataLoader(test_split, recipes.EVAL_BATCH_SIZE),
                      schedule=recipes.build_schedule(optimizer, settings, len(loader)),
                      epochs=settings["epochs"], seed=settings["seed"], verbose=False)
    try:
        trainer.fit()
    except TrainingError as exc:
        return trainer.history, str(exc).split(";")[0]
    return trainer.history, None


def layer_summary(stats):
    """Model-level numbers (pooled over units) and the per-layer ones."""
    units = sum(s.units for s in stats)
    return {"degenerate_share": float(sum(s.degenerate.sum() for s in stats) / units),
            "mean_entropy": float(sum(s.entropy.sum() for s in stats) / units),
            "layers": [s.summary() for s in stats]}


def measure(model, data, images, batch_size, settings):
    """Statistics at initialization, training, statistics after; returns (run, stats, stats)."""
    initial = diagnostics.collect(model, images, batch_size=batch_size, batch_stats=True)
    history, error = train(model, data, settings)
    trained = diagnostics.collect(model, images, batch_size=batch_size)
    run = {"init": layer_summary(initial), "trained": layer_summary(trained),
           "history": history, "error": error,
           "test_accuracy": history[-1]["test_accuracy"] if history else None}
    return run, initial, trained


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
            started = time.perf_counter()
            minidl.manual_seed(args.seed)
            model = maxout_mlp(depth, args.width, args.pieces, batch_norm=setting == "BN")
            if setting == "no BN, scaled init":
                scale_preserving_init(model, images)
            # one batch: batch statistics then come from all measured images at once
            run, initial, trained = measure(model, data, images, len(images), settings)
            run.update(depth=depth, setting=setting, label=f"depth {depth}, {setting}",
                       seconds=round(time.perf_counter() - started, 1))
            rows.append(run)
            panels[depth][f"{setting}, init"] = initial
            panels[depth][f"{setting}, trained"] = trained
            _progress(run)
    return rows, panels


def run_nins(args, data):
    """Part 2: the NIN family, a short training each.  Returns the rows and the plot panels."""
    (train_x, train_y), test = data
    train_x, train_y = train_x[:args.nin_limit], train_y[:args.nin_limit]
    images = train_x[:args.nin_measure]
    rows, panels = [], {}
    for name in args.nin_models:
        started = time.perf_counter()
        config = recipes.run_config(name, "digits", epochs=args.nin_epochs, seed=args.seed)
        minidl.manual_seed(args.seed)
        model = recipes.build_model(config)
        run, initial, trained = measure(model, ((train_x, train_y), test), images,
                                        NIN_MEASURE_BATCH, config)
        run.update(model=name, label=name, units=initial[0].kind, batch_norm=model.batch_norm,
                   seconds=round(time.perf_counter() - started, 1))
        rows.append(run)
        panels[f"{name}, init"] = initial
        panels[f"{name}, trained"] = trained
        _progress(run)
    return rows, panels


def _progress(run):
    print(f"{run['label']:<28} degenerate units {_pct(run['init']['degenerate_share'])} at init, "
          f"{_pct(run['trained']['degenerate_share'])} trained; test accuracy {_accuracy(run)} "
          f"({run['seconds']} s)", flush=True)


# ---------------------------------------------------------------------------- tables

def _pct(share):
    return f"{100 * share:.1f}%"


def _accuracy(run):
    return "diverged" if run["error"] else _pct(run["test_accuracy"])


def mlp_table(rows):
    header = ("depth", "setting", "degenerate init", "degenerate trained", "entropy init",
              "entropy trained", "test acc")
    body = [(str(r["depth"]), r["setting"], _pct(r["init"]["degenerate_share"]),
             _pct(r["trained"]["degenerate_share"]), f"{r['init']['mean_entropy']:.3f}",
             f"{r['trained']['mean_entropy']:.3f}", _accuracy(r)) for r in rows]
    return header, body


def nin_table(rows):
    header = ("model", "units", "BN", "degenerate init", "degenerate trained", "entropy init",
              "entropy trained", "test acc")
    body = [(r["model"], r["units"], "yes" if r["batch_norm"] else "no",
             _pct(r["init"]["degenerate_share"]), _pct(r["trained"]["degenerate_share"]),
             f"{r['init']['mean_entropy']:.3f}", f"{r['trained']['mean_entropy']:.3f}",
             _accuracy(r)) for r in rows]
    return header, body


def per_layer_table(rows, key, fmt, title):
    """One row per run and time of measurement: ``key`` of every layer, input to output."""
    header = ("model", "when", title)
    body = [(r["label"], when, " ".join("-" if layer[key] is None else fmt(layer[key])
                                        for layer in r[when]["layers"]))
            for r in rows for when in ("init", "trained")]
    return header, body


def entropy_table(rows):
    return per_layer_table(rows, "mean_entropy", "{:.2f}".format,
                           "normalized entropy per layer (input to output)")


def condition_table(rows):
    return per_layer_table(rows, "condition_number", "{:.2g}".format,
                           "pre-activation condition number per layer (input to output)")


def markdown(table):
    header, body = table
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in body])


def report(args, mlp_rows, nin_rows, seconds):
    """results.md: the tables in Markdown, with the settings that produced them."""
    command = "python examples/bn_regions.py" + (" --quick" if args.quick else "")
    lines = [
        "# Batch norm and linear regions, measured", "",
        f"Produced by `{command}` in {seconds:.0f} s.", "",
        "## Maxout MLPs on digits", "",
        f"{args.pieces} pieces, {args.width} units per hidden layer; SGD, lr {args.lr}, "
        f"momentum 0.9, batch {args.batch_size}, {args.epochs} epoch(s), seed {args.seed}, the "
        f"same for every model. Statistics over {args.measure} training images: at "
        f"initialization with batch statistics in BN, after training in evaluation mode. A unit "
        f"is degenerate when one piece wins on more than 99% of its inputs; entropy is the "
        f"normalized entropy of the pieces' shares, averaged over units.", "",
        markdown(mlp_table(mlp_rows)), "",
        "### Normalized entropy per layer", "", markdown(entropy_table(mlp_rows)), "",
        "### Condition number of the pre-activation covariance per layer", "",
        f"Over the covariance's numerical rank: each layer computes {args.pieces} x "
        f"{args.width} pre-activations from {args.width} inputs, so the covariance of its "
        f"{args.pieces * args.width} channels has rank {args.width} at most (the first layer's: "
        f"784).", "", markdown(condition_table(mlp_rows))]
    if nin_rows:
        digits = recipes.hyperparameters("digits")
        lines += [
            "", "## NIN models on digits", "",
            f"{args.nin_epochs} epoch(s) with the `minidl train` settings for digits "
            f"({digits['optimizer'].upper()}, lr {digits['lr']}, momentum {digits['momentum']}, "
            f"weight decay {digits['weight_decay']}, {digits['schedule']} schedule, batch "
            f"{digits['batch_size']}); statistics over {args.nin_measure} training images "
            f"(every pixel position counts as an input).", "",
            markdown(nin_table(nin_rows)), "", markdown(entropy_table(nin_rows))]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- plots

def write_plots(out, mlp_rows, mlp_panels, nin_panels):
    """Draw the PNG files; returns their paths, or says why there are none."""
    from minidl import plots
    paths = []
    try:
        for depth, panels in mlp_panels.items():
            paths.append(plots.plot_region_shares(
                panels, os.path.join(out, f"region_shares_depth{depth}.png")))
            paths.append(plots.plot_largest_share_histogram(
                panels, os.path.join(out, f"largest_share_depth{depth}.png")))
        if nin_panels:
            paths.append(plots.plot_region_shares(
                nin_panels, os.path.join(out, "region_shares_nin.png")))
            paths.append(plots.plot_largest_share_histogram(
                nin_panels, os.path.join(out, "largest_share_nin.png")))
        colors = {d: f"C{i}" for i, d in enumerate(sorted({r["depth"] for r in mlp_rows}))}
        dashes = dict(zip(SETTINGS, ("-", "--", ":")))
        styles = {r["label"]: {"color": colors[r["depth"]], "linestyle": dashes[r["setting"]]}
                  for r in mlp_rows}
        paths.append(plots.plot_training_curves(
            {r["label"]: r["history"] for r in mlp_rows},
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
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, help="use the first N training and test images")
    parser.add_argument("--measure", type=int, help="training images the MLP statistics use")
    parser.add_argument("--nin-models", nargs="*", metavar="NAME",
                        help="models of part 2 (nothing after the flag skips part 2)")
    parser.add_argument("--nin-epochs", type=int, help="training epochs of each part 2 model")
    args = parser.parse_args(argv)
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
    paths = write_plots(args.out, mlp_rows, mlp_panels, nin_panels)
    seconds = time.perf_counter() - started
    for table in [mlp_table(mlp_rows), entropy_table(mlp_rows)] + (
            [nin_table(nin_rows), entropy_table(nin_rows)] if nin_rows else []):
        print("\n" + format_table(*table))
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(report(args, mlp_rows, nin_rows, seconds))
    results = {"config": {k: v for k, v in vars(args).items() if k != "out"},
               "maxout_mlp": mlp_rows, "nin": nin_rows, "wall_time_s": round(seconds, 1)}
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1, allow_nan=False)
    print(f"\nwrote results.md, results.json and {len(paths)} plots to {args.out}; "
          f"wall time {seconds:.0f} s")
    return results


if __name__ == "__main__":
    main()
