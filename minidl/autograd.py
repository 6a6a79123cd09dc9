"""Reverse-mode automatic differentiation: ``Tensor``, ``Function``, ``no_grad``.

A :class:`Tensor` holds a backend array (``.data``) and, after ``backward()``,
the gradient of a scalar with respect to it (``.grad``).  Every operation is a
:class:`Function` subclass with a hand-written ``forward`` and ``backward`` on
backend arrays.  ``Function.apply`` runs ``forward`` and, when some input
requires a gradient, records the function as the *creator* of its output.  The
recorded creators form a directed acyclic graph; ``Tensor.backward`` visits it
once in reverse topological order, calling each ``backward`` with the gradient
of its output and handing the returned input gradients on.

The operators of ``Tensor`` (``+``, ``@``, ``.sum()``, indexing, ...) are the
functions of :mod:`minidl.functional`, attached to the class when that package
is imported (as ``import minidl`` does).  See ``docs/autograd.md``.
"""
import contextlib
import itertools

import numpy

from . import backend

__all__ = ["Tensor", "Function", "tensor", "as_array", "no_grad", "is_grad_enabled",
           "sum_to_shape", "RemovableHandle"]

_grad_enabled = True


def is_grad_enabled():
    """False inside ``no_grad()``: operations then record no graph."""
    return _grad_enabled


