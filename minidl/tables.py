"""Plain-text tables: :func:`format_table`, the one table layout of minidl's output.

    print(format_table(("layer", "ms"), [("conv", "1.5"), ("relu", "0.2")], align="<>"))

    layer   ms
    ----------
    conv   1.5
    relu   0.2

Used by ``minidl models``, ``minidl diagnose``, the examples and the
benchmarks; :func:`markdown_table` writes the same cells for a results
page.  It imports nothing, so any module may use it.
"""

__all__ = ["format_table", "markdown_table"]


def format_table(header, rows, *, align=None, rule=True):
    """``header`` and ``rows`` as text: columns two spaces apart, as wide as their widest cell.

    header: the column names; rows: sequences of cells, one per column (each
        cell is written with ``str``).
    align: one character per column, ``"<"`` flush left or ``">"`` flush
        right (numbers); default: every column flush left.
    rule: a line of dashes under the header, as wide as the table.

    Trailing spaces are stripped from every line.
    """
    table = [[str(cell) for cell in row] for row in [header, *rows]]
    columns = len(table[0])
    align = "<" * columns if align is None else align
    if len(align) != columns or set(align) - {"<", ">"}:
        raise ValueError(f"format_table: align must be one '<' or '>' per column ({columns}), "
                         f"got {align!r}")
    if any(len(row) != columns for row in table):
        raise ValueError(f"format_table: every row must have {columns} cells, like the header")
    widths = [max(len(row[i]) for row in table) for i in range(columns)]
    lines = ["  ".join(f"{cell:{a}{w}}" for cell, a, w in zip(row, align, widths)).rstrip()
             for row in table]
    if rule:
        lines.insert(1, "-" * (sum(widths) + 2 * (columns - 1)))
    return "\n".join(lines)


def markdown_table(header, rows):
    """``header`` and ``rows`` (as for :func:`format_table`) as a Markdown (pipe) table."""
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(map(str, row)) + " |" for row in rows])
