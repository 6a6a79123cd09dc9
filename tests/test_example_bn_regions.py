"""examples/bn_regions.py in --quick mode: it finishes and writes its tables and plots."""
import importlib.util
import json
from pathlib import Path

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
    for run in saved["maxout_mlp"]:
        layers = run["init"]["layers"]
        assert len(layers) == run["depth"] and all(l["kind"] == "maxout" for l in layers)
        assert len(run["history"]) == example.SIZES["quick"]["epochs"]
    if importlib.util.find_spec("matplotlib") is not None:
        names = {p.name for p in out.glob("*.png")}
        assert {"training_curves.png", "region_shares_nin.png", "region_shares_depth2.png",
                "largest_share_depth4.png"} <= names
        assert all((out / n).stat().st_size > 0 for n in names)


def test_batch_norm_keeps_every_unit_in_use_at_initialization(quick_run):
    _, results = quick_run
    for run in results["maxout_mlp"]:
        if run["setting"] == "BN":
            assert run["init"]["degenerate_share"] == 0
            assert run["init"]["mean_entropy"] > 0.9


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
