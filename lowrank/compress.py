"""Compression by truncated SVD: every weight matrix cut to a chosen rank, then re-evaluated.

Works on any parameter pytree that :func:`lowrank.rank.weight_matrices` reads (Flax
params, nested dicts, ...): a matrix view ``(out, in)`` of each selected leaf is replaced
by its best rank-r approximation ``U_r Σ_r V_rᵀ`` and written back into the leaf's own
layout, so the truncated parameters drop into the same model unchanged.

Ranks per matrix come from :func:`effective_ranks` (the number of σ/σ_max > ε, the
paper's effective rank) or :func:`fraction_ranks` (a fixed fraction of min(out, in)).
:func:`parameter_counts` counts what a factored model would store: a rank-r matrix
``(m, n)`` costs ``r·(m + n)`` numbers when that is less than ``m·n``, else ``m·n``; all
other parameters (biases, normalization) are kept. :func:`compression_curve` evaluates a
model at many truncation levels, decomposing each matrix once.

SVDs run in NumPy (float64) on the host: the truncation is exact to float32 rounding and
stays clear of the CPU LAPACK concurrency issue noted in ``lowrank.rank``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lowrank import rank

PyTree = Any


def _index_views(params: PyTree, **selection: Any) -> dict[str, np.ndarray]:
    """``{path: integer matrix}``: where each entry of a matrix view lives in its leaf.

    The views of :func:`lowrank.rank.weight_matrices` are reshapes and transposes, so
    applying them to a leaf of flat indices gives the inverse map for free, for any
    layout the library reads (dense, convolution, attention, PyTorch-style).
    """
    index_tree = jax.tree.map(
        lambda x: jnp.arange(math.prod(x.shape), dtype=jnp.int32).reshape(x.shape), params
    )
    return {p: np.asarray(m) for p, m in rank.weight_matrices(index_tree, **selection).items()}


def low_rank_approximation(matrix: np.ndarray, r: int) -> np.ndarray:
    """The best rank-``r`` approximation of a 2-D matrix (Eckart–Young), same dtype."""
    m = np.asarray(matrix)
    if r >= min(m.shape):
        return m.copy()
    u, s, vt = np.linalg.svd(m.astype(np.float64), full_matrices=False)
    return ((u[:, :r] * s[:r]) @ vt[:r]).astype(m.dtype)


@dataclasses.dataclass(frozen=True)
class Decomposed:
    """The SVDs of a parameter pytree's weight matrices, computed once.

    Attributes:
      params: the original parameters (host NumPy leaves).
      svd: ``{path: (U, σ, Vᵀ)}`` in float64, σ descending.
      index: ``{path: integer matrix}`` mapping view entries to positions in the leaf.
    """

    params: PyTree
    svd: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]
    index: dict[str, np.ndarray]

    @property
    def shapes(self) -> dict[str, tuple[int, int]]:
        return {p: idx.shape for p, idx in self.index.items()}

    def full_ranks(self) -> dict[str, int]:
        """``min(out, in)`` of every matrix."""
        return {p: min(s) for p, s in self.shapes.items()}


def decompose(params: PyTree, **selection: Any) -> Decomposed:
    """SVDs of every selected weight matrix (``selection``: ``include``/``exclude``/``preset``)."""
    host = jax.tree.map(np.asarray, params)
    index = _index_views(host, **selection)
    flat = {p: leaf for p, leaf in rank.leaves_with_paths(host)}
    svd = {}
    for path, idx in index.items():
        leaf_path = _leaf_path(path, flat)
        m = np.asarray(flat[leaf_path]).reshape(-1)[idx].astype(np.float64)
        svd[path] = np.linalg.svd(m, full_matrices=False)
    return Decomposed(host, svd, index)


def _leaf_path(path: str, flat: Mapping[str, Any]) -> str:
    if path in flat:
        return path
    raise KeyError(f"compress: weight matrix {path!r} is not a leaf path of the parameters.")


def effective_ranks(
    d: Decomposed, epsilon: float, normalization: str = "spectral"
) -> dict[str, int]:
    """Per matrix, the number of σ above ε (σ/σ_max, or σ/‖M‖_F with ``"frobenius"``)."""
    out = {}
    for path, (_, s, _) in d.svd.items():
        scale = s[0] if normalization == "spectral" else np.sqrt(np.sum(s**2))
        out[path] = int(np.sum(s > epsilon * scale)) if scale > 0 else 0
    return out


def fraction_ranks(d: Decomposed, fraction: float) -> dict[str, int]:
    """Per matrix, ``ceil(fraction · min(out, in))`` (at least 1)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"compress: fraction={fraction!r} must be in (0, 1].")
    return {p: max(1, math.ceil(fraction * k)) for p, k in d.full_ranks().items()}


def truncate(d: Decomposed, ranks: Mapping[str, int]) -> PyTree:
    """The parameters with each matrix in ``ranks`` replaced by its rank-r approximation.

    Matrices not in ``ranks``, and ranks ≥ min(out, in), keep their exact values.
    """
    new_leaves: dict[str, np.ndarray] = {}
    for path, r in ranks.items():
        u, s, vt = d.svd[path]
        if r >= len(s):
            continue
        leaf = new_leaves.get(path)
        if leaf is None:
            leaf = _leaf(d.params, path).copy()
        approx = (u[:, :r] * s[:r]) @ vt[:r]
        flat = leaf.reshape(-1)
        flat[d.index[path].reshape(-1)] = approx.reshape(-1).astype(leaf.dtype)
        new_leaves[path] = flat.reshape(leaf.shape)

    def replace(key_path: Any, leaf: Any) -> Any:
        return new_leaves.get(rank.path_str(key_path), leaf)

    return jax.tree_util.tree_map_with_path(replace, d.params)


