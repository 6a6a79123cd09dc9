"""MkDocs hook: typeset the pages' math as MathML at build time, so no page needs a script.

pymdownx.arithmatex (generic mode) wraps each formula of the Markdown in
``<span class="arithmatex">\\(...\\)</span>`` or ``<div class="arithmatex">\\[...\\]</div>``;
this hook replaces the TeX inside every such element by the MathML that latex2mathml
(in the docs extra) makes of it.  Browsers draw MathML themselves (Chromium since
version 109), so the site shows its formulas offline.  The wrapper stays: the theme
lets a wide ``div.arithmatex`` scroll.  A formula latex2mathml cannot read, or with a
command it does not know, stops the build, naming the page and the formula.
"""
import html
import re

from latex2mathml.converter import convert
from mkdocs.exceptions import PluginError

ARITHMATEX = re.compile(
    r'(?P<open><(?P<tag>span|div) class="arithmatex">)\s*'
    r'(?:\\\((?P<inline>.*?)\\\)|\\\[(?P<block>.*?)\\\])\s*(?P<close></(?P=tag)>)', re.S)


def mathml_page(page_html, where="a page"):
    """``page_html`` with the TeX of every arithmatex element replaced by MathML."""
    def replace(match):
        display = "inline" if match["inline"] is not None else "block"
        tex = html.unescape(match[display]).strip()
        try:
            mathml = convert(tex, display=display)
        except Exception as error:   # latex2mathml raises several types; name the formula
            raise PluginError(f"{where}: latex2mathml cannot convert {tex!r}: {error!r}")
        unknown = re.findall(r"\\[A-Za-z]+", mathml)   # latex2mathml keeps them as text
        if unknown:
            raise PluginError(f"{where}: latex2mathml does not know {', '.join(unknown)} "
                              f"in {tex!r}")
        return match["open"] + mathml + match["close"]
    return ARITHMATEX.sub(replace, page_html)


def on_page_content(page_html, page, config, files):
    return mathml_page(page_html, page.file.src_uri)
