"""Region statistics: counts on inputs with known answers, formulas, covariance, hooks, devices."""
import importlib.util
import json
import math

import fake_cupy
import numpy
import pytest
from helpers import host
from hypothesis import given
from hypothesis import strategies as st

import minidl
from minidl import nn
from minidl.cli import main as minidl_main
from minidl.diagnostics import (LayerStats, RegionMonitor, collect,
                                condition_number, degenerate_units, format_table,
                                normalized_entropy, numerical_rank, region_shares)


def run(model, x, device, **kwargs):
    """The LayerStats of one forward pass of host array ``x``, and the model's output."""
    with RegionMonitor(model, **kwargs) as monitor:
        y = model(minidl.tensor(x, device=device))
    return monitor.results(), host(y)


# ---------------------------------------------------------------------------- region counts

def test_relu_regions_follow_the_sign_of_the_input(device):
    x = numpy.array([[1.0, -1.0, 2.0],
                     [0.5, 0.0, -2.0],       # 0 is not positive: the unit outputs 0 there
                     [3.0, -4.0, 1.0],
                     [2.0, -0.5, -1.0]])
    (stats,), _ = run(nn.Sequential(nn.ReLU()), x, device)
    assert stats.kind == "relu" and stats.samples == 4
    numpy.testing.assert_array_equal(stats.counts, [[0, 4], [4, 0], [2, 2]])
    numpy.testing.assert_array_equal(stats.degenerate, [True, True, False])
    assert stats.degenerate_share == pytest.approx(2 / 3)


def test_maxout_regions_count_the_winning_piece_and_ties_go_to_the_first(device):
    # two units of three pieces; unit 0's winners: piece 1, piece 1, tie of all -> 0, tie 1/2 -> 1
    x = numpy.array([[0.0, 5.0, 1.0, 9.0, 0.0, 0.0],
                     [1.0, 2.0, 0.0, 7.0, 8.0, 0.0],
                     [3.0, 3.0, 3.0, 0.0, 0.0, 4.0],
                     [0.0, 2.0, 2.0, 5.0, 5.0, 5.0]])
    (stats,), _ = run(nn.Sequential(nn.Maxout(3)), x, device)
    assert (stats.kind, stats.units, stats.regions, stats.samples) == ("maxout", 2, 3, 4)
    numpy.testing.assert_array_equal(stats.counts, [[1, 3, 0], [2, 1, 1]])


