"""Run the teaching notebooks of ``notebooks/`` and turn them into pages of the docs site.

A notebook is a Python file in jupytext's "percent" format: ``# %%`` starts a
code cell, ``# %% [markdown]`` a Markdown cell whose lines are comments
(``# text``); comment lines before the first cell (jupytext's header) are
skipped.  Jupyter opens such a file as a notebook once jupytext is installed,
and plain Python runs it as a script.

:func:`run` executes the cells in order in one fresh namespace, as a kernel
would, in a temporary working directory and with matplotlib's Agg backend.
After each code cell it keeps what the cell printed to stdout and every open
pyplot figure as PNG bytes (then closes them): what Jupyter would show below
the cell.  :func:`page` writes the Markdown of a run: prose as written, code in
``python`` blocks, printed text in ``text`` blocks, figures as images.

As an MkDocs hook (``mkdocs.yml``, ``hooks:``), :func:`on_files` runs every
notebook at build time and adds ``notebooks/NAME.md`` and its figures
``notebooks/NAME-K.png`` to the site; nothing generated is written into
``docs/``.  ``tests/test_notebooks.py`` runs the notebooks with the same code.
"""
import contextlib
import dataclasses
import io
import os
import re
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = os.path.join(ROOT, "notebooks")
CELL = re.compile(r"^# %%[^\[\n]*(?:\[(?P<kind>\w+)\])?[ \t]*$")
JUPYTER = ('To run it in Jupyter: `pip install jupytext`, then open `notebooks/{name}.py` '
           '(in JupyterLab: right-click, *Open With*, *Notebook*).')


@dataclasses.dataclass
class Cell:
    """One cell: ``kind`` "code" or "markdown", its text, the file line it starts on."""

    kind: str
    source: str
    line: int
    output: str = ""
    figures: list = dataclasses.field(default_factory=list)    # PNG bytes, in order


def notebook_paths():
    """The notebook sources, ``notebooks/*.py``, sorted by name."""
    return sorted(os.path.join(NOTEBOOKS, name) for name in os.listdir(NOTEBOOKS)
                  if name.endswith(".py") and not name.startswith("_"))


def read_cells(path):
    """The cells of a percent-format file, without the header comments and blank edges."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    cells, kind, start, body = [], None, 0, []

    def close():
        while body and not body[-1].strip():
            body.pop()
        if kind is not None and body:
            cells.append(Cell(kind, "\n".join(body), start))

    for number, line in enumerate(lines, 1):
        marker = CELL.match(line)
        if marker:
            close()
            kind = marker["kind"] or "code"
            if kind not in ("code", "markdown"):
                raise ValueError(f"{path}:{number}: unknown cell type [{kind}]; "
                                 f"expected [markdown] or none (code)")
            start, body = number + 1, []
        elif kind is None:
            if line.strip() and not line.startswith("#"):
                raise ValueError(f"{path}:{number}: code before the first '# %%' cell marker")
        elif kind == "markdown":
            if line.strip() and not line.startswith("#"):
                raise ValueError(f"{path}:{number}: a markdown cell line must be a comment "
                                 f"('# text'), got {line!r}")
            text = line[2:] if line.startswith("# ") else line[1:]
            if text or body:                                   # no leading blank lines
                body.append(text)
        elif line.strip() or body:
            body.append(line)
    close()
    if not cells:
        raise ValueError(f"{path}: no '# %%' cells")
    return cells


@contextlib.contextmanager
def _working_directory(path):
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def _take_figures(pyplot):
    """Every open pyplot figure as PNG bytes (at its own size and dpi), then closed."""
    figures = []
    for number in pyplot.get_fignums():
        figure = pyplot.figure(number)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=figure.dpi)
        figures.append(buffer.getvalue())
        pyplot.close(figure)
    return figures


def run(path):
    """Execute the notebook at ``path`` top to bottom; returns (cells, namespace).

    Code cells get their ``output`` and ``figures``.  An exception in a cell
    propagates; its traceback names the notebook file and line.
    """
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError('the notebooks draw with matplotlib, which is not installed: '
                          'pip install -e ".[plot]" (or ".[docs]")') from exc
    matplotlib.use("Agg")          # figures are drawn off screen, also where a display exists
    from matplotlib import pyplot

    cells = read_cells(path)
    namespace = {"__name__": "__main__", "__file__": path}
    pyplot.close("all")
    with tempfile.TemporaryDirectory(prefix="notebook-") as cwd, _working_directory(cwd):
        for cell in cells:
            if cell.kind != "code":
                continue
            # leading newlines keep the file's line numbers in tracebacks
            code = compile("\n" * (cell.line - 1) + cell.source, path, "exec")
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                exec(code, namespace)
            cell.output, cell.figures = printed.getvalue(), _take_figures(pyplot)
    return cells, namespace


def page(cells, name):
    """The Markdown page of a run of ``notebooks/{name}.py``; figures are ``{name}-K.png``."""
    parts, figure = [], 0
    for index, cell in enumerate(cells):
        if cell.kind == "markdown":
            parts.append(cell.source)
        else:
            parts.append(f"```python\n{cell.source}\n```")
            if cell.output:
                parts.append(f"```text\n{cell.output.rstrip()}\n```")
            for _ in cell.figures:
                figure += 1
                parts.append(f"![Figure {figure} of {name}]({name}-{figure}.png)")
        if index == 0:             # after the title: where the page comes from
            parts.append(f"!!! note \"A notebook\"\n    This page is `notebooks/{name}.py`, run "
                         f"when the site was built. " + JUPYTER.format(name=name))
    return "\n\n".join(parts) + "\n"


def on_files(files, config):
    """MkDocs hook: add each notebook's page and figures, from a fresh run, to the site."""
    from mkdocs.structure.files import File

    for path in notebook_paths():
        name = os.path.basename(path)[:-3]
        cells, _ = run(path)
        files.append(File.generated(config, f"notebooks/{name}.md", content=page(cells, name)))
        pngs = [png for cell in cells for png in cell.figures]
        for number, png in enumerate(pngs, 1):
            files.append(File.generated(config, f"notebooks/{name}-{number}.png", content=png))
    return files
