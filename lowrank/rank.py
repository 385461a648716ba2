"""Singular values of the weight matrices of any parameter pytree, and rank measures.

Pure JAX: every function works under ``jax.jit`` and under ``jax.vmap`` over a leading
members axis (a sweep of models). Parameters may be Flax linen ``params`` dicts, Flax NNX
states, equinox-style dataclass pytrees or plain nested dicts. Which leaves are weight
matrices, and how a kernel becomes a 2-D ``(out, in)`` matrix (the paper's §4
conventions), is :mod:`lowrank.matrices`; its :func:`weight_matrices`,
:func:`matrix_view`, :func:`leaves_with_paths` and :func:`path_str` are re-exported here.

Effective rank as the paper measures it: the number of singular values of ``M/‖M‖₂``
greater than ε (ε = 1e-3 by default). The authors' PyTorch code instead divides by the
Frobenius norm and counts with an absolute tolerance (``normalization="frobenius"``), and
leaves out the classifier and the 1×1 shortcut convolutions (``preset="authors"``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lowrank.matrices import PRESETS, leaves_with_paths, matrix_view, path_str, weight_matrices

__all__ = [
    "MEASURES",
    "NORMALIZATIONS",
    "PAPER_EPSILON",
    "PRESETS",
    "Spectra",
    "average_rank",
    "entropy_rank",
    "host_singular_values",
    "leaves_with_paths",
    "matrix_numerical_rank",
    "matrix_view",
    "measures",
    "numerical_rank",
    "path_str",
    "rank_report",
    "spectra",
    "spectra_of",
    "stable_rank",
    "threshold_rank",
    "weight_matrices",
]

Array = jax.Array

PAPER_EPSILON = 1e-3
NORMALIZATIONS = ("spectral", "frobenius")
MEASURES = ("threshold_rank", "numerical_rank", "stable_rank", "entropy_rank")

# ------------------------------------------------------------------ singular values


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Spectra:
    """Singular values of selected weight matrices.

    Attributes:
      values: ``{path: σ}``, each sorted in descending order, length ``min(out, in)``.
      nonfinite: ``{path: bool}``, True where the matrix held NaN or Inf (its σ are then
        NaN: the SVD is never run on such input, so it cannot hang).
      shapes: ``{path: (out, in)}``, static.
    """

    values: dict[str, Array]
    nonfinite: dict[str, Array]
    shapes: dict[str, tuple[int, int]] = dataclasses.field(metadata={"static": True})


def _group_by_shape(matrices: Mapping[str, Array]) -> dict[tuple[int, ...], list[str]]:
    groups: dict[tuple[int, ...], list[str]] = {}
    for path, m in matrices.items():
        groups.setdefault(tuple(m.shape), []).append(path)
    return groups


def _svdvals_stack(stack: Array, method: str) -> Array:
    """σ of a stack ``(n, rows, cols)`` in descending order, one batched call."""
    if method == "svd":
        # σ(M) = σ(Mᵀ); LAPACK's tall path (QR first) is faster than its wide path
        # (benchmarks/README.md), so decompose wide matrices transposed.
        if stack.shape[-2] < stack.shape[-1]:
            stack = jnp.swapaxes(stack, -1, -2)
        return jnp.linalg.svd(stack, compute_uv=False)
    if method == "gram":
        # Eigenvalues of the smaller Gram matrix. Squaring halves the usable precision,
        # so compute it in float64 (requires jax_enable_x64).
        if jax.dtypes.canonicalize_dtype(jnp.float64) != jnp.float64:
            raise ValueError(
                "rank: method='gram' needs float64; enable it with "
                "jax.config.update('jax_enable_x64', True) (or `with jax.enable_x64(True):`) "
                "or use method='svd'."
            )
        m = stack.astype(jnp.float64)
        if m.shape[-2] > m.shape[-1]:
            m = jnp.swapaxes(m, -1, -2)
        gram = m @ jnp.swapaxes(m, -1, -2)
        eig = jnp.linalg.eigvalsh(gram)[..., ::-1]
        return jnp.sqrt(jnp.maximum(eig, 0.0)).astype(stack.dtype)
    raise ValueError(f"rank: unknown method {method!r}; choose 'svd' or 'gram'.")


def spectra_of(matrices: Mapping[str, Array], *, method: str = "svd") -> Spectra:
    """Singular values of given 2-D matrices, grouped by shape (one call per shape)."""
    values: dict[str, Array] = {}
    nonfinite: dict[str, Array] = {}
    previous: Array | None = None
    for paths in _group_by_shape(matrices).values():
        stack = jnp.stack([matrices[p] for p in paths])
        if previous is not None:
            # Make each group's decomposition wait for the previous one. XLA's CPU runtime
            # runs independent ops concurrently, and jaxlib's batched LAPACK kernels
            # (svd, eigh) each block a pool thread while waiting for work they queued on
            # the same pool: two at once on a 2-thread pool deadlock (seen with jaxlib
            # 0.10.2; see benchmarks/bench_rank.py). An optimization barrier does not
            # survive compilation, so add a real data dependency: σ ≥ 0, so fmin(min σ, 0)
            # is 0 (NaN-proof), but the compiler cannot know that and must wait for it.
            stack = stack + jnp.fmin(jnp.min(previous), 0).astype(stack.dtype)
        bad = ~jnp.all(jnp.isfinite(stack), axis=(-2, -1))
        # Non-finite input can make LAPACK loop for a long time: decompose zeros instead
        # and report NaN below.
        safe = jnp.where(bad[:, None, None], jnp.zeros_like(stack), stack)
        sv = _svdvals_stack(safe, method)
        previous = sv
        sv = jnp.where(bad[:, None], jnp.nan, sv)
        for i, p in enumerate(paths):
            values[p] = sv[i]
            nonfinite[p] = bad[i]
    order = list(matrices)
    return Spectra(
        values={p: values[p] for p in order},
        nonfinite={p: nonfinite[p] for p in order},
        shapes={p: tuple(matrices[p].shape) for p in order},
    )


def spectra(params: Any, *, method: str = "svd", **selection: Any) -> Spectra:
    """Singular values of every selected weight matrix of ``params``.

    Args:
      params: a parameter pytree.
      method: ``"svd"`` (``jnp.linalg.svd`` without U and V, the default) or ``"gram"``
        (eigenvalues of the smaller Gram matrix in float64; needs x64).
      **selection: ``include``, ``exclude``, ``preset`` as in :func:`weight_matrices`.
    """
    return spectra_of(weight_matrices(params, **selection), method=method)


# ------------------------------------------------------------------------- measures


def threshold_rank(
    sv: Array, epsilons: Sequence[float] | float = PAPER_EPSILON, normalization: str = "spectral"
) -> Array:
    """Number of singular values above ε after normalizing the matrix.

    ``"spectral"``: σ_i/σ_max > ε (the paper). ``"frobenius"``: σ_i/‖M‖_F > ε, the
    authors' code (rank of ``M/‖M‖_F`` with absolute tolerance ε). An all-zero matrix has
    rank 0. Returns float32 of shape ``(len(epsilons),)`` (NaN if σ holds NaN).
    """
    if normalization not in NORMALIZATIONS:
        raise ValueError(
            f"rank: unknown normalization {normalization!r}; choose one of {NORMALIZATIONS}."
        )
    eps = jnp.atleast_1d(jnp.asarray(epsilons, dtype=sv.dtype))
    scale = jnp.max(sv) if normalization == "spectral" else jnp.sqrt(jnp.sum(sv**2))
    # Comparing σ > ε·scale avoids 0/0 for a zero matrix (0 > 0 is False: rank 0).
    counts = jnp.sum(sv[None, :] > eps[:, None] * scale, axis=-1).astype(jnp.float32)
    return jnp.where(jnp.any(jnp.isnan(sv)), jnp.nan, counts)


def numerical_rank(sv: Array, shape: tuple[int, int]) -> Array:
    """Rank with NumPy's default tolerance ``σ_max · max(shape) · eps(dtype)``."""
    tol = jnp.max(sv) * max(shape) * jnp.finfo(sv.dtype).eps
    count = jnp.sum(sv > tol).astype(jnp.float32)
    return jnp.where(jnp.any(jnp.isnan(sv)), jnp.nan, count)


