"""Network in Network and its maxout, batch-normalized variants, as ``nn`` modules.

All three families share one skeleton, three *mlpconv* blocks and global
average pooling (Lin, Chen & Yan, "Network In Network", arXiv:1312.4400):

    block 1   spatial conv 5x5 (pad 2) -> 1x1 conv -> 1x1 conv -> pool 3x3/2 -> dropout
    block 2   spatial conv 5x5 (pad 2) -> 1x1 conv -> 1x1 conv -> pool 3x3/2 -> dropout
    block 3   spatial conv 3x3 (pad 1) -> 1x1 conv -> 1x1 conv (one map per class)
              -> global average pooling -> logits (N, classes)

The pools use Caffe's ``ceil_mode`` rounding, so 32 -> 16 -> 8 (28 -> 14 -> 7).
:class:`NIN` (ReLU units), :class:`MIM` (Liao & Carneiro's maxout network in
maxout network, arXiv:1508.00330) and :class:`MIN` (Chang & Chen's
batch-normalized maxout network in network, arXiv:1511.02583) differ in the
units after each convolution and in the pooling kind; ``docs/models.md`` says
which detail comes from which paper and which ones minidl had to infer.

The layers are built with the ``nn`` defaults; ``minidl.models.create`` then
draws the weights with the scheme of the model's source
(``minidl.models.initialization``).  A convolution followed by batch norm has
no bias: BN subtracts the channel mean, which cancels a bias exactly (Ioffe &
Szegedy, 2015).
"""
from ..nn.layers import (AvgPool2d, BatchNorm2d, Conv2d, Dropout, GlobalAvgPool2d, MaxPool2d,
                         Maxout, ReLU, Sequential)
from ..nn.module import Module

__all__ = ["NIN", "MIM", "MIN"]

SPATIAL_KERNELS = (5, 5, 3)    # the first convolution of blocks 1, 2 and 3


class _MLPConvNet(Module):
    """The shared skeleton.  Subclasses set their options, then call :meth:`_build`.

    Subclasses define ``_spatial(in_channels, width, kernel)`` and
    ``_pointwise(in_channels, units)``, each returning the list of layers of
    one convolution and what follows it.  ``widths`` is
    ``((s1, a1, b1), (s2, a2, b2), (s3, a3))``: per block the spatial
    convolution's output channels and the units of the 1x1 layers; the last
    1x1 layer of block 3 has ``num_classes`` units.
    """

    pools = (MaxPool2d, AvgPool2d)     # after blocks 1 and 2
    nonlinearity = "relu"     # the unit after the convolutions, for the Kaiming gain

    def _build(self, widths, in_channels, num_classes, dropout):
        channels = in_channels
        for index, (kernel, units) in enumerate(zip(SPATIAL_KERNELS, widths)):
            spatial, *pointwise = units if index < 2 else (*units, num_classes)
            layers = self._spatial(channels, spatial, kernel)
            channels = spatial
            for width in pointwise:
                layers += self._pointwise(channels, width)
                channels = width
            if index < 2:
                layers.append(self.pools[index](3, stride=2, ceil_mode=True))
                if dropout:
                    layers.append(Dropout(dropout))
            else:
                layers.append(GlobalAvgPool2d())
            setattr(self, f"block{index + 1}", Sequential(*layers))

    def _conv_bn(self, in_channels, out_channels, kernel):
        """A convolution keeping the spatial size, then batch norm if ``self.batch_norm``."""
        layers = [Conv2d(in_channels, out_channels, kernel, padding=kernel // 2,
                         bias=not self.batch_norm)]
        if self.batch_norm:
            layers.append(BatchNorm2d(out_channels))
        return layers

    def forward(self, x):
        return self.block3(self.block2(self.block1(x)))


