"""Representation rank: the rank of each measured layer's outputs on a fixed probe batch.

For a weight matrix W of a Dense or convolution layer, the layer's output on a batch is
``H = X Wᵀ`` (a convolution: at every position), so ``rank(H) ≤ rank(W)``: a layer whose
weights lose rank also loses it in its features, but features can lose rank without the
weights (through the data or the layers below). The output matrix of a layer is its
output with every axis but the output features flattened into rows — ``(examples, out)``
for a Dense layer, ``(examples · positions, channels)`` for a convolution, ``(examples ·
tokens, heads · head_dim)`` for an attention projection — and it is ranked by the same
measures as the weights (:func:`lowrank.rank.measures`: σ/σ_max against ε, numerical,
stable, entropy), BatchNorm in evaluation mode. The layer outputs are the pre-activations
(what the weight matrix produces, before normalization and the nonlinearity).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from lowrank import data, rank
from lowrank.train.step import TrainState, _variables

Array = jax.Array


def probe_indices(num_train: int, size: int, seed: int) -> np.ndarray:
    """``size`` distinct training indices, drawn once from ``seed`` (sorted)."""
    if not 0 < size <= num_train:
        raise ValueError(
            f"rank.probe_size={size}: must be in 1..{num_train} (the training set's size), "
            "or 0 to turn the representation ranks off."
        )
    return np.sort(np.random.default_rng(seed).choice(num_train, size, replace=False))


def layer_outputs(
    variables: dict[str, Any],
    images: Array,
    *,
    model: nn.Module,
    selection: dict[str, Any] | None = None,
) -> dict[str, Array]:
    """Each selected weight matrix's layer output on ``images`` as an ``(rows, out)``
    matrix, keyed by the weight's path (see the module docstring)."""
    kernels = rank.weight_matrices(variables["params"], **(selection or {}))
    _, state = model.apply(
        variables, images, train=False, capture_intermediates=True, mutable=["intermediates"]
    )
    captured = traverse_util.flatten_dict(state["intermediates"], sep="/")
    out = {}
    for path, matrix in kernels.items():
        module = path.rsplit("/", 1)[0]
        outputs = captured.get(f"{module}/__call__")
        if outputs is None:
            raise ValueError(
                f"representation: no output captured for layer {module!r} (weight {path!r}); "
                "exclude it with rank.exclude or turn representation ranks off with "
                "rank.probe_size=0."
            )
        width = matrix.shape[0]
        out[path] = jnp.concatenate([o.reshape(-1, width) for o in outputs])
    return out


def _square(h: Array) -> Array:
    """A matrix with the singular values of ``h`` and at most min(h.shape) rows: R of its
    QR decomposition when ``h`` is tall. A convolution's output has examples × positions
    rows (512 × 1024 for 32×32 images), which a dense SVD would handle with workspace
    quadratic in the rows; the QR's R is channels × channels (backward stable, so its σ
    are H's to float32 rounding)."""
    if h.shape[0] <= h.shape[1]:
        return h
    return jnp.linalg.qr(h, mode="r")


def represent(
    state: TrainState,
    images: Array,
    *,
    model: nn.Module,
    mean: Any,
    std: Any,
    epsilons: tuple[float, ...],
    normalization: str,
    method: str = "svd",
    selection: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Rank measures of every selected layer's outputs on the probe ``images`` (raw
    pixels, standardized here as in training), in :func:`lowrank.rank.measures`' form."""
    x = data.standardize(images, mean, std)
    variables = _variables(state.params, state.batch_stats)
    outputs = layer_outputs(variables, x, model=model, selection=selection)
    spec = rank.spectra_of({p: _square(h) for p, h in outputs.items()}, method=method)
    # The numerical rank's tolerance scales with the largest dimension: the outputs' own.
    spec = dataclasses.replace(spec, shapes={p: tuple(h.shape) for p, h in outputs.items()})
    return rank.measures(spec, epsilons, normalization)
