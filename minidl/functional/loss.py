"""Loss functions: cross entropy and negative log-likelihood against integer class labels,
and the mean squared error.  Each is the mean over the batch (PyTorch's default reduction).
"""
from .. import backend
from ..autograd import Function, Tensor
from ._checks import check_flag, check_like, check_tensor

__all__ = ["cross_entropy", "nll_loss", "mse_loss", "check_label_range"]


class CrossEntropy(Function):
    """loss = -1/N sum_n log softmax(z_n)[t_n] for logits z (N, K), labels t (N,).

    log softmax(z)_k = z_k - max(z) - log sum_j exp(z_j - max(z)): after the
    shift the largest exponent is exp(0) = 1, so no logit can overflow exp and
    the sum is at least 1, so the log is finite.

    dz = dloss * (softmax(z) - onehot(t)) / N.
    """

    def forward(self, logits, labels):
        xp = backend.get_array_module(logits)
        shifted = logits - logits.max(axis=1, keepdims=True)
        self.log_probs = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
        self.labels = labels
        picked = xp.take_along_axis(self.log_probs, labels[:, None], axis=1)
        return -picked.sum() / len(labels)

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        n = len(self.labels)
        grad = xp.exp(self.log_probs)
        grad[xp.arange(n), self.labels] -= 1
        grad *= gy / n
        return grad


class NLLLoss(Function):
    """loss = -1/N sum_n x[n, t_n] for log-probabilities x (N, K), labels t (N,).

    dx = -dloss / N at (n, t_n), 0 elsewhere.
    """

    def forward(self, log_probs, labels):
        xp = backend.get_array_module(log_probs)
        self.shape, self.labels = log_probs.shape, labels
        picked = xp.take_along_axis(log_probs, labels[:, None], axis=1)
        return -picked.sum() / len(labels)

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        n = len(self.labels)
        grad = xp.zeros(self.shape, dtype=gy.dtype)
        grad[xp.arange(n), self.labels] = -gy / n
        return grad


class MSELoss(Function):
    """loss = 1/m sum (x - t)**2 over all m elements;  dx = dloss * 2 (x - t) / m, dt = -dx."""

    def forward(self, x, target):
        self.diff = x - target
        return (self.diff * self.diff).mean()

    def backward(self, gy):
        gx = gy * 2 * self.diff / self.diff.size
        return gx, -gx if self.needs_input_grad[1] else None


def check_label_range(labels, num_classes, op="cross_entropy"):
    """Raise a clear error (naming ``op``) unless every label is in [0, num_classes).

    On device labels this reads one boolean back to the host (a GPU sync);
    on host labels it costs nothing.
    """
    if bool(((labels < 0) | (labels >= num_classes)).any()):
        host = backend.to_numpy(labels)
        bad = int(((host < 0) | (host >= num_classes)).argmax())
        raise ValueError(f"{op}: labels must be in [0, {num_classes}) for "
                         f"{num_classes} classes, got {int(host[bad])} at index {bad}")


def _class_labels(op, argument, scores, what, labels, check_labels):
    """``labels`` as a backend integer array of shape (N,) for ``scores`` (N, K), checked.

    ``argument`` is the name of the ``scores`` argument, ``what`` its plural in words.
    """
    check_tensor(op, argument, scores, 2)
    labels = labels.data if isinstance(labels, Tensor) else labels
    if not hasattr(labels, "dtype") or labels.dtype.kind not in "iu":
        raise TypeError(f"{op}: labels must be an integer tensor or array, got "
                        f"{getattr(labels, 'dtype', type(labels).__name__)}")
    n, k = scores.shape
    if labels.shape != (n,):
        raise ValueError(f"{op}: labels must have shape ({n},) for {what} of shape "
                         f"{scores.shape}, got shape {labels.shape}")
    if backend.device_of(labels) != scores.device:
        raise ValueError(f"{op}: labels are on {backend.device_of(labels)} but {what} are "
                         f"on {scores.device}")
    if n == 0:
        raise ValueError(f"{op}: the batch is empty (N = 0); its mean is undefined")
    if check_flag(op, "check_labels", check_labels):
        check_label_range(labels, k, op)
    return labels


def cross_entropy(logits, labels, check_labels=True):
    """Mean cross entropy of ``logits`` (N, K) against integer ``labels`` (N,) in [0, K).

    ``labels`` is an integer Tensor or backend array on the logits' device.
    Checking the label range reads one boolean from the device (a GPU sync);
    a caller that has checked its labels on the host already (as the training
    loop does, with :func:`check_label_range`) passes ``check_labels=False``,
    and then nothing leaves the device.
    """
    return CrossEntropy.apply(logits, _class_labels("cross_entropy", "logits", logits, "logits",
                                                    labels, check_labels))


def nll_loss(input, target, check_labels=True):
    """Mean negative log-likelihood: ``-input[n, target[n]]`` averaged over the batch.

    ``input`` (N, K) holds log-probabilities (``log_softmax`` of logits), so
    ``nll_loss(log_softmax(z, dim=1), t)`` equals ``cross_entropy(z, t)``.
    ``target`` and ``check_labels`` are as in :func:`cross_entropy`.
    """
    return NLLLoss.apply(input, _class_labels("nll_loss", "input", input, "log-probabilities",
                                             target, check_labels))


def mse_loss(input, target):
    """Mean squared error ``mean((input - target)**2)`` over all elements (see :class:`MSELoss`).

    ``target`` is a Tensor of the same shape, dtype and device (no broadcasting,
    which in PyTorch only warns and is almost always a mistake).
    """
    check_tensor("mse_loss", "input", input)
    check_tensor("mse_loss", "target", target)
    check_like("mse_loss", "target", target, input, "input")
    if target.shape != input.shape:
        raise ValueError(f"mse_loss: target has shape {target.shape} but input has shape "
                         f"{input.shape}")
    return MSELoss.apply(input, target)