class NIN(_MLPConvNet):
    """Network in Network (Lin, Chen & Yan, 2013), optionally with batch norm before every ReLU.

    Every convolution is followed by [BatchNorm2d] and ReLU.  The layer table
    for CIFAR-10 (widths ``((192, 160, 96), (192, 192, 192), (192, 192))``,
    output shapes for a (N, 3, 32, 32) input)::

        block1  Conv2d 3->192 5x5 pad 2   [BN] ReLU   (N, 192, 32, 32)
                Conv2d 192->160 1x1       [BN] ReLU   (N, 160, 32, 32)
                Conv2d 160->96 1x1        [BN] ReLU   (N, 96, 32, 32)
                MaxPool2d 3x3/2 ceil                  (N, 96, 16, 16)
                Dropout 0.5
        block2  Conv2d 96->192 5x5 pad 2  [BN] ReLU   (N, 192, 16, 16)
                Conv2d 192->192 1x1       [BN] ReLU
                Conv2d 192->192 1x1       [BN] ReLU
                AvgPool2d 3x3/2 ceil                  (N, 192, 8, 8)
                Dropout 0.5
        block3  Conv2d 192->192 3x3 pad 1 [BN] ReLU   (N, 192, 8, 8)
                Conv2d 192->192 1x1       [BN] ReLU
                Conv2d 192->10 1x1        [BN] ReLU   (N, 10, 8, 8)
                GlobalAvgPool2d                       (N, 10) logits

    The first pool is max pooling and the second average pooling, as in the
    authors' released Caffe model for CIFAR-10, whose Gaussian
    initialization ``create`` draws for the full-size NIN models (``nin-small``
    takes He et al.'s: see ``docs/models.md``).  ``batch_norm=True`` gives
    the "NIN + BN" baseline of Liao & Carneiro (arXiv:1508.00330); the
    convolutions then have no bias.  ``dropout=0`` leaves the dropout layers out.
    """

    def __init__(self, widths, in_channels, num_classes, batch_norm=False, dropout=0.5):
        super().__init__()
        self.batch_norm = batch_norm
        self._build(widths, in_channels, num_classes, dropout)

    def _spatial(self, in_channels, width, kernel):
        return self._conv_bn(in_channels, width, kernel) + [ReLU()]

    def _pointwise(self, in_channels, width):
        return self._spatial(in_channels, width, 1)

    def extra_repr(self):
        return f"batch_norm={self.batch_norm}"


class MIM(_MLPConvNet):
    """Maxout network in maxout network (Liao & Carneiro, arXiv:1508.00330): BN before every maxout.

    NIN in which *every* convolution, the spatial ones and the 1x1 mlpconv
    layers alike, computes ``units * pieces`` channels, batch-normalizes them
    and takes a maxout over groups of ``pieces`` consecutive channels: a
    maxout unit with BN in front, so that each unit's pieces win on balanced
    shares of the inputs (the point of the paper).  The last layer of block 3
    thus normalizes ``classes * pieces`` maps and takes them to one map per
    class, which global average pooling turns into logits.  The layer table
    for CIFAR-10 with ``pieces=2`` (output shapes for a (N, 3, 32, 32) input)::

        block1  Conv2d 3->384 5x5 pad 2   [BN] Maxout 2   (N, 192, 32, 32)
                Conv2d 192->320 1x1       [BN] Maxout 2   (N, 160, 32, 32)
                Conv2d 160->192 1x1       [BN] Maxout 2   (N, 96, 32, 32)
                MaxPool2d 3x3/2 ceil                      (N, 96, 16, 16)
                Dropout 0.5
        block2  Conv2d 96->384 5x5 pad 2  [BN] Maxout 2   (N, 192, 16, 16)
                Conv2d 192->384 1x1       [BN] Maxout 2
                Conv2d 192->384 1x1       [BN] Maxout 2
                MaxPool2d 3x3/2 ceil                      (N, 192, 8, 8)
                Dropout 0.5
        block3  Conv2d 192->384 3x3 pad 1 [BN] Maxout 2   (N, 192, 8, 8)
                Conv2d 192->384 1x1       [BN] Maxout 2
                Conv2d 192->20 1x1        [BN] Maxout 2   (N, 10, 8, 8)
                GlobalAvgPool2d                           (N, 10) logits

    Inferred, not confirmed from a source (no code of the authors was found):
    the widths are NIN's read as maxout units; ``pieces`` defaults to 2, the
    smallest maxout, whose two linear regions are what the paper's region
    statistics count (as ReLU's two), and which keeps MIM the same size class
    as NIN; the pools are max pooling, as the NIN paper describes its
    mlpconv blocks; dropout 0.5 after blocks 1 and 2, as in NIN; He et al.'s
    initialization with gain 1, which ``create`` draws for it.
    ``batch_norm=False`` drops every BN: the "maxout NIN" control (the
    convolutions then keep their bias).  ``dropout=0`` leaves dropout out.
    """

    pools = (MaxPool2d, MaxPool2d)
    nonlinearity = "linear"     # maxout of symmetric pieces keeps the second moment

    def __init__(self, widths, in_channels, num_classes, pieces=2, batch_norm=True, dropout=0.5):
        super().__init__()
        self.pieces, self.batch_norm = pieces, batch_norm
        self._build(widths, in_channels, num_classes, dropout)

    def _spatial(self, in_channels, units, kernel):
        return self._conv_bn(in_channels, units * self.pieces, kernel) + [Maxout(self.pieces)]

    def _pointwise(self, in_channels, units):
        return self._spatial(in_channels, units, 1)

    def extra_repr(self):
        return f"pieces={self.pieces}, batch_norm={self.batch_norm}"


