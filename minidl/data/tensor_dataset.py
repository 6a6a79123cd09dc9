"""TensorDataset: several arrays (or tensors) indexed together, sample by sample."""
from .errors import DataError

__all__ = ["TensorDataset"]


class TensorDataset:
    """Sample ``i`` of every array at once: ``dataset[i] == (images[i], labels[i])``.

    The arrays (NumPy arrays or minidl Tensors on the host) must share their
    first dimension, which is the number of samples: ``len(dataset)``.
    ``dataset[index]`` with an index array gives a batch of each.  As
    ``torch.utils.data.TensorDataset``; the arrays are in ``tensors``.
    """

    def __init__(self, *tensors):
        if not tensors:
            raise DataError("TensorDataset needs at least one array")
        lengths = [len(t) for t in tensors]
        if len(set(lengths)) > 1:
            raise DataError(f"TensorDataset: the arrays must have the same first dimension, got "
                            f"lengths {lengths}")
        self.tensors = tensors

    def __len__(self):
        return len(self.tensors[0])

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)
