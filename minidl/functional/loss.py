"""Loss functions with PyTorch's options: cross entropy and negative log-likelihood against
class labels (cross entropy also against class probabilities), and the mean squared error.

Shapes, as in PyTorch: the scores ``input`` are (N, C), or (N, C, d1, ..., dk) with the
classes along axis 1, or one unbatched sample (C,); class labels ``target`` have the
input's shape without the class axis.  Each sample n (a position (n, d1, ..., dk)) has a
loss l_n; ``reduction`` returns them all ("none"), their sum ("sum") or their mean
("mean", the default), where the mean of a weighted loss divides by the sum of the
weights of the counted targets.  docs/losses.md derives every gradient below.
"""
from .. import backend
from ..autograd import Function, Tensor
from ._checks import check_choice, check_flag, check_like, check_number, check_tensor

__all__ = ["cross_entropy", "nll_loss", "mse_loss", "check_label_range"]

REDUCTIONS = ("none", "mean", "sum")


class _Reduced(Function):
    """A loss that reduces its per-sample losses l as ``reduction`` says.

    none: l;  sum: sum_n l_n;  mean: sum_n l_n / D, with D the divisor the op chooses.
    The gradient reaching l_n is then g_n = dy_n, dy, or dy / D.
    """

    def _reduce(self, losses, reduction, divisor):
        self.reduction, self.divisor = reduction, divisor
        if reduction == "none":
            return losses
        total = losses.sum()
        return total / divisor if reduction == "mean" else total

    def _per_sample(self, gy, axis=None):
        """g, the gradient reaching each l_n, with a class axis inserted at ``axis`` if given."""
        g = gy / self.divisor if self.reduction == "mean" else gy
        if self.reduction == "none" and axis is not None:
            g = backend.get_array_module(gy).expand_dims(g, axis)
        return g


def _classes(xp, num_classes, axis, ndim, values=None):
    """``values`` (default 0..C-1) shaped to broadcast along the class axis of an ndim array."""
    values = xp.arange(num_classes) if values is None else values
    return values.reshape((num_classes,) + (1,) * (ndim - 1 - axis))


def _label_weights(labels, num_classes, axis, weight, ignore_index, dtype):
    """For labels t: (onehot(t) * w_t, onehot(t), kept) with w_t = weight[t], 0 if t is ignored.

    ``kept`` is 1 where t != ignore_index, else 0; without ``weight`` w_t = kept.
    The one-hot mask has the class axis at ``axis``.  An ignored label is
    replaced by class 0 before indexing, so any value may be ignored.
    """
    xp = backend.get_array_module(labels)
    kept = labels != ignore_index
    safe = xp.where(kept, labels, 0)
    kept_share = kept.astype(dtype)
    w_t = kept_share if weight is None else xp.where(kept, weight[safe], 0)
    onehot = xp.expand_dims(safe, axis) == _classes(xp, num_classes, axis, labels.ndim + 1)
    return onehot * xp.expand_dims(w_t, axis), onehot, kept_share


class CrossEntropy(_Reduced):
    """l_n = -sum_c q_nc log p_nc with p_n = softmax(z_n) along the class axis; reduced.

    The target weights q come from the target, the class weights w (1 without
    ``weight``) and the label smoothing eps, for C classes:

        labels t:          q_nc = (1 - eps) w_c [c = t_n] + eps/C w_c   (0 if t_n is ignored)
        probabilities y:   q_nc = w_c ((1 - eps) y_nc + eps/C)

    and the mean divides by D = sum_n w_{t_n} over the kept labels, resp. by
    the number of samples.  log p = z - max(z) - log sum_j exp(z_j - max(z)):
    after the shift the largest exponent is exp(0) = 1, so nothing overflows.

    Since d log p_c / dz_j = [c = j] - p_j, with g_n the gradient reaching l_n:

        dz_nj = g_n (p_nj sum_c q_nc - q_nj),     dy_nc = -g_n (1 - eps) w_c log p_nc.
    """

    def forward(self, logits, target, axis, weight, ignore_index, smoothing, reduction):
        xp = backend.get_array_module(logits)
        shifted = logits - logits.max(axis=axis, keepdims=True)
        log_probs = shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))
        classes = logits.shape[axis]
        w = None if weight is None else _classes(xp, classes, axis, logits.ndim, weight)
        if target.dtype.kind == "f":
            q = (1 - smoothing) * target + smoothing / classes
            q, divisor = (q if w is None else q * w), log_probs.size // classes
        else:
            q, _, kept = _label_weights(target, classes, axis, weight, ignore_index,
                                        logits.dtype)
            divisor = q.sum()                         # sum_n w_{t_n} over the kept labels
            if smoothing:
                uniform = xp.expand_dims(kept, axis) * (1 if w is None else w)
                q = (1 - smoothing) * q + smoothing / classes * uniform
        self.axis, self.weight, self.smoothing = axis, w, smoothing
        self.log_probs, self.q = log_probs, q
        return self._reduce(-(q * log_probs).sum(axis=axis), reduction, divisor)

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        g = self._per_sample(gy, self.axis)
        q = self.q
        gz = g * (xp.exp(self.log_probs) * q.sum(axis=self.axis, keepdims=True) - q)
        if len(self.needs_input_grad) == 1:           # class labels: no target gradient
            return gz
        if not self.needs_input_grad[1]:
            return gz, None
        gt = -(1 - self.smoothing) * g * self.log_probs
        return gz, gt if self.weight is None else gt * self.weight


