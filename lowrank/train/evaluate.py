"""Evaluation (loss and accuracy on a split) and measurement (ranks, spectra, norms)."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from lowrank import data, rank
from lowrank.train.step import TrainState, _variables

Array = jax.Array


def evaluate(
    state: TrainState,
    images: Array,
    labels: Array,
    *,
    model: nn.Module,
    batch_size: int,
    mean: Any,
    std: Any,
) -> dict[str, Array]:
    """Mean loss and accuracy over a whole split (BatchNorm in evaluation mode).

    The split is padded to a multiple of ``batch_size``; padded examples are masked out.
    """
    n = images.shape[0]
    steps = -(-n // batch_size)
    pad = steps * batch_size - n
    idx = jnp.concatenate([jnp.arange(n), jnp.zeros((pad,), jnp.int32)]).reshape(steps, -1)
    valid = (jnp.arange(steps * batch_size) < n).reshape(steps, -1)
    variables = _variables(state.params, state.batch_stats)

    def body(totals, xs):
        batch_idx, mask = xs
        x = data.standardize(images[batch_idx], mean, std)
        logits = model.apply(variables, x, train=False)
        y = labels[batch_idx]
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, y)
        correct = jnp.argmax(logits, -1) == y
        return (
            totals[0] + jnp.sum(jnp.where(mask, losses, 0.0)),
            totals[1] + jnp.sum(jnp.where(mask, correct, False)),
        ), None

    (loss_sum, correct), _ = jax.lax.scan(body, (0.0, 0), (idx, valid))
    return {"loss": loss_sum / n, "accuracy": correct / n}


def measure(
    params: Any,
    *,
    epsilons: tuple[float, ...],
    normalization: str,
    method: str = "svd",
    selection: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Rank measures, singular values and Frobenius norms of the selected weight matrices."""
    selection = selection or {}
    matrices = rank.weight_matrices(params, **selection)
    spec = rank.spectra_of(matrices, method=method)
    out = rank.measures(spec, epsilons, normalization)
    out["singular_values"] = dict(spec.values)
    out["frobenius_norm"] = {p: jnp.sqrt(jnp.sum(s**2)) for p, s in spec.values.items()}
    return out
