"""VGG-16 with BatchNorm (no dropout) and a single Dense layer at the end."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from lowrank.models.common import activation_fn, batch_norm, layer_name

# Output channels of the 13 convolutions in units of the base width ("M" = 2×2 max-pool):
# 64-64-M-128-128-M-256-256-256-M-512-512-512-M-512-512-512-M at width 64.
VGG16_PLAN: tuple[int | str, ...] = (
    1, 1, "M", 2, 2, "M", 4, 4, 4, "M", 8, 8, 8, "M", 8, 8, 8, "M",
)  # fmt: skip
_NUM_CONVS = sum(1 for v in VGG16_PLAN if v != "M")


class VGG16(nn.Module):
    """VGG-16 of Simonyan & Zisserman for small images, as in the paper (appendix B.1).

    Each 3×3 convolution (stride 1, padding 1) is followed by BatchNorm and the activation;
    five 2×2 max-pools halve the resolution (rounding up, so a 28×28 image reaches 1×1 like
    a 32×32 one instead of vanishing); the remaining feature map is averaged over space
    (it is 1×1 for 28 and 32 pixel inputs, where this equals flattening) and a single
    Dense layer gives the logits.

    Parameter paths: ``conv_{i}/kernel`` (i = 00..12), ``bn_{i}``, ``classifier/kernel``.

    Attributes:
      num_classes: number of logits.
      width: base width; the convolutions have width·(1, 1, 2, 2, 4, 4, 4, 8, ..., 8)
        channels (64 → the standard 64-128-256-512-512).
      activation: ``"relu"`` or ``"leaky_relu"``.
      leaky_slope: negative slope of the leaky ReLU.
      use_bias: whether convolutions and classifier have a bias (PyTorch's default, and
        the authors' code, have one).
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
        i = 0
        for item in VGG16_PLAN:
            if item == "M":
                # SAME padding pads with −∞: PyTorch's ceil_mode=True; equal to floor mode
                # whenever the size is even (always for 32×32 inputs).
                x = nn.max_pool(x, (2, 2), strides=(2, 2), padding="SAME")
                continue
            x = nn.Conv(
                self.width * int(item),
                (3, 3),
                padding=((1, 1), (1, 1)),
                use_bias=self.use_bias,
                name=layer_name("conv", i, _NUM_CONVS),
            )(x)
            x = act(batch_norm(train, self.bn_momentum, layer_name("bn", i, _NUM_CONVS))(x))
            i += 1
        x = jnp.mean(x, axis=(1, 2))
        return nn.Dense(self.num_classes, use_bias=self.use_bias, name="classifier")(x)
