"""The documentation site: it builds without warnings, its links resolve, its example runs."""
import ast
import importlib.util
import os
import re
import subprocess
import sys

import pytest

from helpers import build_docs, import_script

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.S | re.M)
CODE_SPAN = re.compile(r"`[^`\n]*`")
# [text](target) and ![alt](target), with an optional "title" after the target
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def markdown_files():
    for folder, _, names in os.walk(DOCS):
        for name in sorted(names):
            if name.endswith(".md"):
                yield os.path.join(folder, name)


def relative_links(text):
    """Targets of the Markdown links and images outside code, without their #anchor."""
    prose = CODE_SPAN.sub("", FENCE.sub("", text))
    for target in LINK.findall(prose):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#"):
            continue            # a URL (http:, mailto:) or an anchor on the same page
        yield target.split("#", 1)[0]


def notebook_pages():
    """The pages scripts/render_notebooks.py adds at build time: docs/notebooks/NAME.md."""
    return {os.path.join(DOCS, "notebooks", os.path.basename(path)[:-3] + ".md")
            for path in import_script("render_notebooks").notebook_paths()}


def test_markdown_links_and_images_point_to_existing_files():
    checked, broken, generated = 0, [], notebook_pages()
    for path in markdown_files():
        with open(path, encoding="utf-8") as f:
            targets = list(relative_links(f.read()))
        for target in targets:
            checked += 1
            linked = os.path.normpath(os.path.join(os.path.dirname(path), target))
            if not os.path.exists(linked) and linked not in generated:
                broken.append(f"{os.path.relpath(path, ROOT)}: {target}")
    assert not broken, "links to missing files:\n" + "\n".join(broken)
    assert checked > 20, f"only {checked} links found: is the link pattern still right?"


def test_link_pattern_finds_links_and_skips_code():
    text = ("See [a](guide/a.md#x) and ![plot](results/p.png \"title\"), [web](https://x.org).\n"
            "`[not](code.md)`\n```\n[not](fenced.md)\n```\n[anchor](#here)\n")
    assert list(relative_links(text)) == ["guide/a.md", "results/p.png"]


# `minidl/...`, `tests/...` etc.: a file or folder of this repository named in prose
FILE_REFERENCE = re.compile(
    r"`((?:minidl|tests|examples|benchmarks|scripts|docs|notebooks)/[\w./-]*)`")
IDENTIFIER = re.compile(r"`([A-Za-z_]\w*)`")


def pages():
    """(relative path, text) of every docs page and of README.md."""
    for path in [os.path.join(ROOT, "README.md"), *markdown_files()]:
        with open(path, encoding="utf-8") as f:
            yield os.path.relpath(path, ROOT), f.read()


