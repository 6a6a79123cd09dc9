"""minidl.progress: the tqdm path and the plain fallback."""
import io
import re
import sys
import types

import pytest

from minidl import progress as progress_module
from minidl.progress import Progress, progress

LINE = r"epoch  (\d+)/100 \[\d\d:\d\d<\d\d:\d\d, [\d.]+ it/s(, [^\]]*)?\]"


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_format_matches_the_documented_line():
    bar = Progress(total=100, desc="desc", file=io.StringIO())
    bar.n = 37
    assert bar.format(12.0) == "desc  37/100 [00:12<00:20, 3.1 it/s]"
    bar.set_postfix(loss=0.123456, lr="1e-3")
    assert bar.format(3725.0) == "desc  37/100 [1:02:05<1:45:42, 100.7 s/it, loss=0.1235, lr=1e-3]"


def test_log_output_prints_every_tenth(no_tqdm, capsys):
    bar = progress(range(100), desc="epoch")
    assert isinstance(bar, Progress)
    assert list(bar) == list(range(100))
    lines = capsys.readouterr().err.splitlines()
    assert [int(re.fullmatch(LINE, line).group(1)) for line in lines] == list(range(10, 101, 10))


def test_postfix_and_manual_updates(no_tqdm, capsys):
    with progress(total=100, desc="epoch") as bar:
        for _ in range(4):
            bar.update(25)
            bar.set_postfix(loss=0.5)
    bar.close()  # a second close writes nothing
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 4
    assert all(re.fullmatch(LINE, line) for line in lines)
    assert lines[-1].startswith("epoch  100/100") and lines[-1].endswith(", loss=0.5]")


def test_unknown_total_prints_at_close(no_tqdm, capsys):
    for _ in progress(iter(range(5)), desc="eval"):
        pass
    assert re.fullmatch(r"eval  5 \[\d\d:\d\d, [\d.?]+ it/s\]\n", capsys.readouterr().err)


def test_terminal_redraws_in_place(no_tqdm, monkeypatch):
    monkeypatch.setattr(Progress, "TTY_INTERVAL", 0.0)
    out = Terminal()
    for _ in progress(range(3), desc="epoch", file=out):
        pass
    text = out.getvalue()
    assert text.count("\r") == 4 and text.endswith("\n") and text.count("\n") == 1
    assert text.split("\r")[-1].startswith("epoch  3/3 [")


def test_byte_units(no_tqdm, capsys):
    with progress(total=2_500_000, desc="file.gz", unit="B", unit_scale=True) as bar:
        bar.update(2_500_000)
    assert re.fullmatch(r"file\.gz  2\.5M/2\.5M \[[\d:<]+, [\d.]+[kMGTP]? B/s\]\n",
                        capsys.readouterr().err)


def test_disable(no_tqdm, capsys):
    assert list(progress(range(7), desc="x", disable=True)) == list(range(7))
    assert capsys.readouterr().err == ""


def test_uses_tqdm_auto_when_installed(monkeypatch):
    """tqdm.auto: a widget in Jupyter, text in a terminal; never the text-only tqdm.tqdm."""
    made = []

    class FakeTqdm:
        def __init__(self, iterable=None, **kwargs):
            made.append((iterable, kwargs))

    class TextOnly(FakeTqdm):
        pass

    auto = types.ModuleType("tqdm.auto")
    auto.tqdm = FakeTqdm
    package = types.ModuleType("tqdm")
    package.tqdm, package.auto = TextOnly, auto
    monkeypatch.setitem(sys.modules, "tqdm", package)
    monkeypatch.setitem(sys.modules, "tqdm.auto", auto)
    bar = progress([1, 2], total=2, desc="d", unit="B", unit_scale=True)
    assert type(bar) is FakeTqdm
    assert made == [([1, 2], dict(total=2, desc="d", disable=False, unit="B", unit_scale=True,
                                  file=None))]


def test_real_tqdm_supports_the_same_calls():
    pytest.importorskip("tqdm")
    out = io.StringIO()
    with progress(total=4, desc="t", file=out) as bar:
        bar.update(2)
        bar.set_postfix(loss=1.0)
    assert list(progress(range(3), file=out)) == [0, 1, 2]
    assert "t" in out.getvalue() and "loss=1" in out.getvalue()


def test_module_is_lazy_about_tqdm():
    assert "tqdm" not in vars(progress_module)