@contextlib.contextmanager
def no_grad():
    """Context (or decorator) in which operations record no graph: for evaluation."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = previous


def sum_to_shape(grad, shape, op_name="op"):
    """Sum ``grad`` over the axes that broadcasting expanded, giving ``shape``.

    Broadcasting copies an operand along new leading axes and along its size-1
    axes, so the operand's gradient is the sum of the output gradient over them.
    """
    shape = tuple(shape)
    if grad.shape == shape:
        return grad
    original, lead = grad.shape, grad.ndim - len(shape)
    if lead > 0:
        grad = grad.sum(axis=tuple(range(lead)))
    if lead >= 0:
        stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
        if stretched:
            grad = grad.sum(axis=stretched, keepdims=True)
    if grad.shape != shape:
        raise ValueError(f"{op_name}: backward returned a gradient of shape {original} "
                         f"for an input of shape {shape}")
    return grad


def as_array(data, dtype=None):
    """The backend array behind ``data``: a Tensor's ``.data``, an ndarray itself, or new.

    ``data`` is a Tensor, a NumPy or CuPy array, or Python numbers / nested
    lists.  Nothing is copied unless a conversion is needed, and the device
    is kept.  An ndarray keeps its dtype; Python floats become float32 and
    Python ints int64 (``torch.tensor``'s rule); an explicit ``dtype`` wins.
    Used by :func:`tensor`, ``backward(grad)`` and ``nn.Parameter``.
    """
    if isinstance(data, Tensor):
        array = data.data
    elif isinstance(data, (numpy.ndarray, numpy.generic)) or backend.device_of(data).type == "cuda":
        array = data
    else:
        array = numpy.asarray(data)
        if array.dtype == numpy.float64:
            array = array.astype(numpy.float32)
        elif array.dtype.kind in "iu":
            array = array.astype(numpy.int64)
    if dtype is not None and array.dtype != numpy.dtype(dtype):
        array = array.astype(dtype)
    return array


class RemovableHandle:
    """Returned when a hook is registered; ``remove()`` unregisters the hook."""

    _ids = itertools.count()

    def __init__(self, hooks):
        self._hooks = hooks
        self.id = next(self._ids)

    def remove(self):
        self._hooks.pop(self.id, None)


class Tensor:
    """An n-dimensional array that remembers how it was computed.

    Create tensors with :func:`minidl.tensor`.  ``data`` is the backend array;
    ``grad`` is ``None`` until ``backward()`` reaches this tensor.  Gradients
    are kept for leaf tensors (those no recorded op created) that require them;
    a second ``backward()`` adds to ``grad``, as in PyTorch, until
    ``zero_grad()`` or ``grad = None`` resets it.
    """

    __array_ufunc__ = None     # make NumPy defer to our reflected operators (ndarray * Tensor)
    _grad_hooks = None         # {handle id: hook} once register_post_accumulate_grad_hook is used
    _node = None               # this computed tensor's _GraphNode, once an op has used it

    def __init__(self, data, requires_grad=False):
        self.data = data
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self.creator = None    # the Function whose output this is, None for a leaf

    # -------------------------------------------------------------- properties
    shape = property(lambda self: self.data.shape)
    dtype = property(lambda self: self.data.dtype)
    ndim = property(lambda self: self.data.ndim)
    device = property(lambda self: backend.device_of(self.data))
    is_leaf = property(lambda self: self.creator is None)

    def size(self, dim=None):
        """The shape (a tuple, PyTorch's ``x.size()``), or the length of axis ``dim``.

        The element count is :meth:`numel` (NumPy's ``size`` attribute is not a
        method; here ``size`` has PyTorch's meaning).
        """
        return self.shape if dim is None else self.shape[dim]

    def dim(self):
        """The number of axes, ``ndim``."""
        return self.data.ndim

    def numel(self):
        """The number of elements."""
        return int(self.data.size)

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        body = numpy.array2string(self.numpy(), separator=", ", prefix="tensor(")
        extra = "" if self.device == "cpu" else f", device='{self.device}'"
        extra += f", dtype={self.dtype}"
        if self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    # -------------------------------------------------------------- conversions
    def numpy(self):
        """The data as a host ``numpy.ndarray`` (a copy when on a GPU)."""
        return backend.to_numpy(self.data)

    def item(self):
        """The value of a one-element tensor as a Python number."""
        if self.numel() != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.numpy().reshape(()).item()

    def tolist(self):
        return self.numpy().tolist()

    def detach(self):
        """A new leaf tensor sharing this data, cut from the graph."""
        return Tensor(self.data)

    def register_post_accumulate_grad_hook(self, hook):
        """Call ``hook(tensor)`` each time ``backward()`` has accumulated into this leaf's ``.grad``.

        PyTorch's meaning: the hook runs once per ``backward()`` that reaches
        the tensor, after its ``.grad`` holds the new sum, while backward goes on
        with the rest of the graph (``minidl.distributed.DataParallel`` starts
        its gradient all-reduces there).  Returns a handle; ``remove()`` unregisters it.
        """
        if not self.is_leaf:
            raise RuntimeError("register_post_accumulate_grad_hook: only leaf tensors "
                               "accumulate a .grad; this tensor was computed by an op")
        if self._grad_hooks is None:
            self._grad_hooks = {}
        handle = RemovableHandle(self._grad_hooks)
        self._grad_hooks[handle.id] = hook
        return handle

    def requires_grad_(self, flag=True):
        if not self.is_leaf:
            raise RuntimeError("requires_grad_ can only change leaf tensors; use detach() first")
        self.requires_grad = bool(flag)
        return self

    def zero_grad(self, set_to_none=True):
        """Forget the gradient: ``grad = None``, or zeros in place with ``set_to_none=False``."""
        if set_to_none or self.grad is None:
            self.grad = None
        else:
            self.grad[...] = 0

    # -------------------------------------------------------------- backward
    def backward(self, grad=None, retain_graph=False):
        """Compute the gradient of this tensor with respect to every leaf that needs one.

        ``grad`` is d(final scalar)/d(self), shaped like ``self``; a one-element
        tensor needs none (it is taken as 1).  The graph is walked once, in
        reverse topological order, iteratively (deep graphs cannot overflow the
        stack), and freed afterwards unless ``retain_graph`` is true.
        """
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad: no input "
                               "of the computation had requires_grad=True")
        if grad is None:
            if self.numel() != 1:
                raise RuntimeError(f"backward() without a gradient needs a scalar (one-element) "
                                   f"tensor, but this tensor has shape {self.shape}; pass "
                                   f"grad= with that shape")
            xp = backend.get_array_module(self.data)
            with backend.device_context(self.data):
                grad = xp.ones(self.shape, dtype=self.dtype)
        else:
            grad = as_array(grad)
            if grad.shape != self.shape:
                raise ValueError(f"backward(): grad has shape {grad.shape} but the tensor has "
                                 f"shape {self.shape}")
            if backend.device_of(grad) != self.device:
                raise ValueError(f"backward(): grad is on {backend.device_of(grad)} but the "
                                 f"tensor is on {self.device}")
            grad = grad.astype(self.dtype, copy=False)
        _run_backward(self, grad, retain_graph)


class _GraphNode:
    """What the graph keeps of a computed (non-leaf) tensor: its creator and shape, not its data.

    A function that consumes a computed tensor records this stand-in rather
    than the tensor, so an activation lives only as long as the user's
    variables or some function's saved values hold it: most functions save
    something smaller (a mask, the statistics) or nothing, and holding every
    intermediate array until backward reached it once cost about half of a
    training step's peak memory.  Leaves stay in the graph as themselves,
    since backward accumulates into their ``.grad``.
    """

    __slots__ = ("creator", "shape")
    requires_grad = True

    def __init__(self, tensor):
        self.creator, self.shape = tensor.creator, tensor.shape


def _graph_input(tensor):
    """The object a consuming function records for ``tensor``: a leaf itself, else its node."""
    if tensor.creator is None:
        return tensor
    if tensor._node is None:
        tensor._node = _GraphNode(tensor)
    return tensor._node


def _topological_order(root):
    """Graph nodes reachable from ``root`` through creators, each after all its consumers.

    An explicit stack replaces recursion; each node is expanded once, so the
    cost is linear in the size of the graph.
    """
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        if node.creator is not None:
            for parent in node.creator.inputs or ():
                if parent.requires_grad and id(parent) not in visited:
                    stack.append((parent, False))
    order.reverse()    # now every tensor comes before the tensors it was computed from
    return order


def _run_backward(root, grad, retain_graph):
    pending = {id(root): grad}     # gradients of non-leaf tensors not yet propagated
    for node in _topological_order(root):
        grad = pending.pop(id(node), None)
        if grad is None:
            continue
        fn = node.creator
        if fn is None:                                   # a leaf: accumulate into .grad
            if node.grad is None:
                node.grad = grad.astype(node.dtype, order="C", copy=True)
            else:
                node.grad += grad
            for hook in list((node._grad_hooks or {}).values()):
                hook(node)
            continue
        if fn.inputs is None:
            raise RuntimeError(f"backward through {type(fn).__name__} a second time: the graph "
                               f"was freed by the first backward(); pass retain_graph=True to it")
        with backend.device_context(grad):
            input_grads = fn.backward(grad)
        if not isinstance(input_grads, tuple):
            input_grads = (input_grads,)
        if len(input_grads) != len(fn.inputs):
            raise ValueError(f"{type(fn).__name__}.backward returned {len(input_grads)} "
                             f"gradient(s) for {len(fn.inputs)} tensor input(s)")
        for parent, parent_grad in zip(fn.inputs, input_grads):
            if parent_grad is None or not parent.requires_grad:
                continue
            parent_grad = sum_to_shape(parent_grad, parent.shape, type(fn).__name__)
            key = id(parent)
            pending[key] = parent_grad if key not in pending else pending[key] + parent_grad
        if not retain_graph:
            fn.release()


class Function:
    """One differentiable operation: subclass it and write ``forward`` and ``backward``.

    ``forward(*args, **kwargs)`` receives backend arrays in place of the Tensor
    arguments (other arguments unchanged) and returns one array.
    ``backward(grad_output)`` returns the gradient for each *Tensor* argument,
    in order (one array, or a tuple; ``None`` where none is needed).  Save what
    backward needs as attributes of ``self``: the graph keeps no input data
    (``self.inputs`` holds leaves and ``_GraphNode`` stand-ins).
    ``self.needs_input_grad`` tells which Tensor arguments need a gradient, so
    forward can skip saving and backward can skip work; under :func:`no_grad`
    it is all False.  Do not modify ``grad_output`` in place: other functions
    may share it.  A gradient shaped like a broadcast of its input is summed
    back to the input's shape.

    Use it with ``MyFunction.apply(x, ...)``, which returns a Tensor.
    """

    inputs = None

    def forward(self, *args, **kwargs):
        raise NotImplementedError

    def backward(self, grad_output):
        raise NotImplementedError

    @classmethod
    def apply(cls, *args, **kwargs):
        """Run ``forward`` on the arguments' arrays; record the op when gradients are needed."""
        fn = cls()
        tensors = [a for a in args if isinstance(a, Tensor)]
        _check_compatible(cls.__name__, tensors)
        # Under no_grad nothing will call backward, so no op saves anything for it.
        fn.needs_input_grad = tuple(_grad_enabled and t.requires_grad for t in tensors)
        with backend.device_context(tensors[0].data if tensors else None):
            output = fn.forward(*(a.data if isinstance(a, Tensor) else a for a in args), **kwargs)
        if isinstance(output, numpy.generic):     # NumPy reductions return scalars, not arrays
            output = numpy.asarray(output)
        result = Tensor(output)
        if any(fn.needs_input_grad):
            fn.inputs = [_graph_input(t) for t in tensors]
            result.requires_grad = True
            result.creator = fn
        return result

    def release(self):
        """Drop the inputs and everything saved for backward (after a backward pass)."""
        self.__dict__.clear()
        self.inputs = None


def _check_compatible(op_name, tensors):
    """All tensor arguments must share one device and one floating dtype."""
    if len(tensors) < 2:
        return
    first = tensors[0]
    for other in tensors[1:]:
        if other.device != first.device:
            raise ValueError(f"{op_name}: tensors are on different devices, {first.device} and "
                             f"{other.device}; move one with .to()")
    floats = {t.dtype for t in tensors if t.dtype.kind == "f"}
    if len(floats) > 1:
        a, b = sorted(str(d) for d in floats)[:2]
        raise TypeError(f"{op_name}: tensors have different dtypes, {a} and {b}; convert one "
                        f"explicitly with .to(dtype=...) (minidl never promotes silently)")


def tensor(data, requires_grad=False, dtype=None, device=None):
    """Make a leaf :class:`Tensor` from a list, number, NumPy/CuPy array or Tensor.

    An ndarray keeps its dtype (float64 stays float64, as ``torch.tensor``);
    Python floats become float32 and Python ints int64.  ``device`` defaults to
    a GPU array's own device, else to the default device.  The data is
    copied, so the tensor never aliases the caller's array.
    """
    array = as_array(data, dtype)
    if device is None:
        on_gpu = backend.device_of(array).type == "cuda"
        device = backend.device_of(array) if on_gpu else backend.get_default_device()
    moved = backend.to_device(array, device)
    if moved is array:
        moved = array.copy()
    if requires_grad and moved.dtype.kind != "f":
        raise TypeError(f"only floating-point tensors can require gradients, got dtype {moved.dtype}")
    return Tensor(moved, requires_grad=requires_grad)
