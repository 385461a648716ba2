"""The paper's theory (§3) as functions: decay factors, the forgetting decomposition,
Lemma 3.1 ranks, Lemma 3.2 distances and bounds, Theorem 3.3 rank bounds.

Every function works on single matrices and on the ``{path: matrix}`` dicts of
``lowrank.rank.weight_matrices`` (any pytree: the coefficients are shared by all leaves).
Notation: ``g_t = ∇L_{S_t}(W_t)`` is the *data* gradient of step t (mean loss over the
minibatch, without the decay term); ``μ_t`` the learning rate applied at step t (μ times
the schedule multiplier); λ the paper's λ (the optimizer adds ``2λW``, DESIGN.md §1).

Plain SGD (``lowrank.optim`` with momentum 0)
--------------------------------------------
``W_{t+1} = W_t − μ_t(g_t + 2λW_t) = d_t W_t − μ_t g_t`` with ``d_t = 1 − 2μ_tλ``.
Unrolling the last n steps before T::

    W_T = (∏_{t=T−n}^{T−1} d_t) W_{T−n} + U_{T,n},
    U_{T,n} = −Σ_{k=1}^{n} μ_{T−k} (∏_{t=T−k+1}^{T−1} d_t) g_{T−k}.

(An empty product is 1.) With constant μ this is the paper's ``(1−2μλ)^n W_{T−n} −
μ Σ_k (1−2μλ)^{k−1} g_{T−k}``; with a schedule every factor carries its own step's μ_t.

SGD with momentum β, coupled L2 decay (PyTorch semantics, ``lowrank.optim`` default)
------------------------------------------------------------------------------------
``v_{t+1} = βv_t + g_t + 2λW_t``, ``W_{t+1} = W_t − μ_t v_{t+1}``, so
``W_{t+1} = (1−2μ_tλ)W_t − μ_tβ v_t − μ_t g_t``. The pair (W, v) follows a linear
recurrence with the same scalar 2×2 transition for every entry::

    [W_{t+1}]         [W_t]                 [1−2μ_tλ  −μ_tβ]         [−μ_t]
    [v_{t+1}] = A_t · [v_t] + c_t g_t,  A_t = [  2λ       β  ],  c_t = [  1 ].

Unrolled, with ``P = A_{T−1}···A_{T−n}`` and ``e₁ = (1, 0)``::

    W_T = a_n W_{T−n} + b_n v_{T−n} + U_{T,n},   (a_n, b_n) = e₁ᵀP,
    U_{T,n} = Σ_{k=1}^{n} γ_k g_{T−k},          γ_k = e₁ᵀ A_{T−1}···A_{T−k+1} c_{T−k}.

All coefficients come from one backward sweep ``r ← e₁ᵀ; for t = T−1 … T−n:
γ(t) = r·c_t, r ← r·A_t`` and finally ``(a_n, b_n) = r``. What replaces ``(1−2μλ)^n``:
the weight coefficient ``a_n`` *and* the velocity term ``b_n v_{T−n}``, which must be
kept in the "forgotten" part: ``v_{T−n}`` sums the whole earlier history and is not low
rank. ``U_{T,n}`` is still a combination of the n minibatch gradients, so its rank is
≤ m_l·B·n and Lemma 3.2 reads ``min_{rank W̄ ≤ m_l B n} ‖W_T/‖W_T‖ − W̄‖ ≤
‖a_n W_{T−n} + b_n v_{T−n}‖ / ‖W_T‖``. For constant μ, ``A`` has trace ``1 + β − 2μλ``
and determinant β; its larger eigenvalue is ``ρ ≈ 1 − 2μλ/(1−β)`` when
``2μλ ≪ (1−β)²`` (both have modulus √β when they are complex), so a_n and b_n decay like
``(1 − 2μλ/(1−β))^n``: momentum forgets like plain SGD with the effective learning rate
``μ/(1−β)`` (:func:`momentum_forgetting_rate`). With β = 0, ``b_n = 0`` and
``a_n = ∏ d_t``: the plain-SGD identity.

Decoupled decay (``optim.decoupled=True``: the decay is added after the momentum buffer)
------------------------------------------------------------------------------------
``v_{t+1} = βv_t + g_t``, ``W_{t+1} = W_t − μ_t(v_{t+1} + 2λW_t)``: the same recurrence
with ``A_t = [[1−2μ_tλ, −μ_tβ], [0, β]]``. Now ``a_n = ∏ (1−2μ_tλ)`` exactly as without
momentum, but the velocity term ``b_n v_{T−n}`` (``b_n ∝ β``) still has to be kept, and
``γ_k = −Σ_{j=1}^{k} μ_{T−j} (∏_{t=T−j+1}^{T−1} d_t) β^{k−j}``.

Theorem 3.3 with momentum: the proof goes through with ``1−2μλ`` replaced by ρ and the
tail ``‖a_n W_{T−n} + b_n v_{T−n}‖`` in place of ``(1−2μλ)^n‖W_{T−n}‖``, under the extra
assumption that ``‖v_{T−n}‖/‖W_T‖`` stays bounded; the rank bound becomes about
``m_l·B·log(C/ε)(1−β)/(2μλ)`` when ``2μλ ≪ (1−β)²``: momentum at fixed μ lowers it
by the factor 1−β (it is the bound of plain SGD at the effective rate ``μ/(1−β)``).

Lemma 3.1, 3.2 and Theorem 3.3: :func:`gradient_rank_bounds`,
:func:`nearest_low_rank_distance`, :func:`lemma32`, :func:`lemma32_bound`,
:func:`theorem33_rank_bound`, :func:`theorem33_window`; Lemma 3.1 measured on a model:
``lowrank.analysis.gradient_ranks``. Measured on real runs, two refinements show up: a
layer followed by BatchNorm in training mode has minibatch gradient rank ≤ B·m_l − 1
(BN's output ignores a shift shared by the batch, so the back-propagated errors sum to
zero), and the classifier of a softmax cross-entropy has rank ≤ C − 1 (each sample's
logit gradient sums to zero over the C classes).

A recorded :class:`Window` (``lowrank.train.train_and_record``, or ``record.steps`` in a
run) holds W, the momentum buffer and the data gradient of the last N steps;
:func:`decompose_window` gives the decomposition for any n ≤ N from it. Typical use::

    tx = optim.make_optimizer(cfg.optim, steps_per_epoch)
    record = train.Recording(64, train.InjectedLearningRate(optim.lr_multiplier(...)))
    state_T, window, _ = train.train_and_record(state, images, labels, batches,
                                                model=model, tx=tx, record=record)
    dec = theory.decompose_window(theory.Window(**window), λ, β, n=16)
    dec.residual(rank.weight_matrices(state_T.params))  # ≈ 1e-7 (float32)
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
PyTree = Any

NORMS = ("frobenius", "spectral")

# ------------------------------------------------------------------------ decay factors


def decay_factor(mu: Any, lam: Any) -> Any:
    """One step's weight-decay factor ``1 − 2μλ`` (works on floats and arrays)."""
    return 1.0 - 2.0 * mu * lam


