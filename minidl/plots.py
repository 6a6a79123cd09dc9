"""PNG plots of region statistics and training curves (needs matplotlib: ``minidl[plot]``).

    panels = {"no BN, init": stats_a, "BN, init": stats_b}      # title -> [LayerStats]
    plots.plot_region_shares(panels, "runs/regions.png")
    plots.plot_largest_share_histogram(panels, "runs/largest_share.png")
    plots.plot_training_curves({"depth 8, BN": trainer.history}, "runs/curves.png")
    plots.plot_region_history(tracker.history, "runs/regions.png")   # a RegionTracker's
    plots.plot_region_comparison({"BN": bn.history, "no BN": plain.history}, "runs/cmp.png")

matplotlib is imported only when a plot is drawn, and drawn with its Agg
backend on a figure of our own: no window opens and pyplot's global state
(and the user's choice of backend) is left alone.  Each figure is
``PANEL_INCHES`` per panel at ``DPI`` dots per inch, and at least
``MIN_WIDTH_INCHES`` wide (legible at the width of a docs page), saved without
cropping, so its pixel size is known in advance; ``docs/diagnostics.md`` explains how to
read the plots.
"""
import math
import os

import numpy

from .diagnostics import DEGENERATE_SHARE
from .fileio import atomic_write

__all__ = ["plot_region_shares", "plot_largest_share_histogram", "plot_training_curves",
           "plot_region_history", "plot_region_comparison", "figure_pixels", "DPI",
           "PANEL_INCHES", "MIN_WIDTH_INCHES"]

DPI = 100
PANEL_INCHES = (5.0, 3.6)
MIN_WIDTH_INCHES = 8.0
MAX_COLUMNS = 2


def _grid(panels):
    columns = min(MAX_COLUMNS, panels)
    return math.ceil(panels / columns), columns


def _inches(panels):
    rows, columns = _grid(panels)
    return max(columns * PANEL_INCHES[0], MIN_WIDTH_INCHES), rows * PANEL_INCHES[1]


def figure_pixels(panels):
    """(width, height) in pixels of a figure with ``panels`` panels."""
    width, height = _inches(panels)
    return round(width * DPI), round(height * DPI)


