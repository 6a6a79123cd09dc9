"""Models to PyTorch and back: ``to_torch(model)`` and ``from_torch(module_or_state_dict)``.

    torch_model = minidl.interop.to_torch(model)      # an equivalent torch.nn model
    model = minidl.interop.from_torch(torch_model)    # and back
    minidl.interop.from_torch(torch_model.state_dict(), model)   # weights only

A model built from the standard layers (Linear, Conv2d, BatchNorm1d/2d, ReLU,
MaxPool2d, AvgPool2d, Dropout, Flatten, Identity, GlobalAvgPool2d, Maxout)
inside Sequential containers is mapped layer by layer.  Any other container
(every zoo model of :mod:`minidl.models`) is exported as a ``torch.nn.Sequential``
of its children, under their names: right when its ``forward`` applies the
children in registration order, as every zoo model does.  The state-dict keys
are the same on both sides (``block1.0.weight``), so weights, batch-norm
statistics and the train/eval mode carry over exactly.  ``Maxout`` and
``GlobalAvgPool2d`` have no torch layer; they become the small torch modules
:func:`torch_layers` defines.

PyTorch is imported only when these functions run; minidl never needs it
otherwise (``pip install "minidl[interop]"`` or ``pip install torch``).
"""
import collections
import functools

import numpy

from . import nn

__all__ = ["to_torch", "from_torch", "torch_layers"]


def _torch():
    try:
        import torch
    except ImportError:
        raise ImportError('minidl.interop needs PyTorch, which is not installed: pip install '
                          '"minidl[interop]" (or pip install torch)') from None
    return torch


@functools.cache
def torch_layers():
    """The torch modules standing in for minidl layers torch lacks: ``(Maxout, GlobalAvgPool2d)``.

    Defined on first use, so that importing minidl never imports torch.
    """
    torch = _torch()

    class Maxout(torch.nn.Module):
        """Channel j = max of channels [j*pieces, (j+1)*pieces) along ``axis`` (minidl's Maxout)."""

        def __init__(self, pieces, axis=1):
            super().__init__()
            self.pieces, self.axis = pieces, axis

        def forward(self, x):
            axis = self.axis % x.dim()
            groups = x.shape[:axis] + (x.shape[axis] // self.pieces, self.pieces)
            return x.reshape(groups + x.shape[axis + 1:]).amax(axis + 1)

        def extra_repr(self):
            return f"pieces={self.pieces}, axis={self.axis}"

    class GlobalAvgPool2d(torch.nn.Module):
        """Mean over H and W: (N, C, H, W) -> (N, C) or (C, H, W) -> (C,), as minidl's layer."""

        def forward(self, x):
            return x.mean(dim=(-2, -1))

    return Maxout, GlobalAvgPool2d


def _layers(torch):
    """(minidl class, torch class, minidl -> torch, (torch, dtype) -> minidl) per layer."""
    t = torch.nn
    Maxout, GlobalAvgPool2d = torch_layers()

    def batch_norm(cls):
        def options(m):
            return dict(eps=m.eps, momentum=m.momentum, affine=m.affine,
                        track_running_stats=m.track_running_stats, bias=m.bias is not None)
        return (lambda m: cls(m.num_features, **options(m)),
                lambda m, dtype: getattr(nn, cls.__name__)(m.num_features, dtype=dtype,
                                                           **options(m)))

    return [
        (nn.Linear, t.Linear,
         lambda m: t.Linear(m.in_features, m.out_features, bias=m.bias is not None),
         lambda m, dtype: nn.Linear(m.in_features, m.out_features, bias=m.bias is not None,
                                    dtype=dtype)),
        (nn.Conv2d, t.Conv2d,
         lambda m: t.Conv2d(m.in_channels, m.out_channels, m.kernel_size, stride=m.stride,
                            padding=m.padding, dilation=m.dilation, groups=m.groups,
                            bias=m.bias is not None),
         lambda m, dtype: nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size,
                                    stride=m.stride, padding=m.padding, dilation=m.dilation,
                                    groups=m.groups, bias=m.bias is not None, dtype=dtype)),
        (nn.BatchNorm1d, t.BatchNorm1d, *batch_norm(t.BatchNorm1d)),
        (nn.BatchNorm2d, t.BatchNorm2d, *batch_norm(t.BatchNorm2d)),
        (nn.MaxPool2d, t.MaxPool2d,
         lambda m: t.MaxPool2d(m.kernel_size, m.stride, m.padding, m.dilation, m.return_indices,
                               m.ceil_mode),
         lambda m, dtype: nn.MaxPool2d(m.kernel_size, m.stride, m.padding, m.dilation,
                                       m.return_indices, m.ceil_mode)),
        (nn.AvgPool2d, t.AvgPool2d,
         lambda m: t.AvgPool2d(m.kernel_size, m.stride, m.padding, m.ceil_mode,
                               m.count_include_pad, m.divisor_override),
         lambda m, dtype: nn.AvgPool2d(m.kernel_size, m.stride, m.padding, m.ceil_mode,
                                       m.count_include_pad, m.divisor_override)),
        (nn.ReLU, t.ReLU, lambda m: t.ReLU(), lambda m, dtype: nn.ReLU()),
        (nn.Dropout, t.Dropout, lambda m: t.Dropout(m.p), lambda m, dtype: nn.Dropout(m.p)),
        (nn.Flatten, t.Flatten, lambda m: t.Flatten(m.start_dim),
         lambda m, dtype: nn.Flatten(m.start_dim)),
        (nn.Identity, t.Identity, lambda m: t.Identity(), lambda m, dtype: nn.Identity()),
        (nn.Maxout, Maxout, lambda m: Maxout(m.pieces, m.axis),
         lambda m, dtype: nn.Maxout(m.pieces, m.axis)),
        (nn.GlobalAvgPool2d, GlobalAvgPool2d, lambda m: GlobalAvgPool2d(),
         lambda m, dtype: nn.GlobalAvgPool2d()),
    ]


