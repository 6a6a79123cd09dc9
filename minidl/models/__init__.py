"""NIN and MIN models configured per data set: ``create("min", "cifar10")``.

``available()`` lists the model names with a one-line description;
``docs/models.md`` gives the layer tables, parameter counts and credits.
"""
from .nin import MIN, NIN
from .zoo import available, check_overrides, create, list_models

__all__ = ["create", "available", "list_models", "check_overrides", "NIN", "MIN"]
