"""Argument checks that need nothing but Python: numbers in a range, and flags.

Kept apart from ``minidl.functional._checks`` (which re-exports them next to
the tensor checks) so that the data layer, which imports nothing above NumPy,
can use the same checks and wording: ``"<owner>: <name> must be ..., got ..."``,
TypeError for a wrong type, ValueError for a value out of range.
"""
import numbers

__all__ = ["check_number", "check_flag", "is_integer", "is_real"]


def _requirement(low, high, low_open, high_open):
    """The range in words: ``"in [0, 1)"``, ``"> 0"``, ``">= 1"``, ``"<= 1"``."""
    if low is None and high is None:
        return "a number, not NaN"
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low}"
    return f"{'<' if high_open else '<='} {high}"


def is_integer(value):
    """An int (Python or NumPy), but not a bool: ``True`` as a size is a mistake, not 1."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value):
    """A real number (int, float, NumPy scalar), but not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_number(op, name, value, *, integer=False, low=None, high=None, low_open=False,
                 high_open=False):
    """``value`` as a Python int (``integer``) or float, in the range given, else a clear error.

    A bool is refused although Python counts it as an int (see
    :func:`is_integer`).  NaN is refused, with or without a range (infinity passes
    where the range allows it).
    """
    if not (is_integer(value) if integer else is_real(value)):
        expected = "an integer" if integer else "a real number"
        raise TypeError(f"{op}: {name} must be {expected}, got {value!r}")
    in_range = (value == value                     # NaN is unequal to itself
                and (low is None or (value > low if low_open else value >= low))
                and (high is None or (value < high if high_open else value <= high)))
    if not in_range:
        raise ValueError(f"{op}: {name} must be {_requirement(low, high, low_open, high_open)}, "
                         f"got {value!r}")
    return int(value) if integer else float(value)


def check_flag(op, name, value):
    """``value`` if it is True or False, else a TypeError (a truthy 0/1 or string is refused)."""
    if not isinstance(value, bool):
        raise TypeError(f"{op}: {name} must be True or False, got {value!r}")
    return value