def stable_rank(sv: Array) -> Array:
    """``‖M‖_F² / ‖M‖₂²``; 0 for an all-zero matrix."""
    top = jnp.max(sv)
    safe_top = jnp.where(top > 0, top, 1.0)
    return jnp.where(top > 0, jnp.sum(sv**2) / safe_top**2, 0.0).astype(jnp.float32)


def entropy_rank(sv: Array) -> Array:
    """Roy & Vetterli's effective rank ``exp(H(p))``, ``p = σ/Σσ``; 0 for a zero matrix."""
    total = jnp.sum(sv)
    p = sv / jnp.where(total > 0, total, 1.0)
    plogp = jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0)
    return jnp.where(total > 0, jnp.exp(-jnp.sum(plogp)), 0.0).astype(jnp.float32)


def measures(
    spec: Spectra,
    epsilons: Sequence[float] | float = PAPER_EPSILON,
    normalization: str = "spectral",
) -> dict[str, Any]:
    """All rank measures, per layer and averaged over layers.

    Args:
      spec: singular values from :func:`spectra`.
      epsilons: one or several thresholds ε (the paper: 1e-3).
      normalization: ``"spectral"`` (paper) or ``"frobenius"`` (authors' code) for the
        threshold rank.

    Returns:
      ``{"per_layer": {measure: {path: value}}, "average": {measure: value},
      "nonfinite": {path: bool}, "any_nonfinite": bool}``. ``threshold_rank`` values have
      a trailing axis over ``epsilons``; the other measures are scalars. Averages are
      means over layers (NaN if any layer is NaN).
    """
    per_layer: dict[str, dict[str, Array]] = {m: {} for m in MEASURES}
    for path, sv in spec.values.items():
        per_layer["threshold_rank"][path] = threshold_rank(sv, epsilons, normalization)
        per_layer["numerical_rank"][path] = numerical_rank(sv, spec.shapes[path])
        nan = jnp.any(jnp.isnan(sv))
        per_layer["stable_rank"][path] = jnp.where(nan, jnp.nan, stable_rank(sv))
        per_layer["entropy_rank"][path] = jnp.where(nan, jnp.nan, entropy_rank(sv))
    average = {m: jnp.mean(jnp.stack(list(per_layer[m].values())), axis=0) for m in MEASURES}
    flags = jnp.stack(list(spec.nonfinite.values()))
    return {
        "per_layer": per_layer,
        "average": average,
        "nonfinite": dict(spec.nonfinite),
        "any_nonfinite": jnp.any(flags),
    }


