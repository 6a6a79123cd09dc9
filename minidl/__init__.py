"""minidl: a small deep-learning framework with hand-written gradients, on NumPy or CuPy."""
__version__ = "0.2.0"   # first: recipes reads it while the package is still being imported

from . import backend
from .autograd import Function, Tensor, is_grad_enabled, no_grad, tensor
from . import functional
from .backend import manual_seed
from .creation import (arange, float32, float64, int64, ones, ones_like, randn, zeros,
                       zeros_like)
from .functional import cat, stack
from .gradcheck import GradcheckError, gradcheck
from . import data, nn, optim, models  # noqa: E402  (each needs the layers above)
from . import interop  # noqa: E402  (imports torch only when its functions run)
from .checkpoint import load, save  # noqa: E402
from .recipes import load_run  # noqa: E402  (inference: a trained run, ready to predict)

__all__ = ["Tensor", "Function", "tensor", "no_grad", "is_grad_enabled", "manual_seed",
           "zeros", "ones", "zeros_like", "ones_like", "randn", "arange", "float32", "float64",
           "int64", "cat", "stack",
           "save", "load", "gradcheck", "GradcheckError", "backend", "functional", "nn",
           "optim", "data", "models", "interop", "load_run", "__version__"]
