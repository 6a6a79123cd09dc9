"""Piecewise-linear region statistics of ReLU and maxout units.

A ReLU unit has two linear regions (input <= 0: the unit outputs 0; input > 0:
it passes its input); a maxout unit with k pieces has k (piece p wins).  A
unit only adds non-linearity when its inputs fall in more than one region.
Liao & Carneiro (2016) observed that without normalization the inputs pile
up on one side of the breakpoints, more so with depth, and that batch
normalization in front of each unit keeps every region in use.  This module
measures that, on any model, without touching its code::

    stats = diagnostics.collect(model, (images, labels), batch_size=500)
    print(diagnostics.format_table(stats))

or, around forward passes of one's own::

    with diagnostics.RegionMonitor(model) as monitor:
        model(x)
    stats = monitor.results()

or over training, at step 0 and after every epoch, into ``regions.json`` of
the run folder::

    trainer = Trainer(..., out_dir="run", callbacks=[diagnostics.RegionTracker(500)])

Per unit it counts, over every (sample, position), how many inputs fall in
each region; per layer it also accumulates the covariance of the layer's input
channels (the pre-activations).  Counts and sums stay on the model's device
and are copied to the host once, by :meth:`RegionMonitor.results`.

Definitions (``docs/diagnostics.md``):

* region share of unit u, region r: ``counts[u, r] / samples``;
* a unit is *degenerate* when one region takes more than 99% of its inputs
  (:data:`DEGENERATE_SHARE`): it acts as one linear function (or, for a ReLU
  that is never positive, as a dead unit);
* normalized entropy of a unit: ``-sum_r s_r log s_r / log(regions)``, 1 when
  every region is used equally, 0 for a degenerate unit in the limit;
* condition number of a layer: ``lambda_max / lambda_min`` of the covariance
  of its input channels over (sample, position); for maxout the input has
  units * pieces channels.  Those channels are often linearly dependent (a
  maxout layer computing units * pieces > fan-in channels from its fan-in
  inputs; channels fed by dead units), so the covariance is singular: the
  *rank* counts the eigenvalues above the rounding floor of the input's
  dtype, and the condition number is taken over those, i.e. over the
  subspace the pre-activations actually span.
"""
import dataclasses
import json
import math
import os

import numpy

from . import backend, tables
from .autograd import no_grad, tensor
from .fileio import atomic_write
from .functional._checks import check_flag, check_number, is_integer
from .nn.layers import BatchNorm1d, BatchNorm2d, Maxout, ReLU

__all__ = ["DEGENERATE_SHARE", "LayerStats", "RegionMonitor", "RegionTracker", "collect",
           "format_table", "model_summary", "region_shares", "normalized_entropy",
           "degenerate_units", "condition_number", "numerical_rank", "REGIONS_NAME"]

DEGENERATE_SHARE = 0.99
REGIONS_NAME = "regions.json"       # what a RegionTracker writes into the run folder


# --------------------------------------------------------------------------- formulas

def region_shares(counts):
    """Counts (units, regions) -> the share of each unit's inputs in each region (float64)."""
    counts = numpy.asarray(counts, dtype=numpy.float64)
    if counts.ndim != 2:
        raise ValueError(f"region_shares: counts must have shape (units, regions), "
                         f"got {counts.shape}")
    totals = counts.sum(axis=1, keepdims=True)
    if (totals == 0).any():
        raise ValueError("region_shares: a unit has no inputs counted (a row of zeros)")
    return counts / totals


def normalized_entropy(shares):
    """Entropy of each row of ``shares`` divided by log(regions): in [0, 1].

    0 log 0 counts as 0.  With a single region there is nothing to choose
    and the entropy is 0.
    """
    shares = numpy.asarray(shares, dtype=numpy.float64)
    regions = shares.shape[-1]
    if regions == 1:
        return numpy.zeros(shares.shape[:-1])
    logs = numpy.log(numpy.where(shares > 0, shares, 1.0))
    return -(shares * logs).sum(axis=-1) / math.log(regions)


def degenerate_units(shares, threshold=DEGENERATE_SHARE):
    """True for each unit (row) whose largest region share exceeds ``threshold``."""
    return numpy.asarray(shares).max(axis=-1) > threshold


