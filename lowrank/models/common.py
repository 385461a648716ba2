"""Pieces shared by the model families: activations and BatchNorm with PyTorch numerics."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import flax.linen as nn
import jax

ACTIVATIONS = ("relu", "leaky_relu")

# PyTorch's BatchNorm epsilon (Flax defaults to 1e-5 too, but say it: the authors' models
# are PyTorch and we match their numerics where it costs nothing).
BN_EPSILON = 1e-5


def activation_fn(name: str, leaky_slope: float = 0.01) -> Callable[[jax.Array], jax.Array]:
    """The elementwise nonlinearity named by a model config.

    Args:
      name: ``"relu"`` or ``"leaky_relu"``.
      leaky_slope: negative slope of the leaky ReLU (PyTorch's ``nn.LeakyReLU()`` default,
        0.01, is what the authors' code uses).
    """
    if name == "relu":
        return nn.relu
    if name == "leaky_relu":
        return partial(nn.leaky_relu, negative_slope=leaky_slope)
    raise ValueError(f"model.activation={name!r} is not known; choose one of {ACTIVATIONS}.")


def batch_norm(train: bool, momentum: float, name: str) -> nn.BatchNorm:
    """BatchNorm over all axes but the last (features).

    Training mode normalizes with the batch statistics and updates the running averages
    (``new = momentum·old + (1 − momentum)·batch``, Flax's convention: Flax 0.9 is
    PyTorch's ``momentum=0.1``); evaluation mode normalizes with the running averages.
    Flax keeps the biased batch variance in the running average where PyTorch keeps the
    unbiased one; the difference is a factor n/(n−1) on the variance, n = batch·positions.
    """
    return nn.BatchNorm(
        use_running_average=not train, momentum=momentum, epsilon=BN_EPSILON, name=name
    )


def layer_name(prefix: str, index: int, count: int) -> str:
    """``prefix_{index}`` zero-padded to the digits of ``count − 1``.

    Parameter dicts flatten in sorted key order; padding makes that order the depth order
    (``conv_02`` before ``conv_10``), so per-layer listings and plots come out in order.
    """
    return f"{prefix}_{index:0{len(str(max(count - 1, 0)))}d}"
