"""Write your own differentiable op, check its gradient, and watch a wrong one fail.

    python examples/gradcheck_your_op.py

The op is the "softplus" y = log(1 + exp(x)), whose derivative is the
sigmoid 1 / (1 + exp(-x)).  We write forward and backward by hand, as every
op in minidl is written, then let ``minidl.gradcheck`` compare the backward
pass with central differences in float64.
"""
import numpy

import minidl as mdl


class Softplus(mdl.Function):
    """y = log(1 + exp(x));  dx = dy * sigmoid(x).

    Written as max(x, 0) + log(1 + exp(-|x|)) so that exp never overflows.
    """

    def forward(self, x):
        xp = mdl.backend.get_array_module(x)      # numpy or cupy: the same code for both
        self.x = x
        return xp.maximum(x, 0) + xp.log1p(xp.exp(-abs(x)))

    def backward(self, gy):
        xp = mdl.backend.get_array_module(gy)
        return gy * 0.5 * (1 + xp.tanh(0.5 * self.x))    # sigmoid(x), stable for any x


class SoftplusWrong(Softplus):
    """A plausible slip: using the derivative of exp instead of the sigmoid."""

    def backward(self, gy):
        xp = mdl.backend.get_array_module(gy)
        return gy * xp.exp(self.x)


def main():
    x = mdl.tensor(numpy.linspace(-3, 3, 7), requires_grad=True)   # float64: gradcheck needs it
    y = Softplus.apply(x)
    print("x          ", numpy.round(x.numpy(), 3))
    print("softplus(x)", numpy.round(y.numpy(), 4))
    y.sum().backward()
    print("dy/dx      ", numpy.round(x.grad, 4), "(the sigmoid of x)")

    print("\nchecking Softplus ...", mdl.gradcheck(Softplus.apply, [x]))
    print("checking SoftplusWrong ...")
    try:
        mdl.gradcheck(SoftplusWrong.apply, [x])
    except mdl.GradcheckError as error:
        print("  GradcheckError:", error)
        return error
    raise SystemExit("the wrong gradient was not caught")


if __name__ == "__main__":
    main()