def _eigenvalues(covariance):
    covariance = numpy.asarray(covariance, dtype=numpy.float64)
    if covariance.ndim != 2 or covariance.shape[0] != covariance.shape[1]:
        raise ValueError(f"covariance must be a square matrix, got shape {covariance.shape}")
    if not numpy.isfinite(covariance).all():
        return None
    return numpy.linalg.eigvalsh(covariance)


def numerical_rank(covariance, floor=0.0):
    """How many eigenvalues of a symmetric PSD matrix exceed ``floor``."""
    eigenvalues = _eigenvalues(covariance)
    return 0 if eigenvalues is None else int((eigenvalues > floor).sum())


def condition_number(covariance, floor=0.0):
    """lambda_max / lambda_min of a symmetric PSD matrix, over its eigenvalues above ``floor``.

    With ``floor=0`` and a non-singular matrix this is ``numpy.linalg.cond``
    (the 2-norm condition number).  Eigenvalues at or below ``floor`` count
    as zero: the result is the conditioning within the matrix's range.  nan
    when no eigenvalue exceeds ``floor`` or the matrix holds nan or inf.
    """
    eigenvalues = _eigenvalues(covariance)
    if eigenvalues is None:
        return math.nan
    kept = eigenvalues[eigenvalues > floor]
    return float(kept[-1] / kept[0]) if len(kept) else math.nan


# --------------------------------------------------------------------------- results

@dataclasses.dataclass(eq=False)
class LayerStats:
    """Region statistics of one ReLU or Maxout module, as host NumPy arrays.

    ``counts[u, r]``: how many inputs of unit u fell in region r, counted over
    every (sample, position).  ReLU regions: 0 = input <= 0, 1 = input > 0;
    maxout region p: piece p won (ties go to the first piece, as in the
    forward pass).  ``covariance`` and ``mean``: covariance (channels,
    channels) and mean (channels,) of the layer's input channels, None when
    not collected.  ``eps``: the machine epsilon of the input's dtype, which
    sets the rounding floor of the covariance's eigenvalues.
    ``nonfinite``: how many input values were nan or inf (a diverged model;
    its region counts then mean little).
    """

    name: str
    kind: str
    counts: numpy.ndarray
    covariance: numpy.ndarray = None
    mean: numpy.ndarray = None
    eps: float = float(numpy.finfo(numpy.float32).eps)
    nonfinite: int = 0

    @property
    def units(self):
        return self.counts.shape[0]

    @property
    def regions(self):
        return self.counts.shape[1]

    @property
    def samples(self):
        """How many inputs each unit saw: (sample, position) pairs."""
        return int(self.counts[0].sum())

    @property
    def shares(self):
        """(units, regions) share of each unit's inputs in each region."""
        return region_shares(self.counts)

    @property
    def largest_share(self):
        """(units,) share of each unit's most used region."""
        return self.shares.max(axis=1)

    @property
    def degenerate(self):
        """(units,) True where one region takes more than 99% of the inputs."""
        return degenerate_units(self.shares)

    @property
    def degenerate_share(self):
        """Share of this layer's units that are degenerate."""
        return float(self.degenerate.mean())

    @property
    def entropy(self):
        """(units,) normalized entropy of each unit's region distribution."""
        return normalized_entropy(self.shares)

    @property
    def mean_entropy(self):
        return float(self.entropy.mean())

    @property
    def eigenvalue_floor(self):
        """Eigenvalues of the covariance below this are rounding noise.

        Rounding a value x to the input dtype errs by about eps * |x|, which
        adds about eps**2 * E[x**2] of variance per channel; the factor
        ``channels`` leaves room for the rounding of the sums that computed x.
        """
        second_moment = (self.covariance.diagonal() + self.mean ** 2).max()
        return len(self.mean) * self.eps ** 2 * second_moment

    @property
    def rank(self):
        """Numerical rank of the input covariance (-1 when it was not collected)."""
        if self.covariance is None:
            return -1
        return numerical_rank(self.covariance, self.eigenvalue_floor)

    @property
    def condition_number(self):
        """Condition number of the input covariance over its rank (nan when not collected)."""
        if self.covariance is None:
            return math.nan
        return condition_number(self.covariance, self.eigenvalue_floor)

    def summary(self):
        """The per-layer numbers as a JSON-ready dict (nan and inf become None)."""
        numbers = {"layer": self.name, "kind": self.kind, "units": self.units,
                "regions": self.regions, "samples": self.samples,
                "degenerate_share": self.degenerate_share, "mean_entropy": self.mean_entropy,
                "channels": None if self.mean is None else len(self.mean), "rank": self.rank,
                "condition_number": self.condition_number, "nonfinite": self.nonfinite}
        return {k: None if isinstance(v, float) and not math.isfinite(v) else v
                for k, v in numbers.items()}


