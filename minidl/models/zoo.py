"""The model zoo: ``create(name, dataset, **overrides)`` and ``available()``.

A model name picks a class, its options and a width scale ("full" as in the
papers, "small" about 4x narrower for CPU training); the data set picks the
widths, input channels and classes.  ``docs/models.md`` has the table with
parameter counts and the credits.
"""
from ..data.datasets import DATASETS, dataset_info
from ..functional._checks import check_number
from .nin import MIN, NIN

__all__ = ["create", "available", "list_models", "check_overrides"]

# Per block: (spatial conv channels, 1x1 units, 1x1 units); the last 1x1 layer of
# block 3 has one unit per class and is not listed.  "full" are the NIN widths
# per data set (CIFAR-10's as in Lin et al. and Chang & Chen); MIN uses the same
# numbers as units, each 1x1 layer computing units * pieces channels.
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

# name -> (class, width scale, class options, one-line description)
_MODELS = {
    "nin": (NIN, "full", {"batch_norm": False},
            "Network in Network (Lin et al. 2013): mlpconv blocks with ReLU"),
    "nin-bn": (NIN, "full", {"batch_norm": True},
               "NIN with batch norm before every ReLU"),
    "maxout-nin": (MIN, "full", {"batch_norm": False},
                   "NIN with maxout 1x1 layers, no batch norm (MIN without BN)"),
    "min": (MIN, "full", {"batch_norm": True},
            "Maxout NIN with batch norm before every maxout "
            "(Liao & Carneiro 2016; Chang & Chen 2015)"),
    "nin-small": (NIN, "small", {"batch_norm": False}, "nin, about 4x narrower"),
    "nin-bn-small": (NIN, "small", {"batch_norm": True}, "nin-bn, about 4x narrower"),
    "maxout-nin-small": (MIN, "small", {"batch_norm": False}, "maxout-nin, about 4x narrower"),
    "min-small": (MIN, "small", {"batch_norm": True}, "min, about 4x narrower"),
}

_COMMON_OVERRIDES = ("num_classes", "in_channels", "dropout")


def available():
    """An ordered dict: model name -> one-line description."""
    return {name: spec[3] for name, spec in _MODELS.items()}


list_models = available


def check_overrides(name, **overrides):
    """The ``overrides`` of :func:`create` for model ``name``, checked and converted.

    Python ints, and a float for ``dropout`` (in [0, 1)); an unknown model or
    override raises ValueError, as does a value out of range (TypeError: a
    value of the wrong type).
    """
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; available models: {', '.join(_MODELS)}")
    valid = _COMMON_OVERRIDES + (("pieces",) if _MODELS[name][0] is MIN else ())
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise ValueError(f"unknown override(s) {', '.join(map(repr, unknown))} for model "
                         f"{name!r}; valid overrides: {', '.join(valid)}")
    return {key: check_number("create", key, value, low=0, high=1, high_open=True)
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
    * ``pieces``: maxout pieces k (default 5), for the maxout models only.

    The returned module has a ``config`` dict such that
    ``create(**model.config)`` builds the same architecture again.
    """
    overrides = check_overrides(name, **overrides)
    if dataset not in _WIDTH_FAMILY:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    cls, scale, options, _ = _MODELS[name]
    info = dataset_info(dataset)
    arguments = dict(in_channels=info["channels"], num_classes=info["num_classes"], **options)
    arguments.update(overrides)
    model = cls(WIDTHS[_WIDTH_FAMILY[dataset], scale], **arguments)
    model.config = dict(name=name, dataset=dataset, **overrides)
    return model
