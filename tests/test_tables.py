"""minidl.tables: format_table, the one plain-text table layout, and markdown_table."""
import pytest

from minidl.tables import format_table, markdown_table


def test_columns_are_as_wide_as_their_widest_cell_and_aligned_as_asked():
    text = format_table(("name", "n"), [("a", 1234), ("bcdef", 5)], align="<>")
    assert text.splitlines() == ["name      n",
                                 "-----------",
                                 "a      1234",
                                 "bcdef     5"]


def test_default_is_flush_left_without_trailing_spaces_and_the_rule_is_optional():
    text = format_table(("a", "b"), [("xyz", "1"), ("x", "")], rule=False)
    assert text.splitlines() == ["a    b", "xyz  1", "x"]


def test_bad_alignment_or_ragged_rows_are_refused():
    with pytest.raises(ValueError, match="align must be one '<' or '>' per column"):
        format_table(("a", "b"), [], align="<")
    with pytest.raises(ValueError, match="align must be one '<' or '>' per column"):
        format_table(("a", "b"), [], align="<^")
    with pytest.raises(ValueError, match="every row must have 2 cells"):
        format_table(("a", "b"), [("x",)])


def test_markdown_table_has_a_pipe_row_per_row_under_a_separator():
    assert markdown_table(("model", "error"), [("nin", 10.4), ("min", "")]).splitlines() == [
        "| model | error |", "|---|---|", "| nin | 10.4 |", "| min |  |"]