def _figure(panels):
    """A matplotlib Figure on an Agg canvas and its axes, one per panel (row-major)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError('plotting needs matplotlib, which is not installed: '
                          'pip install "minidl[plot]"') from exc
    rows, columns = _grid(panels)
    figure = Figure(figsize=_inches(panels), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for unused in axes[panels:]:
        unused.set_visible(False)
    return figure, axes[:panels]


def _save(figure, path):
    path = os.fspath(path)
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    atomic_write(path, lambda f: figure.savefig(f, dpi=DPI, format="png"))
    return path


def _check_panels(panels, what):
    if not panels:
        raise ValueError(f"{what}: nothing to plot (got no panels)")
    for title, stats in panels.items():
        if not stats:
            raise ValueError(f"{what}: panel {title!r} has no layers")


def plot_region_shares(panels, path):
    """Stacked bars of sorted region shares: one panel per entry, one bar per layer.

    ``panels``: title -> list of :class:`~minidl.diagnostics.LayerStats`
    (input to output).  Each unit's region shares are sorted, largest first,
    and averaged over the layer's units; the bar stacks those averages, the
    largest region at the bottom, so a bar that is one solid block is a layer
    of degenerate units.  The share of degenerate units is written above each
    bar.  Returns ``path``.
    """
    _check_panels(panels, "plot_region_shares")
    figure, axes = _figure(len(panels))
    from matplotlib import colormaps   # importable once _figure has succeeded

    regions = max(s.regions for stats in panels.values() for s in stats)
    colors = colormaps["viridis"](numpy.linspace(0.1, 0.9, regions))
    for ax, (title, stats) in zip(axes, panels.items()):
        sorted_shares = numpy.zeros((len(stats), regions))
        for i, s in enumerate(stats):
            sorted_shares[i, :s.regions] = -numpy.sort(-s.shares, axis=1).mean(axis=0)
        positions = numpy.arange(1, len(stats) + 1)
        bottom = numpy.zeros(len(stats))
        for r in range(regions):
            label = "most used region" if r == 0 else f"rank {r + 1}"
            ax.bar(positions, sorted_shares[:, r], bottom=bottom, color=colors[r], label=label)
            bottom += sorted_shares[:, r]
        for x, s in zip(positions, stats):
            ax.text(x, 1.01, f"{100 * s.degenerate_share:.0f}", ha="center", va="bottom",
                    fontsize=7)
        ax.set_ylim(0, 1.12)
        ax.set_xticks(positions)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("layer (numbers on top: % degenerate units)", fontsize=8)
        ax.set_ylabel("mean sorted region share", fontsize=8)
        ax.tick_params(labelsize=7)
    figure.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center",
                  ncols=regions, fontsize=7)
    return _save(figure, path)


def plot_largest_share_histogram(panels, path, bins=40):
    """Histogram of each unit's largest region share, stacked by layer, one panel per entry.

    The x axis runs from 0 to 1; a dashed line marks the 99% threshold of a
    degenerate unit.  Layers are coloured from dark (first) to light (last).
    Returns ``path``.
    """
    _check_panels(panels, "plot_largest_share_histogram")
    figure, axes = _figure(len(panels))
    from matplotlib import colormaps   # importable once _figure has succeeded

    edges = numpy.linspace(0, 1, bins + 1)
    for ax, (title, stats) in zip(axes, panels.items()):
        colors = colormaps["viridis"](numpy.linspace(0, 0.9, len(stats)))
        units = sum(s.units for s in stats)
        labels = [f"layer {i + 1}" for i in range(len(stats))]
        ax.hist([s.largest_share for s in stats], bins=edges, stacked=True, color=colors,
                histtype="stepfilled",
                weights=[numpy.full(s.units, 1 / units) for s in stats], label=labels)
        ax.axvline(DEGENERATE_SHARE, color="black", linestyle="--", linewidth=0.8)
        ax.set_xlim(0, 1)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("largest region share of a unit", fontsize=8)
        ax.set_ylabel("fraction of units", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6, loc="best", ncols=2 if len(stats) > 6 else 1,
                  handlelength=1, columnspacing=0.8)
    return _save(figure, path)


def plot_training_curves(histories, path, metrics=("train_loss", "test_accuracy"), styles=None):
    """One panel per metric, one line per run, against the epoch.

    ``histories``: label -> list of per-epoch dicts (``Trainer.history``: each
    holds the metric names as keys; epochs where a metric is None, such as
    the test accuracy of a run with a validation split, are left out).
    ``styles``: label -> keyword arguments for ``Axes.plot`` (color,
    linestyle...), optional.  Returns ``path``.
    """
    if not histories:
        raise ValueError("plot_training_curves: nothing to plot (got no histories)")
    figure, axes = _figure(len(metrics))
    from matplotlib.ticker import MaxNLocator   # importable once _figure has succeeded

    styles = styles or {}
    for ax, metric in zip(axes, metrics):
        for label, history in histories.items():
            points = [(epoch, record[metric]) for epoch, record in enumerate(history, 1)
                      if record[metric] is not None]
            ax.plot(*zip(*points), marker=".", label=label, **styles.get(label, {}))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch", fontsize=8)
        ax.set_ylabel(metric.replace("_", " "), fontsize=8)
        ax.tick_params(labelsize=7)
    figure.legend(*axes[0].get_legend_handles_labels(), loc="outside right upper", fontsize=6)
    return _save(figure, path)


# (key in a RegionTracker entry, axis label, factor) of the two panels of a region history
_REGION_PANELS = (("degenerate_share", "degenerate units (%)", 100),
                  ("mean_entropy", "normalized entropy", 1))


def _check_history(history, what):
    if not history:
        raise ValueError(f"{what}: nothing to plot (an empty history)")


def _region_lines(series, path, title=None):
    """Two panels (degenerate share, entropy) against the epoch, one line per series.

    ``series``: label -> (epochs, {key: values}, style).  The figure's legend
    lists every label.
    """
    figure, axes = _figure(len(_REGION_PANELS))
    from matplotlib.ticker import MaxNLocator   # importable once _figure has succeeded

    for ax, (key, label, factor) in zip(axes, _REGION_PANELS):
        for name, (epochs, values, style) in series.items():
            ax.plot(epochs, [None if v is None else factor * v for v in values[key]],
                    marker=".", label=name, **style)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch (0: before training)", fontsize=8)
        ax.set_ylabel(label, fontsize=8)
        ax.tick_params(labelsize=7)
    if title:
        figure.suptitle(title, fontsize=10)
    figure.legend(*axes[0].get_legend_handles_labels(), loc="outside right upper", fontsize=6,
                  ncols=2 if len(series) > 12 else 1)
    return _save(figure, path)


def plot_region_history(history, path, title=None):
    """Per layer, the share of degenerate units and the mean normalized entropy vs the epoch.

    ``history``: :attr:`minidl.diagnostics.RegionTracker.history` (one entry
    per measurement, each with ``epoch`` and per-layer ``layers``).  One line
    per layer, named ``layer i: NAME`` from input to output.  Returns ``path``.
    """
    _check_history(history, "plot_region_history")
    epochs = [entry["epoch"] for entry in history]
    series = {}
    for i, layer in enumerate(history[0]["layers"]):
        values = {key: [entry["layers"][i][key] for entry in history]
                  for key, _, _ in _REGION_PANELS}
        series[f"layer {i + 1}: {layer['layer']}"] = (epochs, values, {})
    return _region_lines(series, path, title)


def plot_region_comparison(histories, path, styles=None, title=None):
    """Whole-model degenerate share and entropy vs the epoch, one line per run.

    ``histories``: label -> a RegionTracker history (the pooled
    ``degenerate_share`` and ``mean_entropy`` of each entry are drawn).
    ``styles``: label -> keyword arguments for ``Axes.plot``.  Returns ``path``.
    """
    if not histories:
        raise ValueError("plot_region_comparison: nothing to plot (got no histories)")
    styles = styles or {}
    series = {}
    for label, history in histories.items():
        _check_history(history, f"plot_region_comparison: {label!r}")
        values = {key: [entry[key] for entry in history] for key, _, _ in _REGION_PANELS}
        series[label] = ([entry["epoch"] for entry in history], values,
                         styles.get(label, {}))
    return _region_lines(series, path, title)
