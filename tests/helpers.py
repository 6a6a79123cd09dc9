"""Small helpers shared by the tests (importable as ``helpers``: conftest puts tests/ on the path)."""
import numpy

import minidl
from minidl import backend


def host(array):
    """Any backend array (or Tensor) as a host NumPy array, for comparisons in tests."""
    if isinstance(array, minidl.Tensor):
        array = array.data
    return backend.to_numpy(array)


def leaf(array, device, requires_grad=True):
    """A float64 (or the array's dtype) leaf tensor on ``device`` from host data."""
    return minidl.tensor(numpy.asarray(array), requires_grad=requires_grad, device=device)
