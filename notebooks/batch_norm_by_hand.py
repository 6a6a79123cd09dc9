# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Batch norm forward and backward, by hand
#
# Batch normalization is three lines forward and, written naively, a page of chain rule
# backward.  In this notebook we write both in NumPy, then derive the backward pass three
# ways and check that they agree:
#
# 1. **the computational graph**: break the forward pass into elementary steps and push the
#    gradient back through them one at a time, as an autograd engine would;
# 2. **the closed form** of minidl's design, which the graph collapses to;
# 3. **minidl's `F.batch_norm`**, whose hand-written backward uses that closed form.
#
# Finally `mdl.gradcheck` compares our own op and minidl's with central differences.
# Everything runs in float64: in float32 a gradient check has too few digits to tell a right
# gradient from a slightly wrong one.

# %%
import numpy as np

import minidl as mdl
import minidl.functional as F

rng = np.random.default_rng(0)
N, C = 8, 3                          # a batch of 8 samples with 3 features
x = rng.normal(loc=2.0, scale=3.0, size=(N, C))
gamma = rng.uniform(0.5, 2.0, size=C)
beta = rng.normal(size=C)
eps = 1e-5

# %% [markdown]
# ## Forward
#
# Each feature (column) is normalized with the statistics of the batch.  With $m = N$ values
# per feature:
#
# $$\mu = \frac{1}{m}\sum_{i=1}^m x_i, \qquad
# \sigma^2 = \frac{1}{m}\sum_{i=1}^m (x_i - \mu)^2, \qquad
# \hat x_i = \frac{x_i - \mu}{\sqrt{\sigma^2 + \epsilon}}, \qquad y_i = \gamma \hat x_i + \beta .$$
#
# The variance is the *biased* one (divided by $m$, not $m - 1$), so that $\hat x$ has mean 0
# and mean square 1 exactly (up to $\epsilon$).  We write the forward pass as a chain of
# small nodes and keep every intermediate value: the backward pass needs them.

# %%
def forward(x, gamma, beta, eps):
    """Batch norm of (m, C) input over axis 0: y and the intermediate values."""
    mu = x.mean(axis=0)                # node 1: mean
    d = x - mu                         # node 2: deviation
    var = (d ** 2).mean(axis=0)        # node 3: biased variance
    s = (var + eps) ** -0.5            # node 4: inverse standard deviation
    xhat = d * s                       # node 5: normalized input
    y = gamma * xhat + beta            # node 6: scale and shift
    return y, dict(x=x, gamma=gamma, d=d, var=var, s=s, xhat=xhat)


y, saved = forward(x, gamma, beta, eps)
print("per-feature mean of xhat:", saved["xhat"].mean(axis=0).round(12))
print("per-feature mean square: ", (saved["xhat"] ** 2).mean(axis=0).round(6))

# %% [markdown]
# minidl's `F.batch_norm` in training mode computes the same thing:

# %%
y_minidl = F.batch_norm(mdl.tensor(x), mdl.tensor(gamma), mdl.tensor(beta),
                        eps=eps)
forward_error = np.abs(y_minidl.numpy() - y).max()
print(f"max |y_minidl - y| = {forward_error:.1e}")
assert forward_error < 1e-12

# %% [markdown]
# ## Backward 1: through the computational graph
#
# Let $\ell$ be the loss and $g = \partial \ell / \partial y$ the gradient arriving from above.
# We walk the nodes in reverse.  Each node turns the gradient of its output into gradients
# of its inputs, and an input used by several nodes *adds up* the gradients it receives:
# $d$ feeds both the variance and $\hat x$, and $x$ feeds both $\mu$ and $d$.
#
# | node | forward | backward |
# |---|---|---|
# | 6 | $y = \gamma \hat x + \beta$ | $\partial\hat x = \gamma g$, $\partial\gamma = \sum_i g_i \hat x_i$, $\partial\beta = \sum_i g_i$ |
# | 5 | $\hat x = d\, s$ | $\partial d$ += $s\, \partial\hat x$, $\partial s = \sum_i d_i\, \partial\hat x_i$ |
# | 4 | $s = (\sigma^2 + \epsilon)^{-1/2}$ | $\partial\sigma^2 = -\tfrac12 (\sigma^2 + \epsilon)^{-3/2}\, \partial s$ |
# | 3 | $\sigma^2 = \frac1m \sum_i d_i^2$ | $\partial d$ += $\frac{2 d}{m}\, \partial\sigma^2$ |
# | 2 | $d = x - \mu$ | $\partial x$ += $\partial d$, $\partial\mu = -\sum_i \partial d_i$ |
# | 1 | $\mu = \frac1m \sum_i x_i$ | $\partial x$ += $\frac1m \partial\mu$ |
#
# ($\partial v$ is short for $\partial \ell / \partial v$.)

# %%
def backward_graph(g, saved):
    """dx, dgamma, dbeta by reverse traversal of forward's six nodes."""
    d, s, var, xhat = saved["d"], saved["s"], saved["var"], saved["xhat"]
    m = len(d)
    dgamma, dbeta = (g * xhat).sum(axis=0), g.sum(axis=0)  # node 6
    dxhat = saved["gamma"] * g
    dd = s * dxhat                           # node 5 (the first use of d)
    ds = (d * dxhat).sum(axis=0)
    dvar = -0.5 * (var + eps) ** -1.5 * ds   # node 4
    dd = dd + 2 * d / m * dvar               # node 3 (the second use of d)
    dx = dd.copy()                           # node 2 (the first use of x)
    dmu = -dd.sum(axis=0)
    dx += dmu / m                            # node 1 (the second use of x)
    return dx, dgamma, dbeta


