"""ResNet-18, CIFAR variant: 3×3 stem, no max-pool, four stages of two basic blocks."""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from lowrank.models.common import activation_fn, batch_norm

# PyTorch's padding=1 on both sides. Flax's "SAME" pads (0, 1) for stride 2 on even
# inputs, which shifts every strided window by one pixel relative to the reference.
_PAD1 = ((1, 1), (1, 1))


class BasicBlock(nn.Module):
    """``σ(bn2(conv2(σ(bn1(conv1(x))))) + shortcut(x))``; the shortcut is a strided 1×1
    convolution with BatchNorm where the shape changes, the identity otherwise."""

    features: int
    strides: int
    act: Callable[[jax.Array], jax.Array]
    bn_momentum: float = 0.9

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        s = (self.strides, self.strides)
        # No conv bias: BatchNorm follows each convolution and would cancel it.
        y = nn.Conv(self.features, (3, 3), s, padding=_PAD1, use_bias=False, name="conv1")(x)
        y = self.act(batch_norm(train, self.bn_momentum, "bn1")(y))
        y = nn.Conv(self.features, (3, 3), padding=_PAD1, use_bias=False, name="conv2")(y)
        y = batch_norm(train, self.bn_momentum, "bn2")(y)
        shortcut = x
        if self.strides != 1 or x.shape[-1] != self.features:
            shortcut = nn.Conv(
                self.features, (1, 1), s, padding="VALID", use_bias=False, name="shortcut_conv"
            )(x)
            shortcut = batch_norm(train, self.bn_momentum, "shortcut_bn")(shortcut)
        return self.act(y + shortcut)


class ResNet18(nn.Module):
    """ResNet-18 for 32×32 images (He et al. 2016, CIFAR variant as in the authors' code).

    At width 64, 3 input channels and 10 classes it has the published 11,173,962
    parameters. Parameter paths: ``stem_conv/kernel``, ``layer{s}_{b}/conv1/kernel``,
    ``layer{s}_{b}/conv2/kernel`` (s = 1..4, b = 0, 1), ``layer{s}_0/shortcut_conv/kernel``
    (s = 2, 3, 4), ``classifier/kernel``; BatchNorms ``stem_bn``, ``bn1``, ``bn2``,
    ``shortcut_bn``.

    Attributes:
      num_classes: number of logits.
      width: channels of the first stage; the stages have width·(1, 2, 4, 8).
      activation: ``"relu"`` or ``"leaky_relu"``.
      leaky_slope: negative slope of the leaky ReLU.
      use_bias: whether the classifier has a bias (convolutions never do: BatchNorm
        follows each one).
      bn_momentum: running-average momentum in Flax's convention (0.9 = PyTorch's 0.1).
    """

    num_classes: int
    width: int = 64
    activation: str = "relu"
    leaky_slope: float = 0.01
    use_bias: bool = True
    bn_momentum: float = 0.9

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        """Logits ``(B, num_classes)`` of images ``(B, H, W, C)``."""
        act = activation_fn(self.activation, self.leaky_slope)
        x = nn.Conv(self.width, (3, 3), padding=_PAD1, use_bias=False, name="stem_conv")(x)
        x = act(batch_norm(train, self.bn_momentum, "stem_bn")(x))
        for stage, mult in enumerate((1, 2, 4, 8), start=1):
            for b in range(2):
                strides = 2 if (stage > 1 and b == 0) else 1
                x = BasicBlock(
                    self.width * mult, strides, act, self.bn_momentum, name=f"layer{stage}_{b}"
                )(x, train)
        # Global average pooling: PyTorch's avg_pool2d(·, 4) on the final 4×4 map.
        x = jnp.mean(x, axis=(1, 2))
        return nn.Dense(self.num_classes, use_bias=self.use_bias, name="classifier")(x)
