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
# # Maxout: where the gradient goes
#
# A maxout unit with $k$ pieces takes $k$ inputs $z_1, \dots, z_k$, usually $k$ affine
# functions of the layer's input, and outputs the largest, $y = \max_p z_p$.  Its derivative
# is 1 for the winning piece and 0 for every other, so its backward pass does no arithmetic:
# it *routes* the incoming gradient to the winner.  In this notebook we watch that happen
# over a range of inputs, with pictures, and look at the one delicate case, a tie.

# %%
import matplotlib.pyplot as plt
import numpy as np

import minidl as mdl
import minidl.functional as F

# %% [markdown]
# ## One unit, three pieces
#
# Take a scalar input $t$ and three pieces $z_p = w_p t + b_p$.  `F.maxout(z, pieces=3)`
# groups 3 consecutive channels: with `z` of shape `(samples, 3)` it returns the one unit's
# output, shape `(samples, 1)`.  We evaluate the unit on 601 values of $t$ at once and let
# autograd give us both $\partial y / \partial z$ (the routing) and $\partial y / \partial t$.

# %%
w = np.array([-1.0, 0.25, 1.5])
b = np.array([-0.5, 0.5, -1.0])
ts = np.linspace(-3, 3, 601)

# (601, 3): piece p in column p
z = mdl.tensor(ts[:, None] * w + b, requires_grad=True)
y = F.maxout(z, pieces=3)                   # (601, 1)
y.sum().backward()                          # dl/dy = 1 for every sample

winner = z.grad.argmax(axis=1)              # which piece received the gradient
one_hot = bool(((z.grad == 0) | (z.grad == 1)).all()
               and (z.grad.sum(axis=1) == 1).all())
print("pieces that ever win:", np.unique(winner))
print("every row of z.grad is one-hot:", one_hot)

# %% [markdown]
# The picture: the three pieces (thin), the unit's output (thick), and behind them the input
# range each piece wins.  The output is convex and piecewise linear; every breakpoint is
# where the lead changes hands.

# %%
colors = ["C0", "C1", "C2"]
zs, ys = z.numpy(), y.numpy()[:, 0]


def shade_winners(ax, winner):
    """Colour the background of each input range by the piece that wins there."""
    edges = np.flatnonzero(np.diff(winner)) + 1
    for start, stop in zip(np.r_[0, edges], np.r_[edges, len(winner)]):
        ax.axvspan(ts[start], ts[stop - 1], color=colors[winner[start]],
                   alpha=0.12, lw=0)


figure, ax = plt.subplots(figsize=(8, 4), dpi=100, layout="constrained")
shade_winners(ax, winner)
for p in range(3):
    ax.plot(ts, zs[:, p], color=colors[p], lw=1,
            label=f"piece {p}: $z_{p} = {w[p]:g}\\,t {b[p]:+g}$")
ax.plot(ts, ys, color="black", lw=3, alpha=0.6, label="$y = \\max_p z_p$")
ax.set(xlabel="$t$", ylabel="value",
       title="Which piece wins (background) and the output")
ax.legend(loc="upper center", fontsize=9)
plt.show()

# %% [markdown]
# ## Where the gradient goes
#
# Upper panel: $\partial y / \partial z_p$ for each piece, 1 where it wins and 0 elsewhere;
# at every $t$ exactly one piece gets the gradient.  Lower panel: the chain rule through
# $z_p = w_p t + b_p$ gives $\partial y / \partial t = w_{\text{winner}}$, a step function:
# the slope of whichever piece is on top.

# %%
dy_dt = z.grad @ w       # the chain rule by hand: sum over p of dy/dz_p * w_p

t = mdl.tensor(ts[:, None], requires_grad=True)      # the same, by autograd from t
F.maxout(t * mdl.tensor(w) + mdl.tensor(b), pieces=3).sum().backward()
print("autograd agrees:", bool((t.grad[:, 0] == dy_dt).all()))
print("dy/dt is the winning piece's slope:", bool((dy_dt == w[winner]).all()))

figure, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5), dpi=100, sharex=True,
                                     layout="constrained")
for p in range(3):
    top.plot(ts, z.grad[:, p] + 0.03 * (p - 1), color=colors[p], label=f"piece {p}")
top.set(ylabel="$\\partial y / \\partial z_p$", yticks=[0, 1],
        title="The gradient goes to the winner (curves offset to show all)")
top.legend(loc="center right", fontsize=9)
shade_winners(bottom, winner)
bottom.plot(ts, dy_dt, color="black")
bottom.set(xlabel="$t$", ylabel="$\\partial y / \\partial t$")
plt.show()

# %% [markdown]
# A piece that never wins on the data never receives a gradient, so its weights never
# change: it is dead weight.  With many samples what matters is the *share* of inputs each
# piece wins; the BN-and-regions notebook measures these shares in real networks.

# %%
shares = np.bincount(winner, minlength=3) / len(winner)
for p, share in enumerate(shares):
    print(f"piece {p} wins {share:.1%} of the inputs in [-3, 3]")

# %% [markdown]
# ## Ties go to the first piece
#
# At a tie, $z_p = z_q$, the maximum is not differentiable.  Sending the whole gradient to
# *every* tied piece would be wrong: the unit's output would pass on more gradient than it
# received.  minidl, like PyTorch's `max`, picks one, the first winning piece, so each
# group's input gradient sums to its output gradient.  A ReLU is a maxout of a piece $t$
# and a piece 0; add a second, identical, 0 piece and every $t < 0$ is a tie:

# %%
z2 = mdl.tensor(np.stack([0 * ts, 0 * ts, ts], axis=1), requires_grad=True)
dy = np.full((len(ts), 1), 1.0)
F.maxout(z2, pieces=3).backward(dy)

values = z2.numpy()
# how many pieces share the maximum at each t
winners = (values == values.max(axis=1, keepdims=True)).sum(axis=1)
tied = winners > 1          # t <= 0: pieces 0 and 1; at t = 0 all three
print("gradient at t = -1, pieces 0, 1, 2:", z2.grad[np.abs(ts + 1).argmin()])
print("ties all go to piece 0:", bool((z2.grad[tied, 0] == 1).all()
                                      and (z2.grad[tied, 1:] == 0).all()))
passed_on = z2.grad.sum(axis=1)
print("gradient passed on = gradient received:",
      bool((passed_on == dy[:, 0]).all()))

figure, ax = plt.subplots(figsize=(8, 3), dpi=100, layout="constrained")
for p, style in zip(range(3), ["-", "--", "-"]):
    ax.plot(ts, z2.grad[:, p] + 0.03 * (p - 1), color=colors[p], linestyle=style,
            label=f"piece {p}" + (" (ties with piece 0, t <= 0)" if p == 1 else ""))
ax.plot(ts, winners, color="gray", linestyle=":",
        label="total if every tied piece got the gradient")
ax.set(xlabel="$t$", ylabel="$\\partial y / \\partial z_p$", yticks=[0, 1, 2, 3],
       title="A tie: only the first winning piece gets the gradient")
ax.legend(fontsize=8, loc="upper left")
plt.show()

# %% [markdown]
# The same rule holds in every layout: for `(N, C, H, W)` input `F.maxout` groups channels
# and routes per position, and `nn.Maxout` wraps it as a layer.  The docs page on maxout
# derives the rule and explains why batch norm in front of maxout matters: it keeps every
# piece winning on a fair share of the inputs.