def defined_names(path):
    """Names a Python file defines: functions, classes (and their methods), assignments."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def test_file_references_in_the_docs_exist():
    named, missing = 0, []
    for page, text in pages():
        for reference in FILE_REFERENCE.findall(text):
            named += 1
            if not os.path.exists(os.path.join(ROOT, reference)):
                missing.append(f"{page}: {reference}")
    assert not missing, "the docs name files that do not exist:\n" + "\n".join(missing)
    assert named > 20, f"only {named} file references found: is the pattern still right?"


def test_code_paragraphs_name_symbols_their_files_define():
    """A "Code: `file.py` (`name`, ...)" paragraph names only what those files define."""
    paragraphs, wrong = 0, []
    for page, text in pages():
        for paragraph in re.split(r"\n\s*\n", text):
            if not paragraph.startswith("Code:"):
                continue
            paragraphs += 1
            code = paragraph.split("Tests:", 1)[0]
            files = [os.path.join(ROOT, f) for f in FILE_REFERENCE.findall(code)
                     if f.endswith(".py") and os.path.exists(os.path.join(ROOT, f))]
            known = set().union(*(defined_names(f) for f in files))
            wrong += [f"{page}: `{name}`" for name in IDENTIFIER.findall(code)
                      if name not in known]
    assert not wrong, "Code: paragraphs name symbols their files do not define:\n" + \
        "\n".join(wrong)
    assert paragraphs >= 4, f"only {paragraphs} Code: paragraphs found"


def test_defined_names_reads_functions_classes_and_assignments(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("X = 1\ndef f():\n    pass\nclass C:\n    def m(self):\n        pass\n")
    assert defined_names(source) == {"X", "f", "C", "m"}


def index_example():
    with open(os.path.join(DOCS, "index.md"), encoding="utf-8") as f:
        text = f.read()
    blocks = re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)
    assert blocks, "docs/index.md has no ```python block"
    shown = re.search(r"^```\n(loss after .*?)^```", text, re.S | re.M)
    assert shown, "docs/index.md does not show the example's output in a ``` block"
    return blocks[0], shown.group(1)


def test_index_example_runs_and_prints_what_the_page_shows():
    code, shown = index_example()
    # A fresh interpreter, as a reader has, with one BLAS thread: on a busy 2-core
    # machine a second OpenBLAS thread makes these small products many times slower.
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", MINIDL_DEVICE="cpu")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    printed, expected = result.stdout.splitlines(), shown.splitlines()
    loss = float(printed[0].rpartition(":")[2])
    assert abs(loss - float(expected[0].rpartition(":")[2])) < 0.05, (printed[0], expected[0])
    # the table: same layers, kinds and sizes (the measured columns may differ in the last digits)
    assert [line.split()[:5] for line in printed[1:]] == [line.split()[:5] for line in expected[1:]]


# A formula left as TeX: arithmatex's \( \[ delimiters, or a backslash command, in the
# text of a page (tags stripped; code and scripts left out: code may show TeX on purpose).
RAW_TEX = re.compile(r"\\(?:[A-Za-z]+|[()\[\]])")
CODE_BLOCK = re.compile(r"<(pre|code|script|style)\b.*?</\1>", re.S)
TAG = re.compile(r"<[^>]+>")


def test_mkdocs_build_strict(tmp_path):
    site = tmp_path / "site"
    result = build_docs(site)
    assert result.returncode == 0, result.stdout + result.stderr
    for page in ("index.html", "results/index.html", "guide/devices/index.html",
                 "batch_norm/index.html", "notebooks/bn_regions/index.html",
                 "notebooks/bn_regions-1.png"):
        assert (site / page).is_file(), f"{page} was not built"
    pages = {path.relative_to(site).as_posix(): path.read_text(encoding="utf-8")
             for path in site.rglob("*.html")}
    # every formula became MathML at build time ...
    raw = {page: RAW_TEX.findall(TAG.sub("", CODE_BLOCK.sub("", text)))
           for page, text in pages.items()}
    assert not {page: found for page, found in raw.items() if found}, raw
    for page in ("batch_norm", "maxout", "convolution", "autograd", "diagnostics",
                 "notebooks/batch_norm_by_hand"):
        assert pages[f"{page}/index.html"].count("<math ") >= 3, f"{page}: no MathML"
    # ... and no page loads anything from beyond the site (links to elsewhere are fine)
    loads = re.compile(r"<(?:script|img|iframe|source)\b[^>]*\bsrc=\"(?:https?:)?//|"
                       r"<link\b[^>]*\bhref=\"(?:https?:)?//")
    outside = {page for page, text in pages.items() if loads.search(text)}
    assert not outside, f"pages that load from elsewhere: {sorted(outside)}"


def test_mathml_hook_converts_arithmatex_spans_and_names_bad_formulas():
    if importlib.util.find_spec("latex2mathml") is None:
        pytest.skip('latex2mathml is not installed: pip install -e ".[docs]"')
    mathml_page = import_script("mkdocs_mathml").mathml_page
    page = ('<p>a <span class="arithmatex">\\(x &lt; \\frac{1}{2}\\)</span> b</p>\n'
            '<div class="arithmatex">\\[\\sum_i x_i\\]</div>')
    html = mathml_page(page)
    assert html.startswith('<p>a <span class="arithmatex"><math ') and "\\" not in html
    assert '<mfrac><mrow><mn>1</mn></mrow>' in html and "<mo>&#x0003C;</mo>" in html
    assert '<div class="arithmatex"><math xmlns="http://www.w3.org/1998/Math/MathML" ' \
           'display="block">' in html and "<munder>" in html
    from mkdocs.exceptions import PluginError
    with pytest.raises(PluginError, match=r"maxout\.md: latex2mathml cannot convert 'x\^'"):
        mathml_page('<span class="arithmatex">\\(x^\\)</span>', "maxout.md")
    with pytest.raises(PluginError, match=r"maxout\.md: latex2mathml does not know \\foo"):
        mathml_page('<span class="arithmatex">\\(\\foo x\\)</span>', "maxout.md")