@given(pieces=st.integers(1, 4), units=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_maxout_counts_agree_with_the_forward_pass_gradient_routing(pieces, units, seed):
    # Small integers make many ties; the forward routes the gradient to the winning
    # piece (the first on a tie), so the gradient of sum(y) marks exactly the winners.
    x = numpy.random.default_rng(seed).integers(-2, 3, (3, units * pieces, 2, 2)).astype(float)
    t = minidl.tensor(x, requires_grad=True)
    layer = nn.Maxout(pieces)
    with RegionMonitor(nn.Sequential(layer), covariance=False) as monitor:
        layer(t).sum().backward()
    winners = t.grad.reshape(3, units, pieces, 2, 2).sum(axis=(0, 3, 4))
    numpy.testing.assert_array_equal(monitor.results()[0].counts, winners)


def test_conv_inputs_count_every_sample_and_position(device):
    rng = numpy.random.default_rng(0)
    x = rng.standard_normal((2, 6, 3, 4))
    relu_stats, _ = run(nn.Sequential(nn.ReLU()), x, device)
    maxout_stats, _ = run(nn.Sequential(nn.Maxout(2)), x, device)
    positive = (x > 0).sum(axis=(0, 2, 3))
    numpy.testing.assert_array_equal(relu_stats[0].counts, numpy.stack([24 - positive,
                                                                         positive], axis=1))
    winner = x.reshape(2, 3, 2, 3, 4).argmax(axis=2)          # (N, units, H, W)
    expected = [[(winner[:, u] == p).sum() for p in range(2)] for u in range(3)]
    assert maxout_stats[0].samples == 2 * 3 * 4
    numpy.testing.assert_array_equal(maxout_stats[0].counts, expected)


def test_maxout_along_another_axis():
    x = numpy.array([[[1.0, 2.0, 0.0, -1.0]], [[3.0, 2.0, 5.0, 6.0]]])    # (2, 1, 4)
    (stats,), _ = run(nn.Sequential(nn.Maxout(2, axis=-1)), x, "cpu")
    numpy.testing.assert_array_equal(stats.counts, [[1, 1], [1, 1]])


def test_counts_accumulate_over_batches_and_reset_forgets_them(device):
    model = nn.Sequential(nn.ReLU())
    with RegionMonitor(model, covariance=False) as monitor:
        for batch in (numpy.ones((3, 2)), -numpy.ones((5, 2))):
            model(minidl.tensor(batch, device=device))
        numpy.testing.assert_array_equal(monitor.results()[0].counts, [[5, 3], [5, 3]])
        monitor.reset()
        model(minidl.tensor(numpy.ones((2, 2)), device=device))
        numpy.testing.assert_array_equal(monitor.results()[0].counts, [[0, 2], [0, 2]])


# ---------------------------------------------------------------------------- formulas

def test_shares_entropy_and_degenerate_units_from_constructed_counts():
    counts = numpy.array([[25, 25, 25, 25],      # every piece equally: entropy 1
                          [100, 0, 0, 0],        # one piece: entropy 0, degenerate
                          [50, 50, 0, 0],        # two pieces: log 2 / log 4 = 1/2
                          [990, 10, 0, 0],       # exactly 99%: not above the threshold
                          [995, 5, 0, 0]])       # 99.5%: degenerate
    shares = region_shares(counts)
    numpy.testing.assert_allclose(shares.sum(axis=1), 1)
    numpy.testing.assert_allclose(shares[2], [0.5, 0.5, 0, 0])
    p = 0.995
    expected = [1, 0, 0.5, -(0.99 * math.log(0.99) + 0.01 * math.log(0.01)) / math.log(4),
                -(p * math.log(p) + (1 - p) * math.log(1 - p)) / math.log(4)]
    numpy.testing.assert_allclose(normalized_entropy(shares), expected, atol=1e-12)
    numpy.testing.assert_array_equal(degenerate_units(shares), [False, True, False, False, True])
    stats = LayerStats("layer", "maxout", counts)
    assert stats.degenerate_share == pytest.approx(2 / 5)
    assert stats.mean_entropy == pytest.approx(numpy.mean(expected))
    numpy.testing.assert_allclose(stats.largest_share, [0.25, 1, 0.5, 0.99, 0.995])


def test_entropy_of_a_single_region_is_zero():
    numpy.testing.assert_array_equal(normalized_entropy(numpy.ones((3, 1))), [0, 0, 0])


def test_region_shares_rejects_bad_counts():
    with pytest.raises(ValueError, match=r"counts must have shape \(units, regions\)"):
        region_shares(numpy.ones(3))
    with pytest.raises(ValueError, match="a unit has no inputs counted"):
        region_shares(numpy.array([[1, 2], [0, 0]]))


def test_condition_number_matches_numpy_on_a_known_covariance():
    q, _ = numpy.linalg.qr(numpy.random.default_rng(1).standard_normal((4, 4)))
    covariance = q @ numpy.diag([8.0, 2.0, 0.5, 0.01]) @ q.T
    assert condition_number(covariance) == pytest.approx(numpy.linalg.cond(covariance))
    assert condition_number(covariance) == pytest.approx(800)
    assert numerical_rank(covariance) == 4


def test_condition_number_over_the_range_of_a_singular_covariance():
    q, _ = numpy.linalg.qr(numpy.random.default_rng(2).standard_normal((3, 3)))
    covariance = q @ numpy.diag([6.0, 1.5, 1e-17]) @ q.T
    assert numerical_rank(covariance, floor=1e-12) == 2
    assert condition_number(covariance, floor=1e-12) == pytest.approx(4)
    assert math.isnan(condition_number(numpy.full((2, 2), numpy.nan)))
    with pytest.raises(ValueError, match=r"covariance must be a square matrix, got shape \(2, 3\)"):
        condition_number(numpy.ones((2, 3)))


def test_accumulated_covariance_matches_numpy_across_batches(device):
    # A large offset: the statistics must not lose the small variance to cancellation.
    rng = numpy.random.default_rng(3)
    mixing = numpy.array([[1.0, 0.0, 0.0], [0.5, 0.2, 0.0], [0.0, 0.3, 0.05]])
    x = 1e4 + rng.standard_normal((600, 3)) @ mixing.T
    model = nn.Sequential(nn.ReLU())
    with RegionMonitor(model) as monitor:
        for start in range(0, 600, 200):
            model(minidl.tensor(x[start:start + 200], device=device))
    stats = monitor.results()[0]
    expected = numpy.cov(x, rowvar=False, bias=True)
    numpy.testing.assert_allclose(stats.covariance, expected, rtol=1e-7, atol=1e-9)
    numpy.testing.assert_allclose(stats.mean, x.mean(axis=0), rtol=1e-12)
    assert stats.rank == 3
    assert stats.condition_number == pytest.approx(numpy.linalg.cond(expected), rel=1e-6)


def test_dependent_channels_lower_the_rank_of_a_float32_layer(device):
    # 8 channels computed from 3 inputs, in float32: rank 3, not 8 rounding-noise eigenvalues
    rng = numpy.random.default_rng(4)
    x = (rng.standard_normal((500, 3)) @ rng.standard_normal((3, 8))).astype(numpy.float32)
    (stats,), _ = run(nn.Sequential(nn.Maxout(2)), x, device)
    assert stats.rank == 3
    exact = numpy.linalg.eigvalsh(numpy.cov(x.astype(float), rowvar=False, bias=True))
    assert stats.condition_number == pytest.approx(exact[-1] / exact[-3], rel=1e-3)


# ---------------------------------------------------------------------------- hooks and modes

def small_model():
    return nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.Maxout(2), nn.Linear(4, 4),
                         nn.ReLU(), nn.Linear(4, 3))