def rank_report(
    params: Any,
    epsilons: Sequence[float] | float = PAPER_EPSILON,
    *,
    normalization: str = "spectral",
    method: str = "svd",
    **selection: Any,
) -> dict[str, Any]:
    """Spectra and all rank measures of a parameter pytree in one call.

    Same as ``measures(spectra(params, ...), ...)`` plus ``"singular_values"``.
    """
    spec = spectra(params, method=method, **selection)
    out = measures(spec, epsilons, normalization)
    out["singular_values"] = dict(spec.values)
    return out


def average_rank(
    params: Any,
    epsilon: float = PAPER_EPSILON,
    *,
    normalization: str = "spectral",
    **selection: Any,
) -> Array:
    """The paper's headline number: mean over weight matrices of the threshold rank."""
    spec = spectra(params, **selection)
    ranks = [threshold_rank(sv, epsilon, normalization)[0] for sv in spec.values.values()]
    return jnp.mean(jnp.stack(ranks))


# ------------------------------------------------------------- on the host (NumPy)


def host_singular_values(matrix: Any) -> np.ndarray:
    """Singular values (descending, float64) of one matrix, computed in NumPy on the host.

    Float32 (or lower) input: square roots of the eigenvalues of the smaller Gram matrix
    formed in float64, about ten times faster than an SVD. Squaring costs nothing here:
    float64 resolves eigenvalues to ~1e-16·λ_max, far below the float32 rank tolerance
    (``(max(shape)·eps32)² λ_max`` ≈ 1e-8 λ_max), so σ is exact to ~1e-7·σ_max. Float64
    input gets an SVD. Runs outside XLA: concurrent batched LAPACK calls can deadlock
    XLA's CPU pool (see :func:`spectra_of`).
    """
    m = np.asarray(matrix)
    if m.size == 0:
        return np.zeros((0,))
    if np.finfo(np.result_type(m.dtype, np.float16)).bits > 32:
        return np.linalg.svd(m.astype(np.float64), compute_uv=False)
    m = m.astype(np.float64)
    gram = m @ m.T if m.shape[0] <= m.shape[1] else m.T @ m
    eig = np.linalg.eigvalsh(gram)[::-1]
    return np.sqrt(np.maximum(eig, 0.0))


def matrix_numerical_rank(matrix: Any, dtype: Any = None) -> int:
    """Rank of one matrix with NumPy's tolerance ``σ_max·max(shape)·eps``.

    As ``numpy.linalg.matrix_rank``: ``eps`` is that of the matrix's own precision (at
    least float32; or of ``dtype``), so rounding noise is not counted as rank. Singular
    values from :func:`host_singular_values` (NumPy, outside XLA).
    """
    m = np.asarray(matrix)
    eps = np.finfo(
        np.dtype(dtype) if dtype is not None else np.result_type(m.dtype, np.float32)
    ).eps
    s = host_singular_values(m)
    if s.size == 0 or not np.all(np.isfinite(s)) or s[0] == 0:
        return 0
    return int(np.sum(s > s[0] * max(m.shape) * eps))
