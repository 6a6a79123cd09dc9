"""The model zoo: ``create(name, dataset, **overrides)`` and ``available()``.

A model name picks a class, its options, a width scale ("full" as in the
papers, "small" about 4x narrower for CPU training) and the initialization
of its source; the data set picks the widths, input channels and classes.
``docs/models.md`` has the table with parameter counts and the credits.
"""
from ..data.datasets import DATASETS, dataset_info
from ..functional._checks import check_number
from .initialization import SCHEMES, initialize
from .nin import MIM, MIN, NIN

__all__ = ["create", "available", "list_models", "check_overrides", "default_init"]

# Per block: (spatial conv channels, 1x1 units, 1x1 units); the last 1x1 layer of
# block 3 has one unit per class and is not listed.  "full" are the NIN widths
# per data set (CIFAR-10's as in Lin et al. and Chang & Chen); MIM and MIN use the
# same numbers as units, each maxout layer computing units * pieces channels.
WIDTHS = {
    ("cifar", "full"): ((192, 160, 96), (192, 192, 192), (192, 192)),
    ("mnist", "full"): ((96, 64, 48), (128, 96, 48), (128, 96)),
    ("svhn", "full"): ((128, 96, 64), (320, 256, 128), (384, 256)),
    ("cifar", "small"): ((48, 40, 24), (48, 48, 48), (48, 48)),
    ("mnist", "small"): ((24, 16, 12), (32, 24, 12), (32, 24)),
    ("svhn", "small"): ((32, 24, 16), (80, 64, 32), (96, 64)),
}
_WIDTH_FAMILY = {"digits": "mnist", "mnist": "mnist", "cifar10": "cifar", "cifar100": "cifar",
                 "svhn": "svhn"}

# name -> (class, width scale, class options, initialization, one-line description).  The
# initialization is the source's: NIN's Caffe model (gaussian), Chang & Chen's code
# (orthogonal); for MIM no code was found and He et al.'s scheme is minidl's choice.
_MODELS = {
    "nin": (NIN, "full", {"batch_norm": False}, "gaussian",
            "Network in Network (Lin et al., arXiv:1312.4400): mlpconv blocks with ReLU"),
    "nin-bn": (NIN, "full", {"batch_norm": True}, "gaussian",
               "NIN with batch norm before every ReLU (Liao & Carneiro's NIN + BN)"),
    "maxout-nin": (MIM, "full", {"batch_norm": False}, "kaiming",
                   "NIN with maxout after every convolution, no batch norm (MIM without BN)"),
    "mim": (MIM, "full", {"batch_norm": True}, "kaiming",
            "Maxout network in maxout network: BN before every maxout "
            "(Liao & Carneiro, arXiv:1508.00330)"),
    "min": (MIN, "full", {"batch_norm": True}, "orthogonal",
            "Batch-normalized maxout network in network (Chang & Chen, arXiv:1511.02583)"),
}
# The small widths are minidl's, not a source's.  At them NIN's Gaussian (std 0.05, set for
# the CIFAR-10 widths) shrinks the logits at initialization to a std of about 1e-6 on digits
# (docs/models.md), so no gradient reaches the first layers: nin-small starts with He's scheme.
_SMALL_INIT = {"nin": "kaiming"}
_MODELS.update({f"{name}-small": (cls, "small", options, _SMALL_INIT.get(name, scheme),
                                  f"{name}, about 4x narrower")
                for name, (cls, _, options, scheme, _) in list(_MODELS.items())})

_COMMON_OVERRIDES = ("num_classes", "in_channels", "dropout", "init")


def available():
    """An ordered dict: model name -> one-line description."""
    return {name: spec[4] for name, spec in _MODELS.items()}


list_models = available


def default_init(name):
    """The initialization scheme model ``name`` uses unless told otherwise (its source's)."""
    check_overrides(name)
    return _MODELS[name][3]


def check_overrides(name, **overrides):
    """The ``overrides`` of :func:`create` for model ``name``, checked and converted.

    Python ints, a float for ``dropout`` (in [0, 1)) and a scheme name for
    ``init``; an unknown model or override raises ValueError, as does a value
    out of range (TypeError: a value of the wrong type).
    """
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; available models: {', '.join(_MODELS)}")
    valid = _COMMON_OVERRIDES + (("pieces",) if _MODELS[name][0] is not NIN else ())
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise ValueError(f"unknown override(s) {', '.join(map(repr, unknown))} for model "
                         f"{name!r}; valid overrides: {', '.join(valid)}")
    if "init" in overrides and overrides["init"] not in SCHEMES:
        raise ValueError(f"create: init must be one of {', '.join(SCHEMES)}, got "
                         f"{overrides['init']!r}")
    return {key: value if key == "init"
            else check_number("create", key, value, low=0, high=1, high_open=True)
            if key == "dropout" else check_number("create", key, value, integer=True, low=1)
            for key, value in overrides.items()}


def create(name, dataset, **overrides):
    """Build model ``name`` configured for ``dataset``, in training mode.

    ``name``: a key of :func:`available`.  ``dataset``: "digits", "mnist",
    "cifar10", "cifar100" or "svhn" (digits and mnist share one
    configuration: 28x28 grayscale, 10 classes).  ``overrides``:

    * ``num_classes``: outputs (default: the data set's classes);
    * ``in_channels``: input channels (default: the data set's);
    * ``dropout``: the dropout probability after blocks 1 and 2 (default 0.5;
      0 leaves the dropout layers out);
    * ``pieces``: maxout pieces k, for the maxout models only (default 2
      for ``mim`` and ``maxout-nin``, 5 for ``min``);
    * ``init``: the initialization scheme, one of
      ``minidl.models.initialization.SCHEMES`` (default: the model's source's,
      :func:`default_init`).

    The returned module has a ``config`` dict such that
    ``create(**model.config)`` builds the same architecture again.
    """
    overrides = check_overrides(name, **overrides)
    if dataset not in _WIDTH_FAMILY:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    cls, scale, options, scheme, _ = _MODELS[name]
    info = dataset_info(dataset)
    arguments = dict(in_channels=info["channels"], num_classes=info["num_classes"], **options)
    arguments.update(overrides)
    scheme = arguments.pop("init", scheme)
    model = initialize(cls(WIDTHS[_WIDTH_FAMILY[dataset], scale], **arguments), scheme)
    model.config = dict(name=name, dataset=dataset, **overrides)
    return model
