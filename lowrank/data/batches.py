"""On the device: standardized images, epochs of shuffled batches."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lowrank.data.errors import BatchSizeError, DataConfigError


def standardize(images: Any, mean: Any, std: Any) -> jax.Array:
    """Maps uint8 images to float32 ``(x / 255 - mean) / std``, per channel.

    Works on host or device arrays, under `jit` and `vmap`; `mean` and `std` broadcast over
    the last (channel) axis.
    """
    x = jnp.asarray(images).astype(jnp.float32) / 255.0
    return (x - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)


def steps_per_epoch(num_examples: int, batch_size: int, *, field: str = "batch_size") -> int:
    """Returns the number of full batches per epoch (the remainder is dropped).

    Args:
      num_examples: size of the training split.
      batch_size: examples per step.
      field: the config field that holds the batch size, for the error message.

    Raises:
      DataConfigError: a batch size that is not a positive integer.
      BatchSizeError: a batch size larger than the training set.
    """
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, (int, np.integer))
        or batch_size <= 0
    ):
        raise DataConfigError(f"{field}={batch_size!r} must be a positive integer.")
    if batch_size > num_examples:
        raise BatchSizeError(
            f"{field}={batch_size} is larger than the training set ({num_examples} examples), "
            f"so an epoch would have no step. Use {field} ≤ {num_examples}, or a larger "
            "training set (data.train_subset=0, a smaller data.validation_size)."
        )
    return num_examples // batch_size


def describe_remainder(num_examples: int, batch_size: int) -> str | None:
    """Says how many examples each epoch drops, or None when the batch size divides the set."""
    dropped = num_examples % batch_size
    if batch_size > num_examples or dropped == 0:
        return None
    return (
        f"batch size {batch_size} does not divide the {num_examples} training examples: each "
        f"epoch uses {num_examples - dropped} in {num_examples // batch_size} steps and drops "
        f"{dropped} ({100.0 * dropped / num_examples:.2f}%), a different random {dropped} "
        "every epoch."
    )


def epoch_permutation(rng: jax.Array, num_examples: int, batch_size: int) -> jax.Array:
    """Returns this epoch's shuffled example indices as int32 (steps, batch_size).

    `num_examples` and `batch_size` are static Python ints; `rng` may be traced (one key per
    member under `vmap`). The last ``num_examples % batch_size`` shuffled indices are dropped.
    """
    steps = steps_per_epoch(num_examples, batch_size)
    perm = jax.random.permutation(rng, num_examples)
    return perm[: steps * batch_size].reshape(steps, batch_size).astype(jnp.int32)
