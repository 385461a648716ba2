"""Lemma 3.1 measured on a model: per-sample and minibatch gradient ranks per layer."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import jax
import numpy as np

from lowrank import rank, theory, train

Array = jax.Array


def _apply_train(model, variables, params, images, rngs):
    out, _ = model.apply(
        {**variables, "params": params},
        images,
        train=True,
        rngs=rngs,
        mutable=[k for k in variables if k != "params"],
    )
    return out


@partial(jax.jit, static_argnames=("model", "loss_fn", "selection"))
def _sample_and_batch_grads(model, variables, images, labels, rngs, loss_fn, selection):
    params = variables["params"]
    sel = dict(selection)

    def per_sample(x, y):
        # Evaluation mode: this sample's loss depends on this sample alone.
        loss = lambda p: loss_fn(
            model.apply({**variables, "params": p}, x[None], train=False), y[None]
        )
        return rank.weight_matrices(jax.grad(loss)(params), **sel)

    sample = jax.vmap(per_sample)(images, labels)
    batch_grad = jax.grad(
        lambda p: loss_fn(_apply_train(model, variables, p, images, rngs), labels)
    )(params)
    return sample, rank.weight_matrices(batch_grad, **sel)


def gradient_ranks(
    model: Any,
    variables: Mapping[str, Any],
    images: Array,
    labels: Array,
    *,
    loss_fn: Callable[[Array, Array], Array] = train.cross_entropy,
    rngs: Mapping[str, Array] | None = None,
    **selection: Any,
) -> dict[str, dict[str, Any]]:
    """Lemma 3.1 measured: per-sample and minibatch gradient ranks of every weight matrix.

    Per-sample gradients use evaluation mode (BatchNorm with running averages), where
    each sample's loss depends on that sample alone, as the lemma assumes. The minibatch
    gradient uses training mode (BatchNorm with batch statistics): BN couples the samples,
    but the kernel gradient is still ``Σ_i δ_i x_iᵀ`` over the B samples' layer inputs
    (times m_l patches), so its rank stays ≤ B·m_l (≤ B·m_l − 1 when BN follows the
    layer: the δ then sum to zero).

    Args:
      model: a Flax module called as ``model(x, train=...)``.
      variables: its variables (``params`` and e.g. ``batch_stats``).
      images: one minibatch ``(B, H, W, C)``, already standardized.
      labels: ``(B,)`` integer labels.
      loss_fn: ``(logits, labels) → mean loss``.
      rngs: RNG streams for training mode (e.g. ``{"dropout": key}`` for the ViT).
      **selection: ``include``, ``exclude``, ``preset`` as in ``rank.weight_matrices``.

    Returns:
      ``{path: {"m_l", "shape", "per_sample" (B ranks), "minibatch", "bounds"}}`` where
      ``bounds`` is ``lowrank.theory.gradient_rank_bounds`` (not capped by the shape).
    """
    from lowrank.models.structure import patch_counts  # the models package imports flax

    m = patch_counts(model, images.shape[1:], **selection)
    sample, batch = _sample_and_batch_grads(
        model,
        dict(variables),
        images,
        labels,
        dict(rngs or {}),
        loss_fn,
        tuple(sorted(selection.items())),
    )
    b = images.shape[0]
    out: dict[str, dict[str, Any]] = {}
    for path, g in batch.items():
        per = np.asarray(sample[path])
        out[path] = {
            "m_l": m[path],
            "shape": tuple(g.shape),
            "per_sample": np.array([rank.matrix_numerical_rank(per[i]) for i in range(b)]),
            "minibatch": rank.matrix_numerical_rank(g),
            "bounds": theory.gradient_rank_bounds(m[path], b),
        }
    return out
