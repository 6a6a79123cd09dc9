"""Plots: PNG files of the documented pixel size; a clear error without matplotlib."""
import importlib.util
import struct
import sys

import numpy
import pytest

from minidl import plots
from minidl.diagnostics import LayerStats

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
needs_matplotlib = pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                                      reason='drawing needs the "plot" extra (matplotlib)')


def png_size(path):
    """(width, height) from the IHDR chunk, which follows the 8-byte signature."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    assert len(data) > 5000          # more than a blank canvas's few hundred bytes
    return struct.unpack(">II", data[16:24])


def layers(depth, regions, seed):
    rng = numpy.random.default_rng(seed)
    return [LayerStats(f"layer{i}", "maxout", rng.integers(0, 50, (6, regions)) + 1)
            for i in range(depth)]


@needs_matplotlib
@pytest.mark.parametrize("panels", [1, 2, 3])
def test_region_share_bars_and_histograms(tmp_path, panels):
    stats = {f"setting {i}": layers(3 + i, 4, i) for i in range(panels)}
    stats["relu layers"] = [LayerStats("r", "relu", numpy.array([[10, 0], [3, 7]]))]
    bars = plots.plot_region_shares(stats, tmp_path / "bars.png")
    hist = plots.plot_largest_share_histogram(stats, tmp_path / "sub" / "hist.png")
    for path in (bars, hist):
        assert png_size(path) == plots.figure_pixels(panels + 1)


def test_figure_pixels_follow_the_panel_grid_and_are_at_least_800_wide():
    width, height = (round(v * plots.DPI) for v in plots.PANEL_INCHES)
    assert plots.figure_pixels(1) == (round(plots.MIN_WIDTH_INCHES * plots.DPI), height)
    assert plots.figure_pixels(4) == (2 * width, 2 * height)
    assert plots.figure_pixels(5) == (2 * width, 3 * height)
    assert min(plots.figure_pixels(n)[0] for n in range(1, 6)) >= 800


@needs_matplotlib
def test_training_curves(tmp_path):
    histories = {"BN": [{"train_loss": 2.0, "test_accuracy": 0.3},
                        {"train_loss": 1.0, "test_accuracy": 0.6}],
                 "no BN": [{"train_loss": 2.3, "test_accuracy": 0.1}]}
    path = plots.plot_training_curves(histories, tmp_path / "curves.png",
                                      styles={"no BN": {"linestyle": "--"}})
    assert png_size(path) == plots.figure_pixels(2)
    path = plots.plot_training_curves(histories, tmp_path / "loss.png", metrics=("train_loss",))
    assert png_size(path) == plots.figure_pixels(1)


def legend_labels(monkeypatch, draw):
    """The legend entries of the one figure ``draw()`` saves."""
    figures = []
    monkeypatch.setattr(plots, "_save", lambda figure, path: figures.append(figure) or path)
    draw()
    (figure,) = figures
    legends = figure.legends + [ax.get_legend() for ax in figure.axes if ax.get_legend()]
    return [[text.get_text() for text in legend.get_texts()] for legend in legends]


@needs_matplotlib
def test_every_series_is_in_the_legend(tmp_path, monkeypatch):
    stats = {"deep": layers(12, 4, 0), "shallow": layers(3, 4, 1)}
    hist = legend_labels(monkeypatch, lambda: plots.plot_largest_share_histogram(stats, "h"))
    assert [sorted(labels) for labels in hist] == [
        sorted(f"layer {i}" for i in range(1, 13)), ["layer 1", "layer 2", "layer 3"]]
    bars = legend_labels(monkeypatch, lambda: plots.plot_region_shares(stats, "b"))
    assert bars == [["most used region", "rank 2", "rank 3", "rank 4"]]
    histories = {f"run {i}": [{"train_loss": 1.0, "test_accuracy": 0.5}] for i in range(12)}
    curves = legend_labels(monkeypatch, lambda: plots.plot_training_curves(histories, "c"))
    assert curves == [list(histories)]


def region_history(layer_names, epochs, seed):
    """A RegionTracker-like history of random numbers."""
    rng = numpy.random.default_rng(seed)
    return [{"epoch": e, "degenerate_share": rng.random(), "mean_entropy": rng.random(),
             "layers": [{"layer": name, "degenerate_share": rng.random(),
                         "mean_entropy": rng.random()} for name in layer_names]}
            for e in range(epochs + 1)]


def plotted_lines(monkeypatch, draw):
    """label -> (x, y) of every line in every panel of the one figure ``draw()`` saves."""
    figures = []
    monkeypatch.setattr(plots, "_save", lambda figure, path: figures.append(figure) or path)
    draw()
    (figure,) = figures
    return [{line.get_label(): (list(line.get_xdata()), list(line.get_ydata()))
             for line in ax.get_lines()} for ax in figure.axes]


@needs_matplotlib
def test_region_history_draws_one_line_per_layer_in_both_panels(tmp_path, monkeypatch):
    names = [f"features.{i}" for i in range(9)]
    history = region_history(names, 3, 0)
    assert png_size(plots.plot_region_history(history, tmp_path / "r.png")) == \
        plots.figure_pixels(2)
    degenerate, entropy = plotted_lines(monkeypatch,
                                        lambda: plots.plot_region_history(history, "r"))
    labels = [f"layer {i + 1}: {name}" for i, name in enumerate(names)]
    assert list(degenerate) == list(entropy) == labels
    for i, label in enumerate(labels):
        assert degenerate[label] == ([0, 1, 2, 3],
                                     [100 * e["layers"][i]["degenerate_share"] for e in history])
        assert entropy[label][1] == [e["layers"][i]["mean_entropy"] for e in history]
    legend = legend_labels(monkeypatch, lambda: plots.plot_region_history(history, "r"))
    assert legend == [labels]


@needs_matplotlib
def test_region_comparison_draws_one_line_per_run(tmp_path, monkeypatch):
    histories = {"BN": region_history(["a", "b"], 2, 1), "no BN": region_history(["a"], 2, 2)}
    assert png_size(plots.plot_region_comparison(histories, tmp_path / "c.png")) == \
        plots.figure_pixels(2)
    degenerate, entropy = plotted_lines(
        monkeypatch, lambda: plots.plot_region_comparison(histories, "c",
                                                          styles={"BN": {"color": "k"}}))
    for label, history in histories.items():
        assert degenerate[label][1] == [100 * e["degenerate_share"] for e in history]
        assert entropy[label][1] == [e["mean_entropy"] for e in history]
    assert legend_labels(monkeypatch, lambda: plots.plot_region_comparison(histories, "c")) == \
        [list(histories)]


def test_empty_input_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="plot_region_shares: nothing to plot"):
        plots.plot_region_shares({}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="panel 'a' has no layers"):
        plots.plot_largest_share_histogram({"a": []}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="plot_training_curves: nothing to plot"):
        plots.plot_training_curves({}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="plot_region_history: nothing to plot"):
        plots.plot_region_history([], tmp_path / "x.png")
    with pytest.raises(ValueError, match="plot_region_comparison: 'a': nothing to plot"):
        plots.plot_region_comparison({"a": []}, tmp_path / "x.png")


def test_missing_matplotlib_says_how_to_install_it(tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)     # makes `import matplotlib` fail
    with pytest.raises(ImportError, match=r'pip install "minidl\[plot\]"'):
        plots.plot_region_shares({"a": layers(2, 4, 0)}, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
