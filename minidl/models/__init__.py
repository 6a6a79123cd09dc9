"""NIN, MIM and MIN models configured per data set: ``create("mim", "cifar10")``.

``available()`` lists the model names with a one-line description;
``docs/models.md`` gives the layer tables, parameter counts, initializations
and credits.  ``initialization`` holds the weight schemes of the sources.
"""
from . import initialization
from .nin import MIM, MIN, NIN
from .zoo import available, check_overrides, create, default_init, list_models

__all__ = ["create", "available", "list_models", "check_overrides", "default_init",
           "initialization", "NIN", "MIM", "MIN"]
