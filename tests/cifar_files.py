"""Writers of small CIFAR-10/100 files in the canonical python-version format, for tests."""
import io
import pickle
import tarfile

import numpy as np

# data set -> (archive, folder inside it, {split: batch names}, label key)
LAYOUT = {
    "cifar10": ("cifar-10-python.tar.gz", "cifar-10-batches-py",
                {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]},
                b"labels"),
    "cifar100": ("cifar-100-python.tar.gz", "cifar-100-python",
                 {"train": ["train"], "test": ["test"]}, b"fine_labels"),
}


def batch_pickle(data, labels, label_key, protocol=3):
    batch = {b"batch_label": b"testing batch", label_key: list(map(int, labels)),
             b"data": data, b"filenames": [b"x.png"] * len(data)}
    if label_key == b"fine_labels":
        batch[b"coarse_labels"] = [int(v) // 5 for v in labels]
    return pickle.dumps(batch, protocol=protocol)


def make_cifar(folder, dataset, n=3, archive=True, seed=0):
    """Write a small CIFAR data set (n images per batch); returns {split: (data, labels)}."""
    archive_name, top, batches, label_key = LAYOUT[dataset]
    rng = np.random.default_rng(seed)
    classes = 10 if dataset == "cifar10" else 100
    files, arrays = {}, {}
    for split, names in batches.items():
        data = rng.integers(0, 256, (n * len(names), 3072), dtype=np.uint8)
        labels = rng.integers(0, classes, n * len(names))
        for i, name in enumerate(names):
            part = slice(i * n, (i + 1) * n)
            files[f"{top}/{name}"] = batch_pickle(data[part], labels[part], label_key)
        arrays[split] = data, labels
    files[f"{top}/readme.html"] = b"<html></html>"
    folder.mkdir(parents=True, exist_ok=True)
    if archive:
        with tarfile.open(folder / archive_name, "w:gz") as tar:
            for name, content in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
        return folder / archive_name, arrays
    for name, content in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)
    return folder / top, arrays