class MIN(_MLPConvNet):
    """Batch-normalized Maxout Network in Network (Chang & Chen, arXiv:1511.02583).

    NIN whose 1x1 layers are maxout units with batch norm in front, in the
    configuration of Chang & Chen's paper and released MatConvNet code.  Each
    1x1 layer of ``u`` units computes ``u * pieces`` channels, normalizes them
    and takes the max over groups of ``pieces`` consecutive channels.  The
    spatial convolution is followed by batch norm only: Chang & Chen's code
    gives it one maxout piece, which is no activation at all.  All pooling is
    average pooling (Chang & Chen).  The layer table for CIFAR-10 with
    ``pieces=5`` (output shapes for a (N, 3, 32, 32) input)::

        block1  Conv2d 3->192 5x5 pad 2   [BN]            (N, 192, 32, 32)
                Conv2d 192->800 1x1       [BN] Maxout 5   (N, 160, 32, 32)
                Conv2d 160->480 1x1       [BN] Maxout 5   (N, 96, 32, 32)
                AvgPool2d 3x3/2 ceil                      (N, 96, 16, 16)
                Dropout 0.5
        block2  Conv2d 96->192 5x5 pad 2  [BN]            (N, 192, 16, 16)
                Conv2d 192->960 1x1       [BN] Maxout 5   (N, 192, 16, 16)
                Conv2d 192->960 1x1       [BN] Maxout 5
                AvgPool2d 3x3/2 ceil                      (N, 192, 8, 8)
                Dropout 0.5
        block3  Conv2d 192->192 3x3 pad 1 [BN]            (N, 192, 8, 8)
                Conv2d 192->960 1x1       [BN] Maxout 5
                Conv2d 192->50 1x1        [BN] Maxout 5   (N, 10, 8, 8)
                GlobalAvgPool2d                           (N, 10) logits

    ``create`` initializes it orthogonally, as their code does; their
    per-layer learning-rate multipliers are not reproduced.
    ``batch_norm=False`` drops every BN (the convolutions then keep their
    bias).  ``dropout=0`` leaves dropout out.
    """

    pools = (AvgPool2d, AvgPool2d)
    nonlinearity = "linear"

    def __init__(self, widths, in_channels, num_classes, pieces=5, batch_norm=True, dropout=0.5):
        super().__init__()
        self.pieces, self.batch_norm = pieces, batch_norm
        self._build(widths, in_channels, num_classes, dropout)

    def _spatial(self, in_channels, width, kernel):
        return self._conv_bn(in_channels, width, kernel)

    def _pointwise(self, in_channels, units):
        return self._conv_bn(in_channels, units * self.pieces, 1) + [Maxout(self.pieces)]

    def extra_repr(self):
        return f"pieces={self.pieces}, batch_norm={self.batch_norm}"