def model_summary(stats):
    """The numbers of a whole model, JSON-ready: pooled over all units, and per layer.

    ``degenerate_share``: degenerate units / all units; ``mean_entropy``: the
    normalized entropy averaged over all units (a wide layer weighs more);
    ``layers``: :meth:`LayerStats.summary` of each layer.
    """
    units = sum(s.units for s in stats)
    return {"degenerate_share": float(sum(s.degenerate.sum() for s in stats) / units),
            "mean_entropy": float(sum(s.entropy.sum() for s in stats) / units),
            "layers": [s.summary() for s in stats]}


def format_table(stats, title=None):
    """A plain-text table, one row per layer: the numbers of :meth:`LayerStats.summary`.

    "rank" is rank/channels of the input covariance, "cond" its condition
    number over that rank.  A last line warns of nan or inf inputs.
    """
    header = ("layer", "type", "units", "regions", "samples", "degenerate", "entropy", "rank",
              "cond")
    rows = [(s.name, s.kind, s.units, s.regions, s.samples,
             f"{100 * s.degenerate_share:.1f}%", f"{s.mean_entropy:.3f}",
             "-" if s.mean is None else f"{s.rank}/{len(s.mean)}", f"{s.condition_number:.3g}")
            for s in stats]
    lines = ([title] if title else []) + [tables.format_table(header, rows, align="<<>>>>>>>")]
    broken = [s.name for s in stats if s.nonfinite]
    if broken:
        lines.append(f"warning: nan or inf inputs in {', '.join(broken)}: the model has diverged")
    return "\n".join(lines)


# --------------------------------------------------------------------------- collection