g = rng.normal(size=(N, C))          # some upstream gradient dl/dy
graph = backward_graph(g, saved)

# %% [markdown]
# ## Backward 2: the closed form
#
# Simplify the graph's result with $d_i = \hat x_i / s$ and $\sum_i d_i = 0$ (deviations from
# the mean sum to zero): $\partial\mu$'s path through the variance vanishes, and the three
# paths from $x_i$ combine into
#
# $$\frac{\partial \ell}{\partial x_i} = \frac{\gamma s}{m}\left(m\, g_i - \sum_j g_j
# - \hat x_i \sum_j g_j \hat x_j\right)
# = \frac{\gamma s}{m}\left(m\, g_i - \frac{\partial \ell}{\partial \beta}
# - \hat x_i\, \frac{\partial \ell}{\partial \gamma}\right).$$
#
# (The batch-norm page of the docs does this algebra step by step.)  Two per-feature sums
# serve all three gradients, and no intermediate but $\hat x$ and $s$ has to be kept.

# %%
def backward_closed(g, saved):
    """dx = gamma * s / m * (m * g - dbeta - xhat * dgamma): two sums, once."""
    xhat, s, gamma = saved["xhat"], saved["s"], saved["gamma"]
    m = len(xhat)
    dgamma, dbeta = (g * xhat).sum(axis=0), g.sum(axis=0)
    dx = gamma * s / m * (m * g - dbeta - xhat * dgamma)
    return dx, dgamma, dbeta


closed = backward_closed(g, saved)

# %% [markdown]
# ## Backward 3: minidl
#
# `F.batch_norm` records one op in the graph; `backward(g)` calls its hand-written backward
# (`BatchNormTrain.backward`) and leaves the gradients in `.grad`:

# %%
xt, gt, bt = (mdl.tensor(a, requires_grad=True) for a in (x, gamma, beta))
F.batch_norm(xt, gt, bt, eps=eps).backward(g)
minidl_grads = (xt.grad, gt.grad, bt.grad)

# %% [markdown]
# ## Side by side
#
# The largest difference of each method from the graph's answer, per gradient.  They agree
# to rounding error: a few units of the last place of float64.

# %%
methods = {"graph": graph, "closed form": closed, "F.batch_norm": minidl_grads}
differences = {name: [float(np.abs(a - b).max()) for a, b in zip(grads, graph)]
               for name, grads in methods.items()}
print(f"{'method':<14}{'dx':>10}{'dgamma':>10}{'dbeta':>10}")
for name, row in differences.items():
    print(f"{name:<14}" + "".join(f"{value:>10.1e}" for value in row))
assert max(max(row) for row in differences.values()) < 1e-12

# %% [markdown]
# Two facts fall out of the closed form and are worth checking.  The input gradient of each
# feature sums to zero: shifting a whole feature changes nothing after normalization.  And
# it is orthogonal to $\hat x$ (scaling a feature changes nothing either) but for a term
# that $\epsilon$ leaves: as $\sum_i \hat x_i^2 = m \sigma^2 / (\sigma^2 + \epsilon)$,
#
# $$\sum_i \hat x_i \frac{\partial \ell}{\partial x_i}
# = \gamma s \frac{\epsilon}{\sigma^2 + \epsilon} \sum_i g_i \hat x_i .$$

# %%
dx, dgamma, _ = closed
xhat, s, var = saved["xhat"], saved["s"], saved["var"]
predicted = gamma * s * eps / (var + eps) * dgamma
print("sum of dx per feature:       ", dx.sum(axis=0))
print("sum of dx * xhat per feature:", (dx * xhat).sum(axis=0))
print("the formula's prediction:    ", predicted)
assert np.allclose(dx.sum(axis=0), 0, atol=1e-12)
assert np.allclose((dx * xhat).sum(axis=0), predicted, rtol=1e-6, atol=0)

# %% [markdown]
# ## Gradient check
#
# Agreement of three derivations could still be agreement on a mistake.  A gradient check
# compares with something independent: central differences,
# $\partial \ell / \partial x_i \approx (\ell(x + h e_i) - \ell(x - h e_i)) / 2h$.
# To check *our* backward, we wrap it in an op of our own, a `mdl.Function` with forward and
# backward on arrays, exactly as minidl's ops are written.

# %%
class BatchNormByHand(mdl.Function):
    """Our forward and the graph backward, as a minidl op."""

    def forward(self, x, gamma, beta):
        y, self.saved = forward(x, gamma, beta, eps)
        return y

    def backward(self, g):
        return backward_graph(g, self.saved)


inputs = [mdl.tensor(a, requires_grad=True) for a in (x, gamma, beta)]
checks = {
    "BatchNormByHand": mdl.gradcheck(BatchNormByHand.apply, inputs),
    "F.batch_norm": mdl.gradcheck(lambda x, g, b: F.batch_norm(x, g, b, eps=eps),
                                  inputs),
}
print(checks)

# %% [markdown]
# A wrong backward does not pass.  The classic mistake is to treat $\mu$ and $\sigma^2$ as
# constants, which keeps only the direct path, $\partial x = \gamma s\, g$; the check names
# the input and its worst element:

# %%
class ConstantStatistics(BatchNormByHand):
    """Wrong on purpose: forgets that the mean and variance depend on x."""

    def backward(self, g):
        _, dgamma, dbeta = backward_graph(g, self.saved)
        return self.saved["gamma"] * self.saved["s"] * g, dgamma, dbeta


try:
    mdl.gradcheck(ConstantStatistics.apply, inputs)
except mdl.GradcheckError as error:
    caught = error
    print(error)
