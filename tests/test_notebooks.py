"""The teaching notebooks (notebooks/*.py) run top to bottom and show what they claim.

Each notebook runs once, through the code that renders it for the docs site
(scripts/render_notebooks.py), in a fresh namespace; the tests then check the
variables that matter, with references of their own where one exists.  The
notebooks teach on the CPU with NumPy arrays, so they run on the default device only.
"""
import os
import re
import sys
import traceback

import numpy
import pytest

import minidl
from helpers import import_script

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
render_notebooks = import_script("render_notebooks")


def needs_matplotlib():
    pytest.importorskip("matplotlib", reason='the notebooks draw with matplotlib: '
                        'pip install -e ".[plot]"')


@pytest.fixture(scope="module")
def runs():
    """name -> (cells, namespace) of every notebook, each run once."""
    needs_matplotlib()
    runs = {}
    for path in render_notebooks.notebook_paths():
        runs[os.path.basename(path)[:-3]] = render_notebooks.run(path)
    return runs


def figures(cells):
    return [png for cell in cells for png in cell.figures]


def test_there_are_the_three_notebooks(runs):
    assert set(runs) == {"batch_norm_by_hand", "maxout_routing", "bn_regions"}
    for name, (cells, _) in runs.items():
        assert cells[0].kind == "markdown" and cells[0].source.startswith("# "), name
        prose = sum(cell.kind == "markdown" for cell in cells)
        assert prose >= 5 and prose >= len(cells) // 3, f"{name}: {prose} markdown cells"


def test_batch_norm_derivations_agree_and_pass_gradcheck(runs):
    _, ns = runs["batch_norm_by_hand"]
    assert set(ns["differences"]) == {"graph", "closed form", "F.batch_norm"}
    assert max(max(row) for row in ns["differences"].values()) < 1e-12
    assert ns["checks"] == {"BatchNormByHand": True, "F.batch_norm": True}
    assert isinstance(ns["caught"], minidl.GradcheckError)
    assert re.search(r"input 0 .* numeric .* analytic", str(ns["caught"]))


def test_batch_norm_by_hand_matches_pytorch(runs):
    torch = pytest.importorskip("torch")
    _, ns = runs["batch_norm_by_hand"]
    x, gamma, beta = (torch.tensor(ns[k], requires_grad=True) for k in ("x", "gamma", "beta"))
    y = torch.nn.functional.batch_norm(x, None, None, gamma, beta, training=True, eps=ns["eps"])
    y.backward(torch.tensor(ns["g"]))
    numpy.testing.assert_allclose(ns["y"], y.detach().numpy(), rtol=1e-7, atol=1e-12)
    for mine, theirs in zip(ns["graph"], (x.grad, gamma.grad, beta.grad)):
        numpy.testing.assert_allclose(mine, theirs.numpy(), rtol=1e-7, atol=1e-12)


def test_maxout_gradient_goes_to_the_first_winner(runs):
    cells, ns = runs["maxout_routing"]
    z, w = ns["z"].numpy(), ns["w"]
    assert ns["one_hot"]
    numpy.testing.assert_array_equal(ns["winner"], z.argmax(axis=1))   # argmax: first maximum
    assert set(ns["winner"]) == {0, 1, 2}                # every piece wins somewhere
    numpy.testing.assert_array_equal(ns["t"].grad[:, 0], w[ns["winner"]])
    grad, ties = ns["z2"].grad, ns["tied"]
    assert ties.sum() > 100 and (ns["winners"][ties] >= 2).all()
    numpy.testing.assert_array_equal(grad[ties], numpy.tile([1.0, 0.0, 0.0], (ties.sum(), 1)))
    numpy.testing.assert_array_equal(grad.sum(axis=1), ns["dy"][:, 0])
    assert len(figures(cells)) == 3


def test_bn_keeps_maxout_units_in_several_regions(runs):
    cells, ns = runs["bn_regions"]
    initial = ns["initial"]
    depth = ns["DEPTH"]
    assert [len(initial[name]) for name in ("BN", "no BN")] == [depth, depth]
    assert all(s.degenerate_share == 0 for s in initial["BN"])
    assert initial["no BN"][-1].degenerate_share > 0.5        # the deepest layer, without BN
    no_bn = [s.mean_entropy for s in initial["no BN"]]
    assert no_bn[-1] < no_bn[0] / 2 and min(s.mean_entropy for s in initial["BN"]) > 0.9
    for history in ns["histories"].values():
        assert len(history) == ns["EPOCHS"] and history[-1]["train_loss"] < history[0]["train_loss"]
    assert len(figures(cells)) == 3


