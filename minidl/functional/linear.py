"""Fully connected layer: y = x W^T + b, with PyTorch's (out, in) weight layout."""
from ..autograd import Function
from ._checks import check_like, check_tensor

__all__ = ["linear"]


def _rows(a):
    """(..., k) -> (M, k): the leading axes flattened, so one matrix product does all."""
    return a.reshape(-1, a.shape[-1])


class Linear(Function):
    """y = x @ W^T + b for x (..., in), W (out, in), b (out,) or None.

    With the leading axes flattened into rows, X (M, in) and dY (M, out):

        dX = dY @ W,   dW = dY^T @ X,   db = sum of dY over the rows.
    """

    def forward(self, x, weight, bias):
        self.x, self.weight, self.has_bias = x, weight, bias is not None
        y = _rows(x) @ weight.T
        if bias is not None:
            y += bias
        return y.reshape(x.shape[:-1] + weight.shape[:1])

    def backward(self, gy):
        rows = _rows(gy)
        gx = (rows @ self.weight).reshape(self.x.shape) if self.needs_input_grad[0] else None
        gw = rows.T @ _rows(self.x) if self.needs_input_grad[1] else None
        return (gx, gw, rows.sum(axis=0)) if self.has_bias else (gx, gw)


def linear(x, weight, bias=None):
    """``x @ weight.T + bias`` for x (..., in_features), weight (out_features, in_features).

    ``bias`` is an (out_features,) tensor or None.  All must share one float
    dtype and one device.
    """
    check_tensor("linear", "x", x)
    check_like("linear", "weight", check_tensor("linear", "weight", weight), x)
    if bias is not None:
        check_like("linear", "bias", check_tensor("linear", "bias", bias), x)
    if weight.ndim != 2:
        raise ValueError(f"linear: weight must have shape (out_features, in_features), got "
                         f"shape {weight.shape}")
    out_features, in_features = weight.shape
    if x.ndim == 0 or x.shape[-1] != in_features:
        raise ValueError(f"linear: x must have shape (..., {in_features}) to match weight of "
                         f"shape {weight.shape}, got shape {x.shape}")
    if bias is not None and bias.shape != (out_features,):
        raise ValueError(f"linear: bias must have shape ({out_features},) to match weight of "
                         f"shape {weight.shape}, got shape {bias.shape}")
    return Linear.apply(x, weight, bias)