class NLLLoss(_Reduced):
    """l_n = -w_{t_n} x[n, t_n] for log-probabilities x, 0 if t_n is ignored; reduced.

    The mean divides by D = sum_n w_{t_n} over the kept labels.  The loss reads
    one entry per sample, so dx is -g_n w_{t_n} at (n, t_n) and 0 elsewhere.
    """

    def forward(self, log_probs, labels, axis, weight, ignore_index, reduction):
        xp = backend.get_array_module(log_probs)
        self.picked, onehot, _ = _label_weights(labels, log_probs.shape[axis], axis, weight,
                                                ignore_index, log_probs.dtype)
        self.axis = axis
        # Read the label's entry only: the others may be -inf (log 0), and 0 * -inf is NaN.
        losses = -(xp.where(onehot, log_probs, 0) * self.picked).sum(axis=axis)
        return self._reduce(losses, reduction, self.picked.sum())

    def backward(self, gy):
        return -self._per_sample(gy, self.axis) * self.picked


class MSELoss(_Reduced):
    """l = (x - t)**2 elementwise; the mean divides by the number of elements m.

    dx = g * 2 (x - t) and dt = -dx, with g the gradient reaching each l.
    """

    def forward(self, x, target, reduction):
        self.diff = x - target
        return self._reduce(self.diff * self.diff, reduction, self.diff.size)

    def backward(self, gy):
        gx = self._per_sample(gy) * 2 * self.diff
        return gx, -gx if self.needs_input_grad[1] else None


def check_label_range(labels, num_classes, op="cross_entropy", ignore_index=None):
    """Raise a clear error (naming ``op``) unless every label is in [0, num_classes).

    Labels equal to ``ignore_index`` are exempt.  On device labels this reads
    one boolean back to the host (a GPU sync); on host labels it costs nothing.
    """
    bad = (labels < 0) | (labels >= num_classes)
    if ignore_index is not None:
        bad &= labels != ignore_index
    if bool(bad.any()):
        first = tuple(int(i[0]) for i in backend.to_numpy(bad).nonzero())   # row-major
        value = int(backend.to_numpy(labels)[first])
        at = first[0] if len(first) == 1 else first
        exempt = "" if ignore_index is None else f" (ignore_index={ignore_index} is exempt)"
        raise ValueError(f"{op}: labels must be in [0, {num_classes}) for {num_classes} "
                         f"classes, got {value} at index {at}{exempt}")


def _options(op, scores, weight, ignore_index, reduction, check_labels):
    """The class axis of ``scores`` and the checked options: (axis, weight array or None, ...).

    The classes lie along axis 1, or axis 0 of one unbatched sample (C,).
    ``weight``, one non-negative number per class, is a Tensor of the scores'
    dtype and device; it gets no gradient (PyTorch refuses to differentiate it).
    """
    check_tensor(op, "input", scores)
    if scores.ndim == 0:
        raise ValueError(f"{op}: input must have a class axis (C,), (N, C) or (N, C, d1, ...), "
                         f"got shape ()")
    axis = min(scores.ndim - 1, 1)
    if weight is not None:
        check_tensor(op, "weight", weight, 1)
        check_like(op, "weight", weight, scores, "input")
        if weight.shape != (scores.shape[axis],):
            raise ValueError(f"{op}: weight must have shape ({scores.shape[axis]},), one entry "
                             f"per class of input {scores.shape}, got shape {weight.shape}")
        weight = weight.data
    ignore_index = check_number(op, "ignore_index", ignore_index, integer=True)
    check_flag(op, "check_labels", check_labels)
    return axis, weight, ignore_index, check_choice(op, "reduction", reduction, REDUCTIONS)


