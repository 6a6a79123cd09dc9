"""minidl: a small deep-learning framework with hand-written gradients, on NumPy or CuPy."""
__version__ = "0.1.0"   # first: recipes reads it while the package is still being imported

from . import backend
from .autograd import Function, Tensor, is_grad_enabled, no_grad, tensor
from . import functional
from .backend import manual_seed
from .gradcheck import GradcheckError, gradcheck
from . import data, nn, optim, models  # noqa: E402  (each needs the layers above)
from .recipes import load_run  # noqa: E402  (inference: a trained run, ready to predict)

__all__ = ["Tensor", "Function", "tensor", "no_grad", "is_grad_enabled", "manual_seed",
           "gradcheck", "GradcheckError", "backend", "functional", "nn", "optim", "data",
           "models", "load_run", "__version__"]
