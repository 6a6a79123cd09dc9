"""examples/bn_regions.py in --quick mode: it finishes and writes its tables and plots.

Every number of its tables is a mean +- std over seeds; results.json keeps the
per-seed values, from which the tests recompute the tables.
"""
import contextlib
import importlib.util
import io
import json
from pathlib import Path

import numpy
import pytest

import minidl
from minidl import nn
from minidl.tables import format_table

SCRIPT = Path(__file__).resolve().parent.parent / "examples" / "bn_regions.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("bn_regions", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def quick_run(example, tmp_path_factory):
    out = tmp_path_factory.mktemp("bn_regions")
    results = example.main(["--quick", "--out", str(out)])
    return out, results


SEEDS = [0, 1, 2]     # the default --seeds 3 from --seed 0


def test_quick_run_prints_one_row_per_depth_and_setting(example, quick_run):
    out, results = quick_run
    depths = example.SIZES["quick"]["depths"]
    rows = [(r["depth"], r["setting"]) for r in results["maxout_mlp"]]
    assert rows == [(d, s) for d in depths for s in example.SETTINGS]
    header, body = example.mlp_table(results["maxout_mlp"])
    printed = format_table(header, body).splitlines()
    assert len(printed) == 2 + len(depths) * len(example.SETTINGS)
    assert [line.split()[0] for line in printed[2:]] == [str(d) for d, _ in rows]


def test_quick_run_writes_markdown_json_and_plots(example, quick_run):
    out, results = quick_run
    page = (out / "results.md").read_text()
    assert page.startswith("# Batch norm and linear regions, measured")
    assert page.count("| 2 | BN |") == 1 and "| nin-small | relu | no |" in page
    saved = json.loads((out / "results.json").read_text())
    assert saved["config"]["quick"] is True
    assert len(saved["maxout_mlp"]) == len(results["maxout_mlp"])
    assert [r["model"] for r in saved["nin"]] == example.SIZES["quick"]["nin_models"]
    epochs = example.SIZES["quick"]["epochs"]
    for row in saved["maxout_mlp"]:
        assert [run["seed"] for run in row["runs"]] == SEEDS
        for run in row["runs"]:
            layers = run["init"]["layers"]
            assert len(layers) == row["depth"] and all(l["kind"] == "maxout" for l in layers)
            assert len(run["history"]) == epochs
            assert [e["epoch"] for e in run["regions"]] == list(range(epochs + 1))
    if importlib.util.find_spec("matplotlib") is not None:
        names = {p.name for p in out.glob("*.png")}
        assert {"training_curves.png", "region_shares_nin.png", "region_shares_depth2.png",
                "largest_share_depth4.png", "regions_depth4.png", "regions_nin.png"} <= names
        assert all((out / n).stat().st_size > 0 for n in names)
        assert "![Degenerate share and entropy over training at depth 4](regions_depth4.png)" \
            in page


def test_batch_norm_keeps_every_unit_in_use_at_initialization(quick_run):
    _, results = quick_run
    for row in results["maxout_mlp"]:
        if row["setting"] == "BN":
            for run in row["runs"]:
                assert run["init"]["degenerate_share"] == 0
                assert run["init"]["mean_entropy"] > 0.9
                assert all(e["degenerate_share"] == 0 for e in run["regions"])


def seed_values(row):
    """Each table number's per-seed values, read back from results.json's runs."""
    runs = row["runs"]
    return {"degenerate_init": [r["init"]["degenerate_share"] for r in runs],
            "degenerate_trained": [r["trained"]["degenerate_share"] for r in runs],
            "entropy_init": [r["init"]["mean_entropy"] for r in runs],
            "entropy_trained": [r["trained"]["mean_entropy"] for r in runs],
            "test_accuracy": [r["test_accuracy"] for r in runs if r["error"] is None]}


def test_means_and_stds_come_from_the_per_seed_values(example, quick_run):
    out, _ = quick_run
    saved = json.loads((out / "results.json").read_text())
    for part, table in (("maxout_mlp", example.mlp_table), ("nin", example.nin_table)):
        rows = saved[part]
        header, body = table(rows)
        for row, cells in zip(rows, body):
            printed = dict(zip(header[-5:], cells[-5:]))
            for name, values in seed_values(row).items():
                mean, std = numpy.mean(values), numpy.std(values, ddof=1)
                assert row["summary"][name]["mean"] == pytest.approx(mean, rel=1e-12)
                assert row["summary"][name]["std"] == pytest.approx(std, rel=1e-12, abs=1e-15)
                column = name.replace("_", " ").replace("accuracy", "acc")
                if name.startswith("entropy"):
                    assert printed[column] == f"{mean:.3f} ± {std:.3f}"
                else:
                    assert printed[column].startswith(f"{100 * mean:.1f} ± {100 * std:.1f}%")
            tracked = [[e["degenerate_share"] for e in r["regions"]] for r in row["runs"]]
            assert [e["degenerate_share"]["mean"] for e in row["regions"]] == pytest.approx(
                numpy.mean(tracked, axis=0), rel=1e-12)


