"""Loss functions: cross entropy of logits against integer class labels."""
from .. import backend
from ..autograd import Function, Tensor
from ._checks import check_flag, check_tensor

__all__ = ["cross_entropy", "check_label_range"]


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


def check_label_range(labels, num_classes):
    """Raise a clear error unless every label is in [0, num_classes).

    On device labels this reads one boolean back to the host (a GPU sync);
    on host labels it costs nothing.
    """
    if bool(((labels < 0) | (labels >= num_classes)).any()):
        host = backend.to_numpy(labels)
        bad = int(((host < 0) | (host >= num_classes)).argmax())
        raise ValueError(f"cross_entropy: labels must be in [0, {num_classes}) for "
                         f"{num_classes} classes, got {int(host[bad])} at index {bad}")


def cross_entropy(logits, labels, check_labels=True):
    """Mean cross entropy of ``logits`` (N, K) against integer ``labels`` (N,) in [0, K).

    ``labels`` is an integer Tensor or backend array on the logits' device.
    Checking the label range reads one boolean from the device (a GPU sync);
    a caller that has checked its labels on the host already (as the training
    loop does, with :func:`check_label_range`) passes ``check_labels=False``,
    and then nothing leaves the device.
    """
    check_tensor("cross_entropy", "logits", logits, 2)
    labels = labels.data if isinstance(labels, Tensor) else labels
    if not hasattr(labels, "dtype") or labels.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: labels must be an integer tensor or array, got "
                        f"{getattr(labels, 'dtype', type(labels).__name__)}")
    n, k = logits.shape
    if labels.shape != (n,):
        raise ValueError(f"cross_entropy: labels must have shape ({n},) for logits of shape "
                         f"{logits.shape}, got shape {labels.shape}")
    if backend.device_of(labels) != logits.device:
        raise ValueError(f"cross_entropy: labels are on {backend.device_of(labels)} but logits "
                         f"are on {logits.device}")
    if n == 0:
        raise ValueError("cross_entropy: the batch is empty (N = 0); its mean is undefined")
    if check_flag("cross_entropy", "check_labels", check_labels):
        check_label_range(labels, k)
    return CrossEntropy.apply(logits, labels)