class _Accumulator:
    """Device-side running counts (and input moments) of one monitored module."""

    def __init__(self, name, module, covariance):
        self.name, self.module, self.with_covariance = name, module, covariance
        self.kind = "maxout" if isinstance(module, Maxout) else "relu"
        self.counts = None       # (units, regions) int64 on the device
        self.shift = None        # first batch's channel means: keeps the moments well scaled
        self.total = None        # sum of (x - shift) per channel
        self.gram = None         # sum of (x - shift)(x - shift)^T
        self.samples = 0
        self.nonfinite = None    # count of nan / inf inputs, on the device
        self.eps = None

    def __call__(self, module, inputs, output):
        x = inputs[0].data
        xp = backend.get_array_module(x)
        if self.kind == "relu":
            if x.ndim < 2:
                raise ValueError(f"diagnostics: ReLU {self.name!r} got input of shape {x.shape}; "
                                 f"expected (N, C) or (N, C, ...) with units along axis 1")
            axis, regions = 1, 2
            region = x > 0
        else:
            axis, regions = module.axis % x.ndim, module.pieces
            grouped = x.reshape(x.shape[:axis] + (x.shape[axis] // regions, regions)
                                + x.shape[axis + 1:])
            region = grouped.argmax(axis=axis + 1)     # the first maximum, as the forward
        others = tuple(i for i in range(region.ndim) if i != axis)
        counts = (xp.expand_dims(region, -1) == xp.arange(regions)).sum(axis=others)
        units = region.shape[axis]
        if self.counts is None:
            self.counts = xp.zeros((units, regions), dtype=xp.int64)
        elif self.counts.shape[0] != units:
            raise ValueError(f"diagnostics: {self.name!r} saw {self.counts.shape[0]} units, then "
                             f"{units}; use one module instance per layer")
        self.counts += counts
        self.samples += region.size // units
        bad = (~xp.isfinite(x)).sum()
        self.nonfinite = bad if self.nonfinite is None else self.nonfinite + bad
        self.eps = float(numpy.finfo(x.dtype).eps)
        if self.with_covariance:
            self._add_moments(xp, x, axis)

    def _add_moments(self, xp, x, axis):
        channels = xp.moveaxis(x, axis, -1).reshape(-1, x.shape[axis]).astype(xp.float64)
        if self.shift is None:
            # Pre-activations of an unnormalized layer can sit far from 0; centring on
            # a first estimate of the mean avoids cancellation in E[xx^T] - E[x]E[x]^T.
            self.shift = channels.mean(axis=0)
            self.total = xp.zeros_like(self.shift)
            self.gram = xp.zeros((len(self.shift), len(self.shift)), dtype=xp.float64)
        centred = channels - self.shift
        self.total += centred.sum(axis=0)
        self.gram += centred.T @ centred

    def result(self):
        if self.counts is None:
            raise RuntimeError(f"diagnostics: no forward pass has gone through {self.name!r} "
                               f"since the monitor was attached or reset")
        xp = backend.get_array_module(self.counts)
        # one copy to the host: counts, nan/inf count, and the moments, packed together
        parts = [self.counts.ravel(), self.nonfinite.reshape(1)]
        if self.with_covariance:
            centred_mean = self.total / self.samples
            covariance = self.gram / self.samples - xp.outer(centred_mean, centred_mean)
            parts += [centred_mean + self.shift, covariance]
        host = backend.to_numpy(xp.concatenate([p.ravel().astype(xp.float64) for p in parts]))
        counts, nonfinite, *moments = numpy.split(host, numpy.cumsum([p.size for p in parts])[:-1])
        mean, covariance = moments or (None, None)
        if covariance is not None:
            covariance = covariance.reshape(len(mean), len(mean))
        return LayerStats(self.name, self.kind,
                          counts.round().astype(numpy.int64).reshape(self.counts.shape),
                          covariance, mean, self.eps, int(nonfinite[0]))


class RegionMonitor:
    """Forward hooks on every ReLU and Maxout module of ``model`` that count regions.

    Attached on construction; :meth:`remove` (or leaving a ``with`` block)
    detaches them.  The hooks return nothing, so the model's outputs are
    unchanged.  A module called at several places of a forward pass is
    counted at each call: give each layer its own module.
    ``covariance=False`` skips the input covariance, which costs
    O(inputs * channels**2) per batch.
    """

    def __init__(self, model, covariance=True):
        self._accumulators = [_Accumulator(name or type(module).__name__, module, covariance)
                              for name, module in model.named_modules()
                              if isinstance(module, (ReLU, Maxout))]
        if not self._accumulators:
            raise ValueError(f"RegionMonitor: {type(model).__name__} has no ReLU or Maxout "
                             f"module to monitor (functional relu/maxout calls cannot be hooked)")
        self._handles = [a.module.register_forward_hook(a) for a in self._accumulators]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()

    def remove(self):
        """Detach every hook (the statistics gathered so far stay readable)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def reset(self):
        """Forget everything counted so far."""
        self._accumulators = [_Accumulator(a.name, a.module, a.with_covariance)
                              for a in self._accumulators]
        if self._handles:
            self.remove()
            self._handles = [a.module.register_forward_hook(a) for a in self._accumulators]

    def results(self):
        """A :class:`LayerStats` per monitored module, in the model's module order."""
        return [a.result() for a in self._accumulators]


def _batches(data, batch_size):
    """Input batches (host or device arrays) from an array, (images, labels) or an iterable."""
    if isinstance(data, tuple):
        data = data[0]
    if hasattr(data, "shape"):
        for start in range(0, len(data), batch_size):
            yield data[start:start + batch_size]
        return
    for batch in data:
        yield batch[0] if isinstance(batch, (tuple, list)) else batch


def collect(model, data, batch_size=256, batch_stats=False, covariance=True):
    """Run ``model`` over ``data`` without gradients and return its :class:`LayerStats`.

    ``data``: an input array, an ``(images, labels)`` tuple, or an iterable of
    batches ``x`` or ``(x, y)`` such as a :class:`~minidl.data.DataLoader`.
    Batches go to the device and dtype of the model's parameters.

    The model runs in evaluation mode (dropout off, batch norm with its
    running statistics).  ``batch_stats=True`` makes batch-norm layers use
    the statistics of each batch instead, as in training: needed at
    initialization, where the running statistics are still 0 and 1.  Batch
    norm buffers, training flags and hooks are restored afterwards.
    """
    params = list(model.parameters())
    device = params[0].device if params else backend.get_default_device()
    dtype = params[0].dtype if params else None
    modes = [(m, m.training) for m in model.modules()]
    norms = [m for m in model.modules() if isinstance(m, (BatchNorm1d, BatchNorm2d))]
    saved = [[b.data.copy() for b in m.buffers()] for m in norms]
    model.eval()
    for m in norms:
        m.training = batch_stats
    try:
        with RegionMonitor(model, covariance=covariance) as monitor, no_grad():
            for x in _batches(data, batch_size):
                model(tensor(x, dtype=dtype, device=device))
        return monitor.results()
    finally:
        for m, flag in modes:
            m.training = flag
        for m, arrays in zip(norms, saved):
            for b, array in zip(m.buffers(), arrays):
                b.data = array


# --------------------------------------------------------------------------- over training

class RegionTracker:
    """A :class:`~minidl.train.Trainer` callback: region statistics at step 0 and every epoch.

    On a fixed batch of training images it runs :func:`collect` before the
    first step of a run and after every epoch, and appends
    ``{"epoch": e, "global_step": s, **model_summary(stats)}`` to
    :attr:`history` (epoch 0: the initial model).  With the trainer's
    ``out_dir`` set it rewrites ``regions.json`` there each time.  Its history
    is part of the trainer's checkpoint, so a resumed run goes on with it.

    images: an array of (preprocessed) input images, or a number of them to
        draw, without replacement and in their original order, from the
        trainer's training set (``train_loader.dataset[index][0]``) with a
        generator seeded by ``seed`` (default: the trainer's run seed).
    batch_stats: batch norm on each measured batch's statistics, as the
        training forward pass sees it (True, the default: at step 0 the
        running statistics hold no information yet), or on the running
        statistics, as evaluation does (False).
    batch_size, covariance: as for :func:`collect`.

    Measuring uses no random numbers and leaves the batch-norm buffers as
    they were, so a run with a tracker trains exactly as one without.
    """

    def __init__(self, images=500, seed=None, batch_size=256, batch_stats=True,
                 covariance=True):
        if is_integer(images):
            check_number("RegionTracker", "images", images, integer=True, low=1)
            self.count, self.images = int(images), None
        else:
            if getattr(images, "ndim", 0) < 2 or len(images) == 0:
                raise ValueError(f"RegionTracker: images must be a number or an array of one "
                                 f"or more images (N, ...), got "
                                 f"{getattr(images, 'shape', type(images).__name__)}")
            self.count, self.images = len(images), images
        if seed is not None:
            check_number("RegionTracker", "seed", seed, integer=True, low=0)
        self.seed = seed
        self.batch_size = check_number("RegionTracker", "batch_size", batch_size, integer=True,
                                       low=1)
        self.batch_stats = check_flag("RegionTracker", "batch_stats", batch_stats)
        self.covariance = check_flag("RegionTracker", "covariance", covariance)
        self.history = []

    def on_fit_start(self, trainer):
        if self.images is None:
            dataset = trainer.train_loader.dataset
            seed = trainer.seed if self.seed is None else self.seed
            index = numpy.random.default_rng(seed).choice(
                len(dataset), min(self.count, len(dataset)), replace=False)
            self.images = dataset[numpy.sort(index)][0]
        if not self.history and trainer.global_step == 0:
            self.record(trainer)

    def on_epoch_end(self, trainer):
        self.record(trainer)

    def record(self, trainer):
        """Measure ``trainer.model`` now; append the entry to :attr:`history` and the file."""
        stats = collect(trainer.model, self.images, batch_size=self.batch_size,
                        batch_stats=self.batch_stats, covariance=self.covariance)
        self.history.append({"epoch": trainer.epoch, "global_step": trainer.global_step,
                             **model_summary(stats)})
        if trainer.out_dir is not None:
            text = json.dumps({"images": len(self.images), "batch_stats": self.batch_stats,
                               "history": self.history}, indent=1)
            atomic_write(os.path.join(trainer.out_dir, REGIONS_NAME),
                         lambda f: f.write(text.encode()))

    def state_dict(self):
        return {"history": self.history, "images": self.count}

    def load_state_dict(self, state):
        """The history so far, and the number of images to draw (the same batch again)."""
        self._checked_state(state)
        self.history = list(state["history"])
        if self.images is None:
            self.count = state["images"]

    def _checked_state(self, state):
        """ValueError unless ``state`` is a :meth:`state_dict`; changes nothing."""
        history, images = state.get("history"), state.get("images")
        if not (isinstance(history, list) and all(isinstance(e, dict) for e in history)):
            raise ValueError(f"a RegionTracker state's 'history' is a list of dicts, got "
                             f"{history!r:.100}")
        if not (isinstance(images, int) and not isinstance(images, bool) and images >= 1):
            raise ValueError(f"a RegionTracker state's 'images' is a positive int, got {images!r}")
