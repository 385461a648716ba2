"""Lemma 3.1's gradient-rank bounds, Lemma 3.2's distances and bound, Theorem 3.3's rank
bound and window."""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
PyTree = Any

NORMS = ("frobenius", "spectral")


# ---------------------------------------------------------------------------- Lemma 3.1


def gradient_rank_bounds(
    m_l: int, batch_size: int, n: int = 1, shape: tuple[int, int] | None = None
) -> dict[str, int]:
    """Lemma 3.1 and its consequences: rank bounds of layer l's gradients.

    Args:
      m_l: vectors (patches) the layer's matrix multiplies per sample
        (``lowrank.models.structure.patch_counts``).
      batch_size: B.
      n: window length (steps).
      shape: the matrix shape; if given, every bound is capped at ``min(shape)``.

    Returns:
      ``{"per_sample": m_l, "minibatch": B·m_l, "window": B·m_l·n}`` (rank of one sample's
      gradient, of a minibatch gradient, of ``U_{T,n}``).
    """
    for name, value in (("m_l", m_l), ("batch_size", batch_size), ("n", n)):
        if int(value) != value or value < 1:
            raise ValueError(f"theory: {name}={value!r} must be an integer ≥ 1.")
    bounds = {"per_sample": m_l, "minibatch": m_l * batch_size, "window": m_l * batch_size * n}
    if shape is not None:
        bounds = {k: min(v, min(shape)) for k, v in bounds.items()}
    return {k: int(v) for k, v in bounds.items()}


# ---------------------------------------------------------------------------- Lemma 3.2


def matrix_norm(matrix: Any, norm: str = "frobenius") -> Array:
    """Frobenius or spectral norm of a 2-D matrix."""
    if norm not in NORMS:
        raise ValueError(f"theory: unknown norm {norm!r}; choose one of {NORMS}.")
    m = jnp.asarray(matrix)
    return jnp.linalg.norm(m, "fro") if norm == "frobenius" else jnp.linalg.norm(m, 2)


def nearest_low_rank_distance(sv: Any, k: Any, norm: str = "frobenius") -> Array:
    """Distance from a matrix to the nearest matrix of rank ≤ k (Eckart–Young–Mirsky).

    Args:
      sv: the matrix's singular values (any order); pass those of ``W_T/‖W_T‖`` for
        Lemma 3.2.
      k: the rank allowed (``m_l·B·n`` for Lemma 3.2).
      norm: ``"frobenius"``: ``sqrt(Σ_{i>k} σ_i²)``; ``"spectral"``: ``σ_{k+1}``.
        Both are 0 when ``k ≥ len(sv)``.
    """
    if norm not in NORMS:
        raise ValueError(f"theory: unknown norm {norm!r}; choose one of {NORMS}.")
    s = jnp.sort(jnp.asarray(sv))[::-1]
    tail = jnp.arange(s.shape[0]) >= k
    if norm == "frobenius":
        return jnp.sqrt(jnp.sum(jnp.where(tail, s * s, 0.0)))
    return jnp.max(jnp.where(tail, s, 0.0), initial=0.0)


def lemma32_bound(decay: Any, norm_start: Any, norm_end: Any) -> Array:
    """Lemma 3.2's right-hand side ``∏(1−2μ_tλ) · ‖W_{T−n}‖ / ‖W_T‖`` (any norm: pass
    both norms in the same one). With momentum use :func:`lemma32` on the decomposition's
    ``tail`` instead."""
    return jnp.asarray(decay) * jnp.asarray(norm_start) / jnp.asarray(norm_end)