def decay_product(mus: Any, lam: Any) -> Array:
    """``∏_t (1 − 2μ_tλ)`` over a schedule's per-step learning rates ``mus`` (shape (n,)).

    Equals ``(1 − 2μλ)^n`` for a constant learning rate; 1 for an empty window.
    """
    mus = jnp.asarray(mus)
    return jnp.prod(decay_factor(mus, jnp.asarray(lam, mus.dtype)))


# ------------------------------------------------------------ forgetting decomposition


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Decomposition:
    """``W_T = decayed + velocity_term + update``, for one matrix or a pytree of them.

    Attributes:
      decayed: ``a_n W_{T−n}``; for SGD ``a_n = ∏(1−2μ_tλ)``.
      velocity_term: ``b_n v_{T−n}`` (zeros for plain SGD).
      update: ``U_{T,n}``, the combination of the last n data gradients.
      coefficients: ``γ`` of shape (n,), oldest step first: ``U = Σ_i γ_i g_i``.
      weight_coefficient: ``a_n`` (scalar), what replaces ``(1−2μλ)^n``.
      velocity_coefficient: ``b_n`` (scalar, 0 for plain SGD).
    """

    decayed: PyTree
    velocity_term: PyTree
    update: PyTree
    coefficients: Array
    weight_coefficient: Array
    velocity_coefficient: Array

    @property
    def tail(self) -> PyTree:
        """``W_T − U_{T,n}``: the part the last n steps have not replaced (Lemma 3.2)."""
        return jax.tree.map(jnp.add, self.decayed, self.velocity_term)

    def reconstruction(self) -> PyTree:
        """``decayed + velocity_term + update``: W_T as the identity predicts it."""
        return jax.tree.map(jnp.add, self.tail, self.update)

    def residual(self, w_end: PyTree) -> PyTree:
        """The identity residual ``‖W_T − reconstruction‖_F / ‖W_T‖_F`` per leaf."""
        return identity_residual(self, w_end)


