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
# # Batch norm keeps maxout units non-linear: the experiment, small
#
# A maxout unit $y = \max_p z_p$ is piecewise linear.  It only computes something a linear
# layer could not when its inputs fall in *more than one* linear region, that is, when
# different pieces win on different inputs.  Liao & Carneiro (2016) observed that without
# normalization the pre-activations of deep networks drift to one side of the breakpoints:
# one piece wins nearly always and the unit is, on the data, a linear function.  Batch norm
# in front of every unit re-centres each pre-activation on the batch and keeps every piece
# in the running.
#
# Here we measure that on a few hundred digits images, in under a minute on a laptop: two
# fully connected maxout networks that differ only in batch norm, their region statistics
# at initialization and after a short training, with `minidl.diagnostics` and
# `minidl.plots`.  `examples/bn_regions.py` runs the full-size version.

# %%
import matplotlib.pyplot as plt

import minidl as mdl
from minidl import diagnostics, nn, plots, recipes
from minidl.data import DataLoader
from minidl.optim import SGD
from minidl.train import Trainer

IMAGES = 600            # training images (and as many test images)
DEPTH, WIDTH, PIECES = 6, 16, 4
EPOCHS, LR, SEED = 6, 0.05, 0

# %% [markdown]
# ## Data
#
# `digits` ships with minidl (no download): 28 x 28 grey images of handwritten digits.
# `recipes.load_splits` standardizes them as `minidl train` does; we keep the first
# `IMAGES` of each split.

# %%
splits = recipes.load_splits("digits", limit=IMAGES)
(train_x, train_y), (test_x, test_y) = splits[1], splits[3]   # no validation split
print("train", train_x.shape, train_x.dtype, " test", test_x.shape)

# %% [markdown]
# ## Two models, one difference
#
# Each hidden layer is `Linear -> [BatchNorm1d] -> Maxout(4)`.  Both models are built from the
# same seed, so they start from the same weights: the Linear layers keep their bias even in
# front of batch norm (where it has no effect) for that reason.

# %%
def maxout_mlp(batch_norm):
    """Flatten, DEPTH hidden maxout layers of WIDTH units, a Linear classifier."""
    mdl.manual_seed(SEED)
    layers = [nn.Flatten()]
    for fan_in in [28 * 28] + [WIDTH] * (DEPTH - 1):
        layers += [nn.Linear(fan_in, WIDTH * PIECES)]
        layers += [nn.BatchNorm1d(WIDTH * PIECES)] if batch_norm else []
        layers += [nn.Maxout(PIECES)]
    return nn.Sequential(*layers, nn.Linear(WIDTH, 10))


models = {"no BN": maxout_mlp(batch_norm=False), "BN": maxout_mlp(batch_norm=True)}
print(models["BN"])

# %% [markdown]
# ## Region statistics at initialization
#
# `diagnostics.collect` runs a model over images with forward hooks on every maxout layer
# and counts, for each unit, how often each piece wins.  From the shares $s_1, \dots, s_k$
# of a unit it derives:
#
# * *degenerate*: one piece wins more than 99% of the inputs, the unit acts linearly;
# * *normalized entropy* $-\sum_p s_p \log s_p / \log k$: 1 when every piece wins equally
#   often, near 0 for a degenerate unit.
#
# At initialization batch norm has no running statistics yet, so we measure with the batch's
# own (`batch_stats=True`), all images in one batch.

# %%
measure = train_x[:300]
initial = {name: diagnostics.collect(model, measure, batch_size=len(measure),
                                     batch_stats=True)
           for name, model in models.items()}
for name, stats in initial.items():
    print(diagnostics.format_table(stats, title=f"{name}, at initialization"))
    print()

# %% [markdown]
# Without batch norm, each layer is worse than the one before: the maximum of pieces is
# positive on average, so every layer's input has a common positive shift, which each
# unit's weights turn into a fixed offset of each of its pieces.  Layer by layer, one piece
# pulls ahead.  With batch norm each pre-activation is centred and scaled per unit on the
# batch, and the entropy stays near 1 at every depth.

# %%
entropy = {name: [s.mean_entropy for s in stats]
           for name, stats in initial.items()}
print("normalized entropy per layer (input to output)")
for name, values in entropy.items():
    print(f"  {name:<6}", " ".join(f"{v:.2f}" for v in values))
assert min(entropy["BN"]) > max(entropy["no BN"])


# %% [markdown]
# ## Training, then measuring again
#
# Both models train the same way: SGD with momentum, the same learning rate, batches,
# epochs and shuffling seed.  After training the statistics come from evaluation mode
# (batch norm with its running statistics), as the model is used.

# %%
def train(model):
    loader = DataLoader((train_x, train_y), batch_size=50, shuffle=True, seed=SEED)
    trainer = Trainer(model, SGD(model.parameters(), lr=LR, momentum=0.9), loader,
                      test_loader=DataLoader((test_x, test_y), batch_size=300),
                      epochs=EPOCHS, seed=SEED, verbose=False)
    trainer.fit()
    return trainer.history


histories = {name: train(model) for name, model in models.items()}
trained = {name: diagnostics.collect(model, measure, batch_size=len(measure))
           for name, model in models.items()}
for name, history in histories.items():
    shares = [s.degenerate_share for s in trained[name]]
    print(f"{name:<6} test accuracy {history[-1]['test_accuracy']:.1%}; "
          f"degenerate units per layer:", " ".join(f"{v:.0%}" for v in shares))

# %% [markdown]
# ## Plots
#
# `minidl.plots` draws PNG files (matplotlib's Agg backend, no window).  We show each file
# inline with a small helper.  The region-share plot stacks, for every layer, the average
# share of each unit's most used piece, second most used, and so on: a bar that is one
# solid block is a layer of degenerate units.

# %%
def show(path):
    """Display a PNG file at its own size."""
    image = plt.imread(path)
    height, width = image.shape[:2]
    figure = plt.figure(figsize=(width / 100, height / 100), dpi=100)
    figure.add_axes([0, 0, 1, 1]).imshow(image)
    figure.axes[0].set_axis_off()
    plt.show()


panels = {f"{name}, {when}": stats[name] for when, stats in
          (("init", initial), ("trained", trained)) for name in models}
show(plots.plot_region_shares(panels, "region_shares.png"))

# %% [markdown]
# The histogram counts units by their largest share; the dashed line is the 99% threshold
# of a degenerate unit.  Without batch norm the mass piles up at the right, in the deep
# layers (light colours) most.

# %%
show(plots.plot_largest_share_histogram(panels, "largest_share.png"))

# %% [markdown]
# And the training curves of the two models:

# %%
show(plots.plot_training_curves(histories, "training_curves.png"))

# %% [markdown]
# At this size, a few epochs on 600 images, the accuracies say little; the region
# statistics are the point.  `examples/bn_regions.py` repeats the measurement at depths up
# to 12 on all 4,000 training images, with a control initialization that fixes the scale
# of the signal (but not the per-unit offsets), and the docs page on diagnostics discusses
# the results.