@partial(jax.jit, static_argnames=("norm",))
def lemma32(w_end: Any, tail: Any, k: Any, norm: str = "frobenius") -> dict[str, Array]:
    """Both sides of Lemma 3.2 for one matrix.

    Args:
      w_end: ``W_T``.
      tail: ``W_T − U_{T,n}`` (``Decomposition.tail``): ``∏(1−2μ_tλ) W_{T−n}`` for SGD,
        ``a_n W_{T−n} + b_n v_{T−n}`` with momentum.
      k: the rank allowed, ``m_l·B·n``.
      norm: ``"frobenius"`` or ``"spectral"`` (W_T is normalized in the same norm).

    Returns:
      ``{"distance": min_{rank W̄ ≤ k} ‖W_T/‖W_T‖ − W̄‖, "bound": ‖tail‖/‖W_T‖}``.
      Since ``rank U_{T,n} ≤ k`` (Lemma 3.1), distance ≤ bound.
    """
    if norm not in NORMS:
        raise ValueError(f"theory: unknown norm {norm!r}; choose one of {NORMS}.")
    sv = jnp.linalg.svd(jnp.asarray(w_end), compute_uv=False)
    scale = sv[0] if norm == "spectral" else jnp.sqrt(jnp.sum(sv * sv))
    tail = jnp.asarray(tail)
    if norm == "spectral":
        # Make the second SVD wait for the first (fmin(min σ, 0) = 0): two LAPACK calls
        # running at once can deadlock XLA's CPU pool (see lowrank.rank.spectra_of).
        tail = tail + jnp.fmin(jnp.min(sv), 0).astype(tail.dtype)
    return {
        "distance": nearest_low_rank_distance(sv / scale, k, norm),
        "bound": matrix_norm(tail, norm) / scale,
    }


# -------------------------------------------------------------------------- Theorem 3.3


def _check_theorem33(mu: float, lam: float, eps: np.ndarray) -> None:
    if not mu > 0:
        raise ValueError(f"theory: learning rate μ={mu!r} must be > 0.")
    if lam < 0:
        raise ValueError(f"theory: weight decay λ={lam!r} must be ≥ 0.")
    if not 2 * mu * lam < 1:
        raise ValueError(
            f"theory: 2μλ = {2 * mu * lam:g} (μ={mu!r}, λ={lam!r}) must be < 1 for "
            "Theorem 3.3 (the decay factor 1−2μλ must lie in (0, 1])."
        )
    bad = eps[~((eps > 0) & (eps < 0.5))]
    if bad.size:
        raise ValueError(f"theory: ε={bad.tolist()!r} must lie in the open interval (0, 0.5).")


def theorem33_rank_bound(m_l: int, batch_size: int, mu: float, lam: float, eps: Any) -> Any:
    """Theorem 3.3's rank bound ``m_l·B·log(2/ε)/(2μλ)`` (float, or array over ε).

    λ = 0 gives ``inf`` (no bound), not an error.

    Raises:
      ValueError: μ ≤ 0, λ < 0, 2μλ ≥ 1, or ε outside (0, 0.5).
    """
    e = np.asarray(eps, np.float64)
    _check_theorem33(mu, lam, np.atleast_1d(e))
    with np.errstate(divide="ignore"):
        out = m_l * batch_size * np.log(2.0 / e) / (2.0 * mu * lam) if lam > 0 else np.inf + e
    return float(out) if np.ndim(out) == 0 else out


def theorem33_window(mu: float, lam: float, eps: Any) -> Any:
    """The window the proof of Theorem 3.3 picks: ``n = ⌈log(ε/2)/log(1−2μλ)⌉``.

    ``m_l·B·n`` is the sharper rank bound behind :func:`theorem33_rank_bound` (the
    theorem's closed form uses ``n ≤ log(2/ε)/(2μλ)``, which ignores the ceiling and can
    be one step short for ε > 2e⁻² ≈ 0.27). λ = 0 gives ``inf``.
    """
    e = np.asarray(eps, np.float64)
    _check_theorem33(mu, lam, np.atleast_1d(e))
    out = np.inf + e if lam == 0 else np.ceil(np.log(e / 2.0) / np.log1p(-2.0 * mu * lam))
    return float(out) if np.ndim(out) == 0 else out
