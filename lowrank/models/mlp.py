"""MLP-BN-L-H: L hidden layers ``Dense(H) → BatchNorm → activation``, then a Dense output."""

from __future__ import annotations

import flax.linen as nn
import jax

from lowrank.models.common import activation_fn, batch_norm, layer_name


class MLPBN(nn.Module):
    """MLP-BN-L-H of the paper (appendix B.1), on flattened images.

    Parameter paths: ``dense_{i}/kernel`` (i = 0..L−1, zero-padded to equal digits),
    ``bn_{i}``, ``classifier/kernel``.

    Attributes:
      num_classes: number of logits.
      width: H, the width of every hidden layer.
      depth: L, the number of hidden layers (0 gives a linear classifier).
      activation: ``"relu"`` or ``"leaky_relu"``.
      leaky_slope: negative slope of the leaky ReLU.
      use_bias: whether the Dense layers (classifier included) have a bias.
      bn_momentum: running-average momentum in Flax's convention (0.9 = PyTorch's 0.1).
    """

    num_classes: int
    width: int = 100
    depth: int = 10
    activation: str = "relu"
    leaky_slope: float = 0.01
    use_bias: bool = True
    bn_momentum: float = 0.9

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        """Logits ``(B, num_classes)`` of images ``(B, H, W, C)``."""
        act = activation_fn(self.activation, self.leaky_slope)
        x = x.reshape(x.shape[0], -1)
        for i in range(self.depth):
            x = nn.Dense(
                self.width, use_bias=self.use_bias, name=layer_name("dense", i, self.depth)
            )(x)
            x = batch_norm(train, self.bn_momentum, layer_name("bn", i, self.depth))(x)
            x = act(x)
        return nn.Dense(self.num_classes, use_bias=self.use_bias, name="classifier")(x)