def test_hooks_leave_outputs_unchanged_and_are_removed(device):
    minidl.backend.set_default_device(device)
    model = small_model()
    x = numpy.random.default_rng(5).standard_normal((7, 6)).astype(numpy.float32)
    model.eval()
    plain = host(model(minidl.tensor(x, device=device)))
    stats, monitored = run(model, x, device)
    numpy.testing.assert_array_equal(monitored, plain)
    assert [s.name for s in stats] == ["2", "4"] and [s.kind for s in stats] == ["maxout", "relu"]
    assert all(not m._forward_hooks for m in model.modules())
    collect(model, x, batch_size=3)
    assert all(not m._forward_hooks for m in model.modules())


def test_no_host_copies_per_batch_and_one_per_layer_at_the_end(fake_gpu):
    minidl.backend.set_default_device("cuda")
    model = small_model().eval()
    batches = [minidl.tensor(numpy.ones((5, 6), dtype=numpy.float32) * i, device="cuda")
               for i in range(3)]
    fake_cupy.reset_transfers()
    for x in batches:
        model(x)
    plain = fake_cupy.transfers["to_host"]
    with RegionMonitor(model) as monitor:
        fake_cupy.reset_transfers()
        for x in batches:
            model(x)
        assert fake_cupy.transfers["to_host"] == plain
        fake_cupy.reset_transfers()
        stats = monitor.results()
    assert fake_cupy.transfers["to_host"] == len(stats) == 2


def test_batch_stats_uses_batch_statistics_and_restores_the_model(device):
    minidl.backend.set_default_device(device)
    model = nn.Sequential(nn.BatchNorm1d(4), nn.ReLU())
    x = 5 + numpy.random.default_rng(6).standard_normal((200, 4)).astype(numpy.float32)
    model.train()
    before = {k: v.copy() for k, v in model.state_dict().items()}
    # running statistics (0, 1) leave every input positive: a linear unit
    assert collect(model, x)[0].degenerate_share == 1
    # the batch's own statistics centre the inputs: both regions in use
    stats = collect(model, x, batch_size=200, batch_stats=True)[0]
    assert stats.degenerate_share == 0 and stats.mean_entropy > 0.9
    assert model.training and model[0].training
    for key, value in model.state_dict().items():
        numpy.testing.assert_array_equal(value, before[key])