# Settings of torch layers that minidl's layers do not have: (attribute, the value minidl means).
_TORCH_DEFAULTS = {
    "Conv2d": {"padding_mode": "zeros"},
    "Flatten": {"end_dim": -1},
}


def to_torch(model):
    """An equivalent ``torch.nn`` module of ``model``, with copies of its weights and buffers.

    Parameters and floating buffers keep their dtype (a float64 model gives a
    float64 torch model) and go to the CPU; the train/eval mode is copied.
    """
    torch = _torch()
    table = _layers(torch)

    def convert(module):
        for ours, _, export, _ in table:
            if type(module) is ours:
                return export(module)
        if module._parameters or module._buffers:
            raise TypeError(f"to_torch: no torch layer for {type(module).__name__}, which holds "
                            f"parameters or buffers of its own")
        if not module._modules:
            raise TypeError(f"to_torch: no torch layer for {type(module).__name__}")
        return torch.nn.Sequential(collections.OrderedDict(
            (name, convert(child)) for name, child in module.named_children()))

    result = convert(model)
    state = model.state_dict()
    floating = [v.dtype for v in state.values() if v.dtype.kind == "f"]
    if floating:
        result.to(getattr(torch, str(floating[0])))
    result.load_state_dict({k: torch.from_numpy(numpy.ascontiguousarray(v))
                            for k, v in state.items()})
    return result.train(model.training)


def from_torch(source, model=None):
    """A minidl model from a torch module, or ``model`` loaded from a torch module or state dict.

    ``source`` is a ``torch.nn.Module`` built from the layers :func:`to_torch`
    produces (a new minidl model of the same structure and dtype is made, on
    the default device, in the same train/eval mode), or a state dict of
    torch tensors, which needs ``model`` to load into.  With ``model`` given
    the weights are copied into it (cast to its dtype) and it is returned.
    """
    torch = _torch()
    if isinstance(source, torch.nn.Module):
        state = source.state_dict()
        if model is None:
            model = _from_torch_module(source, torch)
        model.train(source.training)
    elif model is None:
        raise TypeError("from_torch: a state dict needs the model to load into: "
                        "from_torch(state_dict, model)")
    else:
        state = source
    model.load_state_dict({k: v.detach().cpu().numpy() for k, v in state.items()})
    return model


def _from_torch_module(module, torch):
    """A new minidl module of ``module``'s structure and floating dtype (weights not copied)."""
    table = _layers(torch)
    floating = [p.dtype for p in module.parameters() if p.dtype.is_floating_point]
    dtype = str(floating[0]).replace("torch.", "") if floating else "float32"

    def convert(m):
        name = type(m).__name__
        for _, theirs, _, make in table:
            if type(m) is theirs:
                for attribute, value in _TORCH_DEFAULTS.get(name, {}).items():
                    if getattr(m, attribute) != value:
                        raise ValueError(f"from_torch: {name} with {attribute}="
                                         f"{getattr(m, attribute)!r} has no minidl equivalent "
                                         f"(minidl's {name} means {attribute}={value!r})")
                return make(m, dtype)
        if not isinstance(m, torch.nn.Sequential):
            raise TypeError(f"from_torch: no minidl layer for torch's {name}")
        sequence = nn.Sequential()
        for child_name, child in m.named_children():
            setattr(sequence, child_name, convert(child))
        return sequence

    return convert(module)