def _leaf(params: PyTree, path: str) -> np.ndarray:
    for p, leaf in rank.leaves_with_paths(params):
        if p == path:
            return np.asarray(leaf)
    raise KeyError(f"compress: no leaf {path!r} in the parameters.")


@dataclasses.dataclass(frozen=True)
class Counts:
    """Parameter counts of a truncated model (factored storage of low-rank matrices).

    Attributes:
      total: all parameters of the original pytree.
      kept: parameters after truncation (matrices factored where that is smaller).
      matrices: parameters in the selected weight matrices.
      matrices_kept: their count after truncation.
    """

    total: int
    kept: int
    matrices: int
    matrices_kept: int

    @property
    def fraction(self) -> float:
        """Kept / total."""
        return self.kept / self.total

    @property
    def matrix_fraction(self) -> float:
        """Kept / total over the weight matrices only."""
        return self.matrices_kept / self.matrices


def matrix_cost(shape: tuple[int, int], r: int) -> int:
    """Numbers stored for a rank-``r`` ``(m, n)`` matrix: ``min(r·(m + n), m·n)``."""
    m, n = shape
    return min(max(r, 0) * (m + n), m * n)


def parameter_counts(d: Decomposed, ranks: Mapping[str, int] | None = None) -> Counts:
    """Counts before and after truncating to ``ranks`` (None: no truncation)."""
    total = sum(int(np.size(leaf)) for _, leaf in rank.leaves_with_paths(d.params))
    matrices = sum(m * n for m, n in d.shapes.values())
    ranks = ranks or {}
    kept_m = sum(matrix_cost(shape, ranks.get(p, min(shape))) for p, shape in d.shapes.items())
    return Counts(total=total, kept=total - matrices + kept_m, matrices=matrices,
                  matrices_kept=kept_m)  # fmt: skip


def compression_curve(
    params: PyTree,
    evaluate: Callable[[PyTree], float],
    *,
    epsilons: Sequence[float] = (1e-3, 1e-2, 5e-2, 0.1, 0.2, 0.3),
    fractions: Sequence[float] = (1.0, 0.75, 0.5, 0.3, 0.2, 0.1, 0.05, 0.02),
    normalization: str = "spectral",
    **selection: Any,
) -> list[dict[str, Any]]:
    """Accuracy of a model truncated at each level, one row per level.

    Args:
      params: the trained parameters.
      evaluate: parameters → accuracy (e.g. from :func:`accuracy_fn`).
      epsilons: truncate each matrix to its effective rank at each ε.
      fractions: truncate each matrix to each fraction of min(out, in).
      normalization: how effective ranks normalize σ (``spectral``: the paper).
      **selection: ``include``/``exclude``/``preset`` as in ``lowrank.rank``.

    Returns:
      Rows with ``method`` (``none``, ``epsilon``, ``fraction``), ``level``, ``accuracy``,
      ``param_fraction``, ``matrix_fraction``, ``params_kept``, ``avg_rank`` (mean of the
      kept ranks) and ``ranks`` (per matrix).
    """
    d = decompose(params, **selection)
    plans: list[tuple[str, float, dict[str, int]]] = [("none", 0.0, d.full_ranks())]
    plans += [("epsilon", e, effective_ranks(d, e, normalization)) for e in epsilons]
    plans += [("fraction", f, fraction_ranks(d, f)) for f in fractions]
    rows = []
    for method, level, ranks in plans:
        counts = parameter_counts(d, ranks)
        p = d.params if method == "none" else truncate(d, ranks)
        rows.append(
            {
                "method": method,
                "level": level,
                "accuracy": float(evaluate(p)),
                "param_fraction": counts.fraction,
                "matrix_fraction": counts.matrix_fraction,
                "params_kept": counts.kept,
                "avg_rank": float(np.mean(list(ranks.values()))),
                "ranks": dict(ranks),
            }
        )
    return rows


def accuracy_fn(
    model: Any,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    mean: Any,
    std: Any,
    batch_stats: PyTree | None = None,
    batch_size: int = 1000,
) -> Callable[[PyTree], float]:
    """``params → accuracy`` of a Flax model on a split (evaluation mode, compiled once).

    Args:
      model: a Flax linen module taking ``(B, H, W, C)`` float images and ``train``.
      images: uint8 ``(N, H, W, C)`` images (standardized with ``mean``/``std`` here).
      labels: int ``(N,)``.
      mean: per-channel mean in [0, 1] pixel units (``lowrank.data.Dataset.mean``).
      std: per-channel standard deviation, same units.
      batch_stats: BatchNorm running statistics (None for models without BatchNorm).
      batch_size: examples per evaluation step (memory only).
    """
    from lowrank import data

    n = images.shape[0]
    steps = -(-n // batch_size)
    pad = steps * batch_size - n
    x = jnp.asarray(np.concatenate([images, np.zeros((pad, *images.shape[1:]), images.dtype)]))
    y = jnp.asarray(np.concatenate([labels, -np.ones((pad,), labels.dtype)]))
    x = x.reshape(steps, batch_size, *images.shape[1:])
    y = y.reshape(steps, batch_size)

    @jax.jit
    def correct(params: PyTree) -> jax.Array:
        variables = {"params": params}
        if batch_stats:
            variables["batch_stats"] = batch_stats

        def body(total, xy):
            xb, yb = xy
            logits = model.apply(variables, data.standardize(xb, mean, std), train=False)
            return total + jnp.sum(jnp.argmax(logits, -1) == yb), None

        total, _ = jax.lax.scan(body, jnp.zeros((), jnp.int32), (x, y))
        return total

    return lambda params: float(correct(params)) / n
