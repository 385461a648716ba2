"""RES-BN-L-H: a Dense to width H, L residual blocks, a Dense output."""

from __future__ import annotations

import flax.linen as nn
import jax

from lowrank.models.common import activation_fn, batch_norm, layer_name


class ResBlock(nn.Module):
    """``z + σ(bn2(W2 σ(bn1(W1 z))))``, the block as the paper writes it (appendix B.1).

    The authors' PyTorch block differs: it has no σ after ``bn2``. We follow the paper.
    """

    width: int
    activation: str = "relu"
    leaky_slope: float = 0.01
    use_bias: bool = True
    bn_momentum: float = 0.9

    @nn.compact
    def __call__(self, z: jax.Array, train: bool = False) -> jax.Array:
        act = activation_fn(self.activation, self.leaky_slope)
        y = nn.Dense(self.width, use_bias=self.use_bias, name="dense1")(z)
        y = act(batch_norm(train, self.bn_momentum, "bn1")(y))
        y = nn.Dense(self.width, use_bias=self.use_bias, name="dense2")(y)
        y = act(batch_norm(train, self.bn_momentum, "bn2")(y))
        return z + y


class ResBN(nn.Module):
    """RES-BN-L-H of the paper (appendix B.1), on flattened images.

    Parameter paths: ``dense_in/kernel``, ``block_{i}/dense1/kernel``,
    ``block_{i}/dense2/kernel`` (i = 0..L−1, zero-padded to equal digits),
    ``classifier/kernel``.

    Attributes:
      num_classes: number of logits.
      width: H, the width of the residual stream and of both matrices of each block.
      depth: L, the number of residual blocks.
      activation: ``"relu"`` or ``"leaky_relu"``.
      leaky_slope: negative slope of the leaky ReLU.
      use_bias: whether the Dense layers (classifier included) have a bias.
      bn_momentum: running-average momentum in Flax's convention (0.9 = PyTorch's 0.1).
    """

    num_classes: int
    width: int = 500
    depth: int = 5
    activation: str = "relu"
    leaky_slope: float = 0.01
    use_bias: bool = True
    bn_momentum: float = 0.9

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        """Logits ``(B, num_classes)`` of images ``(B, H, W, C)``."""
        x = x.reshape(x.shape[0], -1)
        # The paper's input layer is a plain linear map to width H (the authors' code adds a
        # BatchNorm after it); we follow the paper.
        x = nn.Dense(self.width, use_bias=self.use_bias, name="dense_in")(x)
        for i in range(self.depth):
            x = ResBlock(
                self.width,
                self.activation,
                self.leaky_slope,
                self.use_bias,
                self.bn_momentum,
                name=layer_name("block", i, self.depth),
            )(x, train)
        return nn.Dense(self.num_classes, use_bias=self.use_bias, name="classifier")(x)
