"""A small Vision Transformer: 4×4 patches, 8 heads, 6 pre-norm encoder blocks."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from lowrank.models.common import layer_name

POOLINGS = ("cls", "mean")

# PyTorch's LayerNorm epsilon, as in the ViT implementations the paper's runs used.
_LN_EPSILON = 1e-5


class MlpBlock(nn.Module):
    """``Dense(mlp_dim) → GELU → dropout → Dense(d) → dropout``, applied to every token."""

    mlp_dim: int
    dropout: float
    use_bias: bool = True

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        d = x.shape[-1]
        y = nn.Dense(self.mlp_dim, use_bias=self.use_bias, name="fc1")(x)
        # Exact GELU, as PyTorch's nn.GELU() (Flax defaults to the tanh approximation).
        y = nn.gelu(y, approximate=False)
        y = nn.Dropout(self.dropout)(y, deterministic=not train)
        y = nn.Dense(d, use_bias=self.use_bias, name="fc2")(y)
        return nn.Dropout(self.dropout)(y, deterministic=not train)


class EncoderBlock(nn.Module):
    """Pre-norm transformer block: ``x + attn(ln1(x))``, then ``x + mlp(ln2(x))``."""

    num_heads: int
    mlp_dim: int
    dropout: float
    use_bias: bool = True

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        y = nn.LayerNorm(epsilon=_LN_EPSILON, name="ln1")(x)
        y = nn.MultiHeadDotProductAttention(
            num_heads=self.num_heads,
            dropout_rate=self.dropout,  # on the attention weights
            use_bias=self.use_bias,
            deterministic=not train,
            name="attn",
        )(y, y)
        x = x + nn.Dropout(self.dropout)(y, deterministic=not train)
        y = nn.LayerNorm(epsilon=_LN_EPSILON, name="ln2")(x)
        return x + MlpBlock(self.mlp_dim, self.dropout, self.use_bias, name="mlp")(y, train)


class ViT(nn.Module):
    """The paper's small ViT (appendix B.1), for 32×32 (or 28×28) images.

    Patches are embedded by a ``patch_size``-strided convolution (a Dense map applied to
    every patch), a class token is prepended when ``pooling="cls"``, learned position
    embeddings are added, and ``num_layers`` pre-norm encoder blocks follow; a final
    LayerNorm and one Dense layer give the logits from the class token (``"cls"``, the
    default) or from the mean of the patch tokens (``"mean"``). There is no BatchNorm, so
    the model has no ``batch_stats`` collection. Dropout (rate ``dropout``) acts after the
    embeddings, on the attention weights, after the attention output and in the MLP, in
    training mode only; its RNG stream is ``"dropout"``.

    Parameter paths (weight matrices): ``patch_embed/kernel``,
    ``block_{i}/attn/{query,key,value,out}/kernel``, ``block_{i}/mlp/fc1/kernel``,
    ``block_{i}/mlp/fc2/kernel``, ``classifier/kernel``; also ``cls`` and
    ``pos_embedding``, which are not weight matrices.

    Attributes:
      num_classes: number of logits.
      width: hidden dimension d of the tokens (divisible by ``num_heads``).
      patch_size: side of the square patches; must divide the image height and width.
      num_heads: attention heads per block (head dimension d / num_heads).
      num_layers: number of encoder blocks.
      mlp_dim: hidden width of each block's MLP.
      dropout: dropout rate.
      pooling: ``"cls"`` (class token) or ``"mean"`` (mean over patch tokens).
      use_bias: whether the Dense layers, attention and patch embedding have biases.
    """

    num_classes: int
    width: int = 512
    patch_size: int = 4
    num_heads: int = 8
    num_layers: int = 6
    mlp_dim: int = 512
    dropout: float = 0.1
    pooling: str = "cls"
    use_bias: bool = True

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        """Logits ``(B, num_classes)`` of images ``(B, H, W, C)``."""
        p = self.patch_size
        if x.shape[1] % p or x.shape[2] % p:
            raise ValueError(
                f"model.patch_size={p} must divide the image size {x.shape[1]}×{x.shape[2]}."
            )
        if self.pooling not in POOLINGS:
            raise ValueError(f"model.pooling={self.pooling!r}; choose one of {POOLINGS}.")
        # A Dense map applied to every non-overlapping p×p patch.
        embed = nn.Conv(
            self.width, (p, p), (p, p), "VALID", use_bias=self.use_bias, name="patch_embed"
        )
        x = embed(x)
        x = x.reshape(x.shape[0], -1, self.width)
        if self.pooling == "cls":
            cls = self.param("cls", nn.initializers.zeros, (1, 1, self.width))
            x = jnp.concatenate([jnp.broadcast_to(cls, (x.shape[0], 1, self.width)), x], 1)
        pos = self.param("pos_embedding", nn.initializers.normal(stddev=0.02), (1, *x.shape[1:]))
        x = nn.Dropout(self.dropout)(x + pos, deterministic=not train)
        for i in range(self.num_layers):
            x = EncoderBlock(
                self.num_heads,
                self.mlp_dim,
                self.dropout,
                self.use_bias,
                name=layer_name("block", i, self.num_layers),
            )(x, train)
        x = nn.LayerNorm(epsilon=_LN_EPSILON, name="final_ln")(x)
        x = x[:, 0] if self.pooling == "cls" else jnp.mean(x, axis=1)
        return nn.Dense(self.num_classes, use_bias=self.use_bias, name="classifier")(x)
