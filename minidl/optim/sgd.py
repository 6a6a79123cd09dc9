r"""Stochastic gradient descent with momentum, dampening, Nesterov momentum and weight decay.

PyTorch's update, for a parameter :math:`p` with gradient :math:`\nabla`, learning
rate :math:`\eta`, momentum :math:`\mu`, dampening :math:`\tau`, weight decay
:math:`\lambda` and momentum buffer :math:`b` (the parameter's state):

.. math::

    g &= \nabla + \lambda p \\
    b &= g \ \text{on the first step, else}\ \mu b + (1 - \tau) g \\
    g &= g + \mu b \ \text{(Nesterov)}, \ \text{else}\ g = b \\
    p &= p - \eta g

With :math:`\mu = 0` there is no buffer and the step is :math:`p - \eta g`.  Note
that the learning rate multiplies the buffer (it is not inside it, as in some
papers), so changing :math:`\eta` takes effect at once.
"""
from ..functional._checks import check_flag, check_number
from .optimizer import Optimizer

__all__ = ["SGD"]


class SGD(Optimizer):
    """``SGD(params, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False)``.

    State per parameter: ``"momentum_buffer"`` (when momentum is not 0).
    """

    state_keys = ("momentum_buffer",)

    def __init__(self, params, lr, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False):
        super().__init__(params, {"lr": lr, "momentum": momentum, "dampening": dampening,
                                  "weight_decay": weight_decay, "nesterov": nesterov})

    def _check_group(self, group):
        """lr, momentum, weight_decay real numbers >= 0, dampening in [0, 1], nesterov a bool.

        Nesterov momentum needs momentum > 0 and no dampening, as in PyTorch.
        """
        name = type(self).__name__
        for key in ("lr", "momentum", "weight_decay"):
            group[key] = check_number(name, key, group[key], low=0)
        group["dampening"] = check_number(name, "dampening", group["dampening"], low=0, high=1)
        check_flag(name, "nesterov", group["nesterov"])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(f"{name}: nesterov=True requires momentum > 0 and dampening = 0, "
                             f"got momentum={group['momentum']!r} and "
                             f"dampening={group['dampening']!r}")

    def _update(self, p, grad, state, group):
        lr, momentum, weight_decay = group["lr"], group["momentum"], group["weight_decay"]
        if weight_decay != 0:
            d_p = p.data * weight_decay
            d_p += grad                   # grad + wd * p without touching the user's .grad
        else:
            d_p = grad
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = d_p.copy()
            else:
                buf *= momentum
                dampening = group["dampening"]
                buf += d_p if dampening == 0 else (1 - dampening) * d_p
            d_p = d_p + momentum * buf if group["nesterov"] else buf
        p.data -= lr * d_p
