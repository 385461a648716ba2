"""The forgetting decomposition of a run's last steps (plain SGD, momentum, decoupled decay)
and its recorded windows; the derivations are in the package docstring."""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
PyTree = Any


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
