"""Transforms on batches of images: float NumPy arrays of shape (N, C, H, W).

Each is a small class called as `t(batch, rng=None)`; random ones draw from
`rng` (a numpy.random.Generator; the DataLoader passes a seeded one, None
means a fresh unseeded generator). Transforms with fitted state have
`fit(images)`, `state_dict()` and `load_state_dict()`, so that state can be
saved with a model checkpoint and the test set sees exactly what the
training set saw.

Deterministic transforms (Normalize, GlobalContrastNormalization,
ZCAWhitening) can also be applied once to a whole data set: `x = t(x)`.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .errors import DataError


def _check_batch(where, batch):
    if getattr(batch, "ndim", None) != 4:
        raise DataError(f"{where}: batch must have shape (N, C, H, W), "
                        f"got {getattr(batch, 'shape', type(batch).__name__)}")


def check_transform_output(transform, output):
    """``output`` if it is an array (what a transform must return), else a TypeError naming it.

    A transform that forgets its ``return`` gives None, which would
    otherwise travel on as the batch's images.
    """
    # any array kind (NumPy, CuPy, a minidl Tensor) has these; None, lists and numbers do not
    if not (hasattr(output, "shape") and hasattr(output, "dtype")):
        name = getattr(transform, "__name__", None) or type(transform).__name__
        raise TypeError(f"transform {name} returned {type(output).__name__}, not an array of "
                        f"images: it must return the transformed batch")
    return output


def _generator(rng):
    return rng if rng is not None else np.random.default_rng()


def _load(where, state, names):
    missing = [k for k in names if k not in state]
    if missing:
        raise DataError(f"{where}.load_state_dict: state has no {missing}; got {sorted(state)}")
    return [np.asarray(state[k], np.float32) for k in names]


class Normalize:
    """Per channel: `x[:, c] = (x[:, c] - mean[c]) / std[c]`.

    Give `mean` and `std` (one value per channel), or call `fit(images)` to
    set them to the per-channel mean and standard deviation of `images`.
    """

    def __init__(self, mean=None, std=None):
        self.mean = self.std = None
        if (mean is None) != (std is None):
            raise DataError("Normalize: pass both mean and std, or neither and call fit(images)")
        if mean is not None:
            self._set(np.asarray(mean, np.float32).reshape(-1),
                      np.asarray(std, np.float32).reshape(-1))

    def _set(self, mean, std):
        if mean.shape != std.shape:
            raise DataError(f"Normalize: mean has {mean.size} channels, std {std.size}")
        if np.any(std <= 0):
            raise DataError(f"Normalize: std must be positive in every channel, got {std}")
        self.mean, self.std = mean, std

    def fit(self, images):
        """Set mean and std to the per-channel statistics of `images` (N, C, H, W)."""
        _check_batch("Normalize.fit: images", images)
        channels = range(images.shape[1])
        # one channel at a time keeps the float64 temporaries small on big data sets
        self._set(np.array([images[:, c].mean(dtype=np.float64) for c in channels], np.float32),
                  np.array([images[:, c].std(dtype=np.float64) for c in channels], np.float32))
        return self

    def __call__(self, batch, rng=None):
        _check_batch("Normalize", batch)
        if self.mean is None:
            raise DataError("Normalize: no mean and std; pass them or call fit(images) first")
        if batch.shape[1] != self.mean.size:
            raise DataError(f"Normalize: batch must have shape (N, {self.mean.size}, H, W) to "
                            f"match mean and std, got {batch.shape}")
        mean = self.mean.astype(batch.dtype)[:, None, None]
        std = self.std.astype(batch.dtype)[:, None, None]
        return (batch - mean) / std

    def state_dict(self):
        return {"mean": self.mean, "std": self.std}

    def load_state_dict(self, state):
        self._set(*_load("Normalize", state, ("mean", "std")))


class RandomCrop:
    """Pad each image with `padding` zeros on every side, then crop a random `size` window.

    `size` is an int (square) or (height, width). Each image gets its own
    offset; all crops are gathered at once through a sliding-window view.
    """

    random = True

    def __init__(self, size, padding=0):
        self.size = (int(size), int(size)) if np.isscalar(size) else tuple(map(int, size))
        self.padding = int(padding)
        if len(self.size) != 2 or min(self.size) < 1 or self.padding < 0:
            raise DataError(f"RandomCrop: size must be positive (int or (h, w)) and padding "
                            f">= 0, got size={size}, padding={padding}")

    def __call__(self, batch, rng=None):
        _check_batch("RandomCrop", batch)
        h, w = self.size
        p = self.padding
        n, _, height, width = batch.shape
        if height + 2 * p < h or width + 2 * p < w:
            raise DataError(f"RandomCrop: batch must have shape (N, C, H, W) with "
                            f"H, W >= {(h - 2 * p, w - 2 * p)} for size {self.size} and "
                            f"padding {p}, got {batch.shape}")
        rng = _generator(rng)
        padded = np.pad(batch, ((0, 0), (0, 0), (p, p), (p, p))) if p else batch
        windows = sliding_window_view(padded, (h, w), axis=(2, 3))  # (N, C, Y, X, h, w)
        top = rng.integers(0, height + 2 * p - h + 1, size=n)
        left = rng.integers(0, width + 2 * p - w + 1, size=n)
        return windows[np.arange(n), :, top, left]  # (N, C, h, w), a copy


class RandomHorizontalFlip:
    """Mirror each image left-right with probability `p`."""

    random = True

    def __init__(self, p=0.5):
        self.p = float(p)

    def __call__(self, batch, rng=None):
        _check_batch("RandomHorizontalFlip", batch)
        flip = _generator(rng).random(len(batch)) < self.p
        return np.where(flip[:, None, None, None], batch[..., ::-1], batch)


class GlobalContrastNormalization:
    """Per image, over all its C*H*W values (pylearn2's global_contrast_normalize):

        x <- scale * (x - mean(x)) / d
        d  = sqrt(sqrt_bias + sum((x - mean(x))**2))        (default: the L2 norm)
        d  = sqrt(sqrt_bias + var(x, ddof=1))               (use_std=True)

    and d = 1 where d < eps, so flat images stay flat instead of blowing up
    noise. With the defaults every image ends with mean 0 and L2 norm `scale`;
    55 is what Goodfellow et al. used for CIFAR-10 (maxout), which makes the
    3072 values of an image about unit size.
    """

    def __init__(self, scale=55.0, eps=1e-8, sqrt_bias=0.0, use_std=False):
        self.scale, self.eps, self.sqrt_bias, self.use_std = scale, eps, sqrt_bias, use_std

    def __call__(self, batch, rng=None):
        _check_batch("GlobalContrastNormalization", batch)
        x = batch.reshape(len(batch), -1)
        centred = x - x.mean(axis=1, keepdims=True)
        if self.use_std:
            spread = centred.var(axis=1, ddof=1 if x.shape[1] > 1 else 0)
        else:
            spread = np.square(centred).sum(axis=1)
        d = np.sqrt(self.sqrt_bias + spread)
        d[d < self.eps] = 1
        return (centred * (self.scale / d[:, None]).astype(batch.dtype)).reshape(batch.shape)


class ZCAWhitening:
    """Zero-phase whitening fitted on a training set: `x <- (x - mean) @ W`.

    Images are flattened to D = C*H*W features. With the feature covariance
    `cov = U diag(S) U^T` (its SVD), `W = U diag(1 / sqrt(S + eps)) U^T`: the
    whitened training data has covariance close to the identity, and `eps`
    keeps the tiny-variance directions (noise) from being blown up.
    """

    CHUNK = 4096   # rows per step when accumulating the covariance

    def __init__(self, eps=1e-2):
        self.eps = eps
        self.mean = self.W = None

    def fit(self, images):
        """Compute mean and W from `images` (N, C, H, W)."""
        _check_batch("ZCAWhitening.fit: images", images)
        x = images.reshape(len(images), -1)
        mean = x.mean(axis=0, dtype=np.float64)
        self.mean = mean.astype(np.float32)
        if len(x) < x.shape[1]:
            self.W = self._fit_few(x - mean).astype(np.float32)
            return self
        cov = np.zeros((x.shape[1], x.shape[1]))
        for start in range(0, len(x), self.CHUNK):  # float64 without a float64 copy of x
            c = x[start:start + self.CHUNK] - mean
            cov += c.T @ c
        cov /= len(x)
        # for a symmetric positive semi-definite matrix the SVD is the eigendecomposition;
        # eigh finds it several times faster than svd; clip rounding below 0
        s, u = np.linalg.eigh(cov)
        self.W = ((u / np.sqrt(np.maximum(s, 0) + self.eps)) @ u.T).astype(np.float32)
        return self

    def _fit_few(self, centred):
        """W from N < D centred rows, without the D x D eigendecomposition.

        With `centred = U diag(s) V^T` (thin SVD), the covariance has the
        eigenvalues s**2 / N along the rows of V^T and 0 on the rest of the
        space, where W scales by 1 / sqrt(eps):
        `W = V diag(1/sqrt(s**2/N + eps) - 1/sqrt(eps)) V^T + I / sqrt(eps)`.
        """
        _, s, vt = np.linalg.svd(centred, full_matrices=False)
        scale = 1 / np.sqrt(s ** 2 / len(centred) + self.eps) - 1 / np.sqrt(self.eps)
        w = (vt.T * scale) @ vt
        w[np.diag_indices_from(w)] += 1 / np.sqrt(self.eps)
        return w

    def __call__(self, batch, rng=None):
        _check_batch("ZCAWhitening", batch)
        if self.W is None:
            raise DataError("ZCAWhitening: not fitted; call fit(training_images) first")
        x = batch.reshape(len(batch), -1)
        if x.shape[1] != self.mean.size:
            raise DataError(f"ZCAWhitening: batch must have shape (N, C, H, W) with "
                            f"C*H*W = {self.mean.size} as in fit, got {batch.shape}")
        mean, w = self.mean.astype(batch.dtype), self.W.astype(batch.dtype)
        return ((x - mean) @ w).reshape(batch.shape)

    def state_dict(self):
        return {"mean": self.mean, "W": self.W}

    def load_state_dict(self, state):
        self.mean, self.W = _load("ZCAWhitening", state, ("mean", "W"))


class Compose:
    """Apply `transforms` in order, passing the same `rng` to each."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, batch, rng=None):
        for t in self.transforms:
            batch = check_transform_output(t, t(batch, rng=rng))
        return batch

    def fit(self, images):
        """Fit each transform that has `fit` on `images` as the transforms before it leave them.

        Random transforms (augmentation) are skipped: statistics are taken on
        the data as it is, not on one random draw of it.
        """
        last = max((i for i, t in enumerate(self.transforms) if hasattr(t, "fit")), default=-1)
        for i, t in enumerate(self.transforms[:last + 1]):
            if getattr(t, "random", False):
                continue
            if hasattr(t, "fit"):
                t.fit(images)
            if i < last:
                images = t(images)
        return self

    def state_dict(self):
        """The state of each transform that has one, keyed by its position."""
        return {str(i): t.state_dict() for i, t in enumerate(self.transforms)
                if hasattr(t, "state_dict")}

    def load_state_dict(self, state):
        expected = set(self.state_dict())
        if set(state) != expected:
            raise DataError(f"Compose.load_state_dict: state has entries {sorted(state)}, "
                            f"this pipeline expects {sorted(expected)}")
        for key, value in state.items():
            self.transforms[int(key)].load_state_dict(value)