def test_collect_takes_arrays_tuples_and_loaders():
    model = nn.Sequential(nn.ReLU())
    x = numpy.arange(-5.0, 5.0).reshape(5, 2).astype(numpy.float32)
    loader = minidl.data.DataLoader((x, numpy.zeros(5)), batch_size=2)
    for data in (x, (x, numpy.zeros(5)), loader):
        numpy.testing.assert_array_equal(collect(model, data, batch_size=2)[0].counts,
                                         [[3, 2], [3, 2]])


@pytest.mark.filterwarnings("ignore:invalid value encountered")
def test_nan_inputs_are_counted_and_flagged():
    x = numpy.array([[1.0, numpy.nan], [numpy.inf, -1.0]])
    (stats,), _ = run(nn.Sequential(nn.ReLU()), x, "cpu")
    assert stats.nonfinite == 2
    assert "warning: nan or inf inputs in 0" in format_table([stats])


def test_format_table_has_one_row_per_layer():
    model = small_model()
    stats = collect(model, numpy.random.default_rng(7).standard_normal((50, 6)).astype(
        numpy.float32))
    table = format_table(stats, title="small model")
    lines = table.splitlines()
    assert lines[0] == "small model" and lines[1].split()[:2] == ["layer", "type"]
    assert [line.split()[:2] for line in lines[3:]] == [["2", "maxout"], ["4", "relu"]]
    assert lines[3].split()[7] == "6/8"           # 8 channels computed from 6 inputs
    assert stats[0].summary()["degenerate_share"] == stats[0].degenerate_share


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="Sequential has no ReLU or Maxout module to monitor"):
        RegionMonitor(nn.Sequential(nn.Linear(2, 2)))
    monitor = RegionMonitor(nn.Sequential(nn.ReLU()))
    with pytest.raises(RuntimeError, match="no forward pass has gone through '0'"):
        monitor.results()
    shared = nn.ReLU()
    model = nn.Sequential(shared, nn.Linear(3, 2), shared)
    with pytest.raises(ValueError, match="'0' saw 3 units, then 2; use one module instance"):
        with RegionMonitor(model):
            model(minidl.tensor(numpy.ones((1, 3), dtype=numpy.float32)))
    relu = nn.Sequential(nn.ReLU())
    with pytest.raises(ValueError, match=r"ReLU '0' got input of shape \(3,\)"):
        with RegionMonitor(relu):
            relu(minidl.tensor(numpy.ones(3)))


# ---------------------------------------------------------------------------- minidl diagnose

def diagnose(*argv):
    return minidl_main(["diagnose"] + [str(a) for a in argv])


def test_diagnose_prints_the_table_and_writes_json_and_plots(tmp_path, capsys):
    run = tmp_path / "run"
    assert minidl_main(["train", "--model", "min-small", "--dataset", "digits", "--limit", "64",
                        "--batch-size", "32", "--epochs", "1", "--dropout", "0",
                        "--out", str(run)]) == 0
    capsys.readouterr()
    assert diagnose(run, "--limit", "20", "--out", tmp_path / "diag") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ("min-small trained on digits: 20 digits test images, evaluation mode")
    assert [line.split()[1] for line in lines[3:9]] == ["maxout"] * 6
    assert lines[3].split()[4] == str(20 * 28 * 28)            # every pixel position counts
    layers = json.loads((tmp_path / "diag" / "diagnostics.json").read_text())["layers"]
    assert [layer["layer"] for layer in layers][:2] == ["block1.4", "block1.7"]
    if importlib.util.find_spec("matplotlib") is not None:
        assert (tmp_path / "diag" / "region_shares.png").stat().st_size > 0
        assert (tmp_path / "diag" / "largest_share.png").stat().st_size > 0
    assert diagnose(run / "checkpoint.npz", "--limit", "8", "--no-covariance") == 0
    assert (run / "diagnostics" / "diagnostics.json").is_file()
    capsys.readouterr()
    assert diagnose(run, "--dataset", "cifar10") == 2
    assert "trained on digits images and cannot take cifar10" in capsys.readouterr().err