@jax.jit
def identity_residual(decomposition: Decomposition, w_end: PyTree) -> PyTree:
    """``‖W_T − a_n W_{T−n} − b_n v_{T−n} − U_{T,n}‖_F / ‖W_T‖_F`` for every leaf of W_T."""

    def one(w, rec):
        return jnp.linalg.norm((w - rec).ravel()) / jnp.linalg.norm(w.ravel())

    return jax.tree.map(one, w_end, decomposition.reconstruction())


def _check_window(w_start: PyTree, grads: PyTree, lrs: Array) -> int:
    if lrs.ndim != 1:
        raise ValueError(f"theory: lrs must have shape (n,), got {lrs.shape}.")
    n = lrs.shape[0]
    for w, g in zip(jax.tree.leaves(w_start), jax.tree.leaves(grads), strict=True):
        if tuple(g.shape) != (n, *w.shape):
            raise ValueError(
                f"theory: gradients must be stacked oldest first with shape (n, *W.shape) = "
                f"{(n, *w.shape)}, got {tuple(g.shape)}."
            )
    return n


def _dtype(*trees: PyTree) -> Any:
    leaves = [jnp.asarray(x) for t in trees for x in jax.tree.leaves(t)]
    return jnp.result_type(*leaves, jnp.float32) if leaves else jnp.float32


def _combine(coefficients: Array, grads: PyTree) -> PyTree:
    return jax.tree.map(lambda g: jnp.tensordot(coefficients.astype(g.dtype), g, axes=1), grads)


def sgd_coefficients(lrs: Any, lam: Any) -> tuple[Array, Array]:
    """Plain SGD: ``(a_n, γ)`` with ``a_n = ∏ d_t`` and ``γ_i = −μ_i ∏_{j>i} d_j``.

    Args:
      lrs: per-step learning rates ``μ_{T−n} … μ_{T−1}``, oldest first, shape (n,).
      lam: the weight decay λ (the optimizer adds ``2λW``).
    """
    lrs = jnp.asarray(lrs)
    d = decay_factor(lrs, jnp.asarray(lam, lrs.dtype))
    # later[i] = ∏_{j > i} d_j (1 for the newest step).
    later = jnp.concatenate([jnp.cumprod(d[::-1])[::-1][1:], jnp.ones((1,), d.dtype)])
    return jnp.prod(d), -lrs * later


def forgetting_decomposition(w_start: PyTree, grads: PyTree, lrs: Any, lam: Any) -> Decomposition:
    """The paper's unrolled SGD identity with a learning-rate schedule (module docstring).

    ``W_T = ∏(1−2μ_tλ) W_{T−n} + U_{T,n}``,
    ``U_{T,n} = −Σ_k μ_{T−k} (∏_{t=T−k+1}^{T−1} (1−2μ_tλ)) ∇L_{T−k}``.

    Args:
      w_start: ``W_{T−n}``, a matrix or a pytree of matrices.
      grads: the data gradients ``∇L_{S_t}(W_t)``, t = T−n … T−1, stacked oldest first on
        a leading axis (same pytree structure as ``w_start``).
      lrs: the learning rates actually applied at those steps, shape (n,).
      lam: λ.

    Returns:
      A :class:`Decomposition`; ``.residual(W_T)`` gives the identity residual.
    """
    dtype = _dtype(w_start, grads)
    lrs = jnp.asarray(lrs, dtype)
    _check_window(w_start, grads, lrs)
    return _sgd_decomposition(w_start, grads, lrs, jnp.asarray(lam, dtype))


@jax.jit
def _sgd_decomposition(w_start, grads, lrs, lam):
    a, gamma = sgd_coefficients(lrs, lam)
    return Decomposition(
        decayed=jax.tree.map(lambda w: a.astype(w.dtype) * w, w_start),
        velocity_term=jax.tree.map(jnp.zeros_like, w_start),
        update=_combine(gamma, grads),
        coefficients=gamma,
        weight_coefficient=a,
        velocity_coefficient=jnp.zeros((), lrs.dtype),
    )


def momentum_transition(mu: Any, lam: Any, beta: Any, decoupled: bool = False) -> Array:
    """The 2×2 transition ``A_t`` of ``(W, v)`` for one step (module docstring)."""
    mu = jnp.asarray(mu)
    lam, beta = jnp.asarray(lam, mu.dtype), jnp.asarray(beta, mu.dtype)
    lower = jnp.zeros_like(lam) if decoupled else 2.0 * lam
    return jnp.array([[1.0 - 2.0 * mu * lam, -mu * beta], [lower, beta]], mu.dtype)