def _class_labels(op, scores, axis, labels, ignore_index, reduction, check_labels):
    """``labels`` as a backend integer array of the scores' shape without the class axis."""
    labels = labels.data if isinstance(labels, Tensor) else labels
    expected = scores.shape[:axis] + scores.shape[axis + 1:]
    if not hasattr(labels, "dtype") or labels.dtype.kind not in "iu":
        got = getattr(labels, "dtype", type(labels).__name__)
        shape = f" of shape {labels.shape}" if hasattr(labels, "shape") else ""
        raise TypeError(f"{op}: labels must be an integer tensor or array, got {got}{shape}"
                        + ("; class probabilities must be a floating tensor of the input's "
                           f"shape {scores.shape}" if op == "cross_entropy" else ""))
    if labels.shape != expected:
        raise ValueError(f"{op}: labels must have shape {expected} for input of shape "
                         f"{scores.shape}, got shape {labels.shape}")
    if backend.device_of(labels) != scores.device:
        raise ValueError(f"{op}: labels are on {backend.device_of(labels)} but input is "
                         f"on {scores.device}")
    if reduction == "mean" and labels.size == 0:
        raise ValueError(f"{op}: the batch is empty (N = 0); its mean is undefined")
    if check_labels:
        check_label_range(labels, scores.shape[axis], op, ignore_index)
    return labels


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0, *, check_labels=True):
    """Cross entropy of logits ``input`` against class labels or class probabilities.

    ``target`` holds either integer labels in [0, C) (a Tensor or backend
    array on the input's device, of the input's shape without the class axis),
    or class probabilities (a floating Tensor of the input's shape, which may
    require grad).  ``weight`` (C,) weighs each class; labels equal to
    ``ignore_index`` count for nothing, neither in the loss nor in the mean's
    divisor; ``label_smoothing`` eps in [0, 1] mixes the target with the
    uniform distribution, (1 - eps) target + eps / C.  ``reduction`` is
    "mean", "sum" or "none".  All as in PyTorch; see :class:`CrossEntropy` for
    the formulas.

    Checking the label range reads one boolean from the device (a GPU sync);
    a caller that has checked its labels on the host already (as the training
    loop does, with :func:`check_label_range`) passes ``check_labels=False``,
    and then nothing leaves the device.
    """
    op = "cross_entropy"
    axis, w, ignore_index, reduction = _options(op, input, weight, ignore_index, reduction,
                                                check_labels)
    smoothing = check_number(op, "label_smoothing", label_smoothing, low=0, high=1)
    if isinstance(target, Tensor) and target.dtype.kind == "f" and target.shape == input.shape:
        check_like(op, "target", target, input, "input")
        if ignore_index >= 0:
            raise ValueError(f"{op}: ignore_index is not supported with class-probability "
                             f"targets, got {ignore_index} (leave it negative)")
        if reduction == "mean" and target.numel() == 0:
            raise ValueError(f"{op}: the batch is empty (N = 0); its mean is undefined")
    else:
        target = _class_labels(op, input, axis, target, ignore_index, reduction, check_labels)
    return CrossEntropy.apply(input, target, axis, w, ignore_index, smoothing, reduction)


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean", *,
             check_labels=True):
    """Negative log-likelihood ``-weight[t] * input[n, t]`` of labels t = ``target[n]``.

    ``input`` holds log-probabilities (``log_softmax`` of logits along the
    class axis), so ``nll_loss(log_softmax(z, dim=1), t)`` equals
    ``cross_entropy(z, t)`` with the same options.  ``target``, ``weight``,
    ``ignore_index``, ``reduction`` and ``check_labels`` are as in
    :func:`cross_entropy` (labels only).
    """
    op = "nll_loss"
    axis, w, ignore_index, reduction = _options(op, input, weight, ignore_index, reduction,
                                                check_labels)
    labels = _class_labels(op, input, axis, target, ignore_index, reduction, check_labels)
    return NLLLoss.apply(input, labels, axis, w, ignore_index, reduction)


def mse_loss(input, target, reduction="mean"):
    """Squared error ``(input - target)**2``, reduced by ``reduction`` ("mean", "sum", "none").

    ``target`` is a Tensor of the same shape, dtype and device (no broadcasting,
    which in PyTorch only warns and is almost always a mistake).
    """
    check_tensor("mse_loss", "input", input)
    check_tensor("mse_loss", "target", target)
    check_like("mse_loss", "target", target, input, "input")
    if target.shape != input.shape:
        raise ValueError(f"mse_loss: target has shape {target.shape} but input has shape "
                         f"{input.shape}")
    return MSELoss.apply(input, target, check_choice("mse_loss", "reduction", reduction,
                                                     REDUCTIONS))
