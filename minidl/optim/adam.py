r"""Adam (Kingma & Ba, 2015) and AdamW (Loshchilov & Hutter, 2019), with PyTorch's semantics.

For a parameter :math:`p` with gradient :math:`\nabla`, learning rate :math:`\eta`,
:math:`\beta_1, \beta_2`, :math:`\epsilon`, weight decay :math:`\lambda`, and state
:math:`m, v` (zero before the first step) and step count :math:`t`:

.. math::

    t &= t + 1 \\
    g &= \nabla + \lambda p \quad \text{(Adam: L2 penalty added to the gradient)} \\
    p &= (1 - \eta\lambda) p \quad \text{(AdamW instead: decoupled decay, } g = \nabla) \\
    m &= \beta_1 m + (1 - \beta_1) g \\
    v &= \beta_2 v + (1 - \beta_2) g^2 \\
    p &= p - \frac{\eta}{1 - \beta_1^t} \, \frac{m}{\sqrt{v} / \sqrt{1 - \beta_2^t} + \epsilon}

The last line is :math:`p - \eta \hat m / (\sqrt{\hat v} + \epsilon)` with the
bias-corrected moments :math:`\hat m = m / (1 - \beta_1^t)`, :math:`\hat v = v / (1 - \beta_2^t)`.
"""
import math

from .. import backend
from ..functional._checks import check_number
from .optimizer import Optimizer

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    """``Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)``.

    Weight decay is an L2 penalty added to the gradient (it then passes through
    the moment estimates); see :class:`AdamW` for decoupled decay.  State per
    parameter: ``"step"`` (an int), ``"exp_avg"`` (m) and ``"exp_avg_sq"`` (v).
    """

    state_keys = ("step", "exp_avg", "exp_avg_sq")
    decoupled_weight_decay = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps,
                                  "weight_decay": weight_decay})

    def _check_group(self, group):
        """lr and weight_decay real numbers >= 0, eps > 0, betas a pair of reals in [0, 1)."""
        name = type(self).__name__
        for key in ("lr", "weight_decay"):
            group[key] = check_number(name, key, group[key], low=0)
        group["eps"] = check_number(name, "eps", group["eps"], low=0, low_open=True)
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"{name}: betas must be a pair (beta1, beta2), got {betas!r}")
        group["betas"] = tuple(check_number(name, f"betas[{i}]", beta, low=0, high=1,
                                            high_open=True)
                               for i, beta in enumerate(betas))

    def _update(self, p, grad, state, group):
        lr, eps, weight_decay = group["lr"], group["eps"], group["weight_decay"]
        beta1, beta2 = group["betas"]
        xp = backend.get_array_module(p.data)
        if not state:
            state.update(step=0, exp_avg=xp.zeros_like(p.data), exp_avg_sq=xp.zeros_like(p.data))
        state["step"] += 1
        if weight_decay != 0:
            if self.decoupled_weight_decay:
                p.data *= 1 - lr * weight_decay
            else:
                grad = grad + weight_decay * p.data
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m *= beta1
        m += (1 - beta1) * grad
        v *= beta2
        v += (1 - beta2) * grad * grad
        bias_correction1 = 1 - beta1 ** state["step"]
        bias_correction2 = 1 - beta2 ** state["step"]
        step = xp.sqrt(v)
        step /= math.sqrt(bias_correction2)
        step += eps
        xp.divide(m, step, out=step)     # reuse the denominator's buffer for m / denominator
        step *= lr / bias_correction1
        p.data -= step


class AdamW(Adam):
    """``AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2)``.

    Adam with decoupled weight decay: ``p *= 1 - lr * weight_decay`` before the
    Adam step, which then sees the plain gradient.
    """

    decoupled_weight_decay = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(params, lr, betas, eps, weight_decay)