def test_pages_show_code_output_and_figures(runs):
    for name, (cells, _) in runs.items():
        text = render_notebooks.page(cells, name)
        count = len(figures(cells))
        assert re.findall(r"!\[Figure (\d+) of \w+\]\((\w+)-(\d+)\.png\)", text) == \
            [(str(k), name, str(k)) for k in range(1, count + 1)]
        code = [cell for cell in cells if cell.kind == "code"]
        assert text.count("```python\n") == len(code)
        assert text.count("```text\n") == sum(bool(cell.output) for cell in code)
        assert f"`notebooks/{name}.py`" in text and "pip install jupytext" in text
        for cell in cells:
            assert cell.source in text
    bn_text = render_notebooks.page(runs["batch_norm_by_hand"][0], "batch_norm_by_hand")
    assert "{'BatchNormByHand': True, 'F.batch_norm': True}" in bn_text


def test_every_notebook_is_in_the_docs_nav():
    with open(os.path.join(ROOT, "mkdocs.yml"), encoding="utf-8") as f:
        nav = f.read().split("\nnav:", 1)[1].split("\n\n", 1)[0]
    for path in render_notebooks.notebook_paths():
        assert f"notebooks/{os.path.basename(path)[:-3]}.md" in nav, path


def write(tmp_path, text):
    path = tmp_path / "lesson.py"
    path.write_text(text)
    return str(path)


def test_read_cells_skips_the_header_and_uncomments_markdown(tmp_path):
    path = write(tmp_path, "# ---\n# jupyter: x\n# ---\n\n# %% [markdown]\n# # Title\n#\n"
                           "# $a$ text\n\n# %%\nx = 1\n\n\ny = 2\n\n# %% cell title\nz = 3\n")
    cells = render_notebooks.read_cells(path)
    assert [(c.kind, c.source, c.line) for c in cells] == [
        ("markdown", "# Title\n\n$a$ text", 6), ("code", "x = 1\n\n\ny = 2", 11),
        ("code", "z = 3", 17)]


@pytest.mark.parametrize("text, message", [
    ("x = 1\n# %%\n", r"lesson\.py:1: code before the first '# %%' cell marker"),
    ("# %% [raw]\nx\n", r"lesson\.py:1: unknown cell type \[raw\]"),
    ("# %% [markdown]\nnot a comment\n", r"lesson\.py:2: a markdown cell line must be a comment"),
    ("# just a comment\n", r"lesson\.py: no '# %%' cells"),
])
def test_read_cells_names_the_file_and_line_of_a_mistake(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        render_notebooks.read_cells(write(tmp_path, text))


def test_run_keeps_output_in_a_temporary_directory(tmp_path):
    needs_matplotlib()
    path = write(tmp_path, "# %%\nimport os\nwhere = os.getcwd()\nprint('in', where)\n")
    (cell,), ns = render_notebooks.run(path)
    assert cell.output == f"in {ns['where']}\n" and cell.figures == []
    assert ns["where"] != os.getcwd() and not os.path.exists(ns["where"])   # removed after


def test_an_error_names_the_notebook_line(tmp_path):
    needs_matplotlib()
    path = write(tmp_path, "# %%\nx = 1\n\n# %%\ny = x + 1\n\nz = y / 0\n")
    with pytest.raises(ZeroDivisionError) as error:
        render_notebooks.run(path)
    frame = traceback.extract_tb(error.tb)[-1]
    assert (frame.filename, frame.lineno, frame.line) == (path, 7, "z = y / 0")


def test_without_matplotlib_the_error_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)       # makes the import fail
    with pytest.raises(ImportError, match=r'matplotlib, which is not installed: pip install '
                                          r'-e "\.\[plot\]"'):
        render_notebooks.run(write(tmp_path, "# %%\nx = 1\n"))


def test_jupytext_reads_the_same_cells():
    """Where jupytext is installed (the notebooks extra), Jupyter sees the cells we run."""
    jupytext = pytest.importorskip("jupytext", reason='pip install -e ".[notebooks]"')
    for path in render_notebooks.notebook_paths():
        notebook = jupytext.read(path)
        assert notebook.metadata["jupytext"]["text_representation"]["format_name"] == "percent"
        assert [(cell.cell_type, cell.source.strip()) for cell in notebook.cells] == \
            [(cell.kind, cell.source) for cell in render_notebooks.read_cells(path)], path
