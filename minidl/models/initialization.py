"""Weight initialization schemes of the models' sources: ``initialize(model, "orthogonal")``.

Each scheme draws every convolution (and linear layer) of a model again, in
place, from the generators that ``minidl.manual_seed`` seeds; batch-norm
layers keep gamma = 1 and beta = 0 under every scheme.

* ``"default"``: PyTorch's layer default, ``reset_parameters()``: weight and
  bias uniform in +-1/sqrt(fan_in).
* ``"gaussian"``: the NIN Caffe model (Lin, Chen & Yan): weights
  N(0, 0.05^2), biases 0.  The CIFAR-10 prototxt of the authors' Caffe model
  gives every convolution (conv1-3, cccp1-6) ``std: 0.05``; we could not read
  the prototxt itself and took the value from re-implementations that port
  it layer by layer, which all use 0.05 for every layer.
* ``"orthogonal"``: Chang & Chen's MatConvNet code for MIN: the weight
  viewed as an (out, in * kh * kw) matrix is (semi-)orthogonal (gain 1),
  biases 0.
* ``"kaiming"``: He et al. (2015), N(0, gain^2 / fan_in) with fan_in =
  in * kh * kw, biases 0.  The gain keeps the second moment of the signal
  through the model's unit: sqrt(2) before a ReLU (which zeroes half of a
  symmetric input), 1 before a maxout of symmetric pieces (max(a, b)^2 and
  min(a, b)^2 have the same mean, so E[max(a, b)^2] = E[a^2]).
"""
from ..nn import init
from ..nn.layers import Conv2d, Linear

__all__ = ["SCHEMES", "GAUSSIAN_STD", "initialize"]

SCHEMES = ("default", "gaussian", "orthogonal", "kaiming")
GAUSSIAN_STD = 0.05     # every convolution of the NIN Caffe model for CIFAR-10


def initialize(model, scheme):
    """Draw the weights of every Conv2d and Linear of ``model`` with ``scheme``; returns ``model``.

    ``scheme``: one of :data:`SCHEMES`.  The Kaiming gain comes from the
    model's ``nonlinearity`` attribute ("relu" or "linear"; "relu" when it
    has none).
    """
    if scheme not in SCHEMES:
        raise ValueError(f"initialize: scheme must be one of {', '.join(SCHEMES)}, "
                         f"got {scheme!r}")
    nonlinearity = getattr(model, "nonlinearity", "relu")
    for layer in model.modules():
        if not isinstance(layer, (Conv2d, Linear)):
            continue
        if scheme == "default":
            layer.reset_parameters()
            continue
        if scheme == "gaussian":
            init.normal_(layer.weight, 0.0, GAUSSIAN_STD)
        elif scheme == "orthogonal":
            init.orthogonal_(layer.weight)
        else:
            init.kaiming_normal_(layer.weight, nonlinearity=nonlinearity)
        if layer.bias is not None:
            init.zeros_(layer.bias)
    return model
