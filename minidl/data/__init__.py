"""Data sets, loaders and transforms on host NumPy arrays.

    images, labels = minidl.data.load("digits", split="train")
    loader = minidl.data.DataLoader((images, labels), batch_size=128, shuffle=True, seed=0)

This layer uses NumPy only; it imports nothing from autograd or nn.
"""
from . import download, transforms
from .datasets import DATASETS, dataset_info, load
from .download import cache_dir, download_file
from .errors import DataError
from .idx import read_idx, write_idx
from .images import read_array, read_images, read_picture
from .loader import DataLoader
from .matlab import read_mat
from .readers import read_cifar, read_mnist, read_svhn, to_float
from .sampler import DistributedSampler
from .tensor_dataset import TensorDataset

__all__ = [
    "DATASETS", "DataError", "DataLoader", "DistributedSampler", "TensorDataset", "cache_dir",
    "dataset_info", "download", "download_file", "load", "read_array", "read_cifar", "read_idx",
    "read_images", "read_mat", "read_mnist", "read_picture", "read_svhn", "to_float",
    "transforms", "write_idx",
]
