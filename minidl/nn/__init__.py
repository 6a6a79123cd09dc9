"""Neural-network building blocks: ``Module``, ``Parameter``, layers and ``init``.

``import minidl.nn as nn`` gives PyTorch's names: ``nn.Sequential(nn.Conv2d(3, 16, 3),
nn.BatchNorm2d(16), nn.ReLU())``, ``nn.init.kaiming_normal_(layer.weight)``,
``nn.utils.clip_grad_norm_(model.parameters(), 1.0)``.
"""
from . import init, utils
from .containers import Identity, ModuleDict, ModuleList
from .layers import (AvgPool2d, BatchNorm1d, BatchNorm2d, Conv2d, Dropout, Flatten,
                     GlobalAvgPool2d, Linear, MaxPool2d, Maxout, ReLU, Sequential)
from .loss import CrossEntropyLoss, MSELoss, NLLLoss
from .module import Module, Parameter, RemovableHandle
from .sync_batchnorm import SyncBatchNorm

__all__ = ["Module", "Parameter", "RemovableHandle", "init", "utils", "Sequential",
           "ModuleList", "ModuleDict", "Identity", "Linear", "Conv2d",
           "BatchNorm1d", "BatchNorm2d", "Maxout", "ReLU", "MaxPool2d", "AvgPool2d",
           "GlobalAvgPool2d", "Dropout", "Flatten", "CrossEntropyLoss", "NLLLoss", "MSELoss",
           "SyncBatchNorm"]