def test_the_seeds_differ(quick_run):
    _, results = quick_run
    for row in results["maxout_mlp"] + results["nin"]:
        losses = [run["history"][0]["train_loss"] for run in row["runs"]]
        assert len(set(losses)) == len(SEEDS), row["label"]
    no_bn = [row for row in results["maxout_mlp"] if row["setting"] == "no BN"]
    assert all(len({run["init"]["mean_entropy"] for run in row["runs"]}) == len(SEEDS)
               for row in no_bn)


def test_every_number_of_the_tables_has_a_plus_minus(example, quick_run):
    _, results = quick_run
    for table in (example.mlp_table(results["maxout_mlp"]), example.nin_table(results["nin"])):
        header, body = table
        assert header[-5:] == example.NUMBER_HEADER
        assert all(" ± " in cell for row in body for cell in row[-5:])
    for _, _, layers in example.entropy_table(results["nin"])[1]:
        assert all("±" in value for value in layers.split())
    for _, epochs in example.regions_table(results["nin"])[1]:
        assert all(" ± " in value for value in epochs.split("  "))


@pytest.fixture(scope="module")
def second_run(example, quick_run, tmp_path_factory):
    """One seed, depth 2 only; a made-up CHOSEN_LR and a model this minidl lacks; --docs."""
    out = tmp_path_factory.mktemp("bn_regions_again")
    page = out / "page.md"
    page.write_text(f"# Results\n\nbefore\n\n{example.DOCS_BEGIN}\nthe previous tables\n"
                    f"{example.DOCS_END}\n\nafter\n")
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setattr(example.recipes, "CHOSEN_LR", {"nin-small": 0.05}, raising=False)
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            results = example.main(["--quick", "--seeds", "1", "--depths", "2", "--nin-models",
                                    "nin-small", "no-such-model", "--out", str(out / "run"),
                                    "--docs", str(page)])
    finally:
        monkeypatch.undo()
    return out, results, printed.getvalue()


def without_timings(value):
    """``value`` with every wall-time entry ("seconds", "time_s") left out, recursively."""
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if k not in ("seconds", "time_s")}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


def test_a_seed_repeats_bit_for_bit_whatever_the_other_seeds(quick_run, second_run):
    first = [row for row in quick_run[1]["maxout_mlp"] if row["depth"] == 2]
    again = second_run[1]["maxout_mlp"]
    assert [row["setting"] for row in again] == [row["setting"] for row in first]
    for a, b in zip(first, again):
        assert without_timings(a["runs"][0]) == without_timings(b["runs"][0])
        assert b["summary"]["test_accuracy"]["std"] is None      # one seed: no spread


def test_a_missing_model_is_skipped_and_the_chosen_lr_is_used(second_run):
    _, results, printed = second_run
    assert "no-such-model: skipped, this minidl has no such model" in printed
    assert [row["model"] for row in results["nin"]] == ["nin-small"]
    assert results["nin"][0]["lr"] == 0.05
    assert "| nin-small | relu | no | 0.05 |" in (second_run[0] / "run" / "results.md").read_text()


def test_docs_gets_the_tables_between_its_markers_and_the_plots_beside_it(example, second_run):
    out = second_run[0]
    page = (out / "page.md").read_text()
    assert page.startswith("# Results\n\nbefore\n\n") and page.endswith("\nafter\n")
    assert "the previous tables" not in page and page.count(example.DOCS_BEGIN) == 1
    block = page.split(example.DOCS_BEGIN)[1].split(example.DOCS_END)[0]
    assert "\n### Maxout MLPs on digits\n" in block and "\n# " not in block
    assert "| 2 | BN |" in block
    assert (out / "results" / "results.json").is_file()
    if importlib.util.find_spec("matplotlib") is not None:
        assert "(results/region_shares_depth2.png)" in block
        assert (out / "results" / "region_shares_depth2.png").is_file()


def test_scaled_init_gives_pre_activations_of_variance_one(example):
    images = example.load(200)[0][0]
    minidl.manual_seed(0)
    model = example.maxout_mlp(3, 8, 4, batch_norm=False)
    example.scale_preserving_init(model, images)
    x = minidl.tensor(images)
    with minidl.no_grad():
        for module in model:
            x = module(x)
            if isinstance(module, nn.Linear) and x.shape[1] == 32:
                assert float(x.data.std()) == pytest.approx(1, rel=1e-4)