def momentum_coefficients(
    lrs: Any, lam: Any, beta: Any, decoupled: bool = False
) -> tuple[Array, Array, Array]:
    """``(a_n, b_n, γ)`` of ``W_T = a_n W_{T−n} + b_n v_{T−n} + Σ_i γ_i g_i`` (oldest first).

    One backward sweep over the window: ``r ← e₁ᵀ``; for t = T−1 … T−n,
    ``γ(t) = r·c_t`` and ``r ← r·A_t``; then ``(a_n, b_n) = r``.
    """
    lrs = jnp.asarray(lrs)

    def body(r, mu):
        gamma = -mu * r[0] + r[1]  # r · c_t with c_t = (−μ_t, 1)
        return r @ momentum_transition(mu, lam, beta, decoupled), gamma

    r, gamma = jax.lax.scan(body, jnp.array([1.0, 0.0], lrs.dtype), lrs, reverse=True)
    return r[0], r[1], gamma


def momentum_decomposition(
    w_start: PyTree,
    v_start: PyTree,
    grads: PyTree,
    lrs: Any,
    lam: Any,
    beta: Any,
    decoupled: bool = False,
) -> Decomposition:
    """The exact unrolled identity for SGD with momentum (module docstring).

    ``W_T = a_n W_{T−n} + b_n v_{T−n} + U_{T,n}`` for PyTorch-style momentum
    ``v ← βv + g + 2λW; W ← W − μ_t v`` (coupled, ``lowrank.optim`` default) or, with
    ``decoupled=True``, ``v ← βv + g; W ← W − μ_t(v + 2λW)``.

    Args:
      w_start: ``W_{T−n}`` (matrix or pytree).
      v_start: the momentum buffer before step T−n, ``v_{T−n}`` (same structure; the
        optimizer's ``trace``).
      grads: data gradients of steps T−n … T−1 stacked oldest first.
      lrs: applied learning rates of those steps, shape (n,).
      lam: λ.
      beta: momentum β (0 gives :func:`forgetting_decomposition`).
      decoupled: decay added after the momentum buffer.
    """
    dtype = _dtype(w_start, v_start, grads)
    lrs = jnp.asarray(lrs, dtype)
    _check_window(w_start, grads, lrs)
    lam, beta = jnp.asarray(lam, dtype), jnp.asarray(beta, dtype)
    return _momentum_decomposition(w_start, v_start, grads, lrs, lam, beta, decoupled)


@partial(jax.jit, static_argnames=("decoupled",))
def _momentum_decomposition(w_start, v_start, grads, lrs, lam, beta, decoupled):
    a, b, gamma = momentum_coefficients(lrs, lam, beta, decoupled)
    return Decomposition(
        decayed=jax.tree.map(lambda w: a.astype(w.dtype) * w, w_start),
        velocity_term=jax.tree.map(lambda v: b.astype(v.dtype) * v, v_start),
        update=_combine(gamma, grads),
        coefficients=gamma,
        weight_coefficient=a,
        velocity_coefficient=b,
    )


def momentum_forgetting_rate(mu: float, lam: float, beta: float, decoupled: bool = False) -> float:
    """Spectral radius of the constant-μ transition ``A``: the per-step rate replacing
    ``1 − 2μλ``. Coupled: ≈ ``1 − 2μλ/(1−β)`` for small μλ; decoupled: ``max(1−2μλ, β)``
    (but the weight coefficient alone stays ``(1−2μλ)^n``)."""
    a = np.array(
        [[1.0 - 2.0 * mu * lam, -mu * beta], [0.0 if decoupled else 2.0 * lam, beta]], np.float64
    )
    return float(np.max(np.abs(np.linalg.eigvals(a))))


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
        # running at once can deadlock XLA's CPU pool (DESIGN.md §6, lowrank.rank).
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


# ------------------------------------------------------------------ recording a window


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Window:
    """The last n training steps of selected weight matrices, oldest first.

    Attributes:
      weights: ``{path: (n, out, in)}``: ``W_{T−n} … W_{T−1}`` (before each step).
      velocities: ``{path: (n, out, in)}``: the momentum buffer before each step, or
        ``None`` when the optimizer has none.
      grads: ``{path: (n, out, in)}``: the data gradients of those steps.
      learning_rates: ``(n,)``: the learning rates applied at those steps.
    """

    weights: dict[str, Array]
    velocities: dict[str, Array] | None
    grads: dict[str, Array]
    learning_rates: Array

    def last(self, n: int) -> Window:
        """The last ``n`` steps of this window."""
        tail = lambda t: None if t is None else jax.tree.map(lambda x: x[-n:], t)
        return Window(tail(self.weights), tail(self.velocities), tail(self.grads),
                      self.learning_rates[-n:])  # fmt: skip


def coefficient_table(
    lrs: Any, lam: Any, beta: Any = 0.0, decoupled: bool = False
) -> tuple[Array, Array, Array]:
    """All windows at once: ``(a, b, γ)`` with ``W_T = a[i] W_i + b[i] v_i + Σ_{j≥i} γ_j g_j``.

    Index i runs over the window's steps oldest first, so ``i = N − n`` gives the
    n-step decomposition. γ does not depend on n: a gradient's coefficient depends only
    on the steps after it. Plain SGD (a Python ``beta == 0``) uses the closed form of
    :func:`sgd_coefficients`, momentum the backward sweep of :func:`momentum_coefficients`.
    """
    lrs = jnp.asarray(lrs)
    if isinstance(beta, (int, float)) and beta == 0:
        d = decay_factor(lrs, jnp.asarray(lam, lrs.dtype))
        _, gamma = sgd_coefficients(lrs, lam)
        return jnp.cumprod(d[::-1])[::-1], jnp.zeros_like(lrs), gamma

    def body(r, mu):
        gamma = -mu * r[0] + r[1]
        r = r @ momentum_transition(mu, lam, beta, decoupled)
        return r, (r, gamma)

    _, (r, gamma) = jax.lax.scan(body, jnp.array([1.0, 0.0], lrs.dtype), lrs, reverse=True)
    return r[:, 0], r[:, 1], gamma


@partial(jax.jit, static_argnames=("decoupled", "plain"))
def _decompose_window(window, lam, beta, decoupled, plain, n):
    beta = 0.0 if plain else beta  # a Python 0 selects the closed form
    a_all, b_all, gamma = coefficient_table(window.learning_rates, lam, beta, decoupled)
    size = window.learning_rates.shape[0]
    start = size - n
    gamma = jnp.where(jnp.arange(size) >= start, gamma, 0.0)
    take = lambda x: jax.lax.dynamic_index_in_dim(x, start, 0, keepdims=False)
    w0 = jax.tree.map(take, window.weights)
    v0 = jax.tree.map(jnp.zeros_like, w0) if window.velocities is None else (
        jax.tree.map(take, window.velocities))  # fmt: skip
    a, b = take(a_all), take(b_all)
    return Decomposition(
        decayed=jax.tree.map(lambda w: a.astype(w.dtype) * w, w0),
        velocity_term=jax.tree.map(lambda v: b.astype(v.dtype) * v, v0),
        update=_combine(gamma, window.grads),
        coefficients=gamma,
        weight_coefficient=a,
        velocity_coefficient=b,
    )


def decompose_window(
    window: Window,
    lam: float,
    beta: float = 0.0,
    decoupled: bool = False,
    n: int | None = None,
) -> Decomposition:
    """The forgetting decomposition of W_T over the last n steps of a recorded window.

    One compiled program serves every n (masks, not slices). Plain SGD (β = 0) uses the
    closed form of :func:`forgetting_decomposition`, momentum the recurrence of
    :func:`momentum_decomposition` with the recorded velocity ``v_{T−n}``.

    Args:
      window: a recorded window (``lowrank.train.train_and_record``).
      lam: λ.
      beta: momentum β of the run.
      decoupled: whether the run's decay was decoupled.
      n: window length, 1..N (default N, the whole window).

    Returns:
      A :class:`Decomposition` of ``{path: matrix}`` dicts. Its ``coefficients`` have
      length N, zero for the steps older than T−n.
    """
    size = window.learning_rates.shape[0]
    n = size if n is None else n
    if not 1 <= n <= size:
        raise ValueError(f"theory: n={n} must lie in 1..{size} (the recorded window).")
    if beta != 0 and window.velocities is None:
        raise ValueError("theory: β > 0 needs the momentum buffer, but none was recorded.")
    dtype = window.learning_rates.dtype
    return _decompose_window(
        window, jnp.asarray(lam, dtype), jnp.asarray(beta, dtype), decoupled, beta == 0,
        jnp.asarray(n, jnp.int32),
    )  # fmt: skip
