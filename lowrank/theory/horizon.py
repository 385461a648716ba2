"""The forgetting horizon: how far a run has come in forgetting what the gradients stopped
feeding.

A direction of W that no gradient feeds any more shrinks at every step by the decay factor:
by ``Π_t (1 − 2μ_tλ)`` over plain SGD's steps. Since ``ln(1 − x) ≈ −x`` for small x,
``Π_t (1 − 2μ_tλ) ≈ e^{−h}`` with the **horizon**

    h = 2λ Σ_t μ_t          (the sum over the steps taken; −ln Π_t(1 − 2μ_tλ) ≥ h).

With momentum β and coupled decay (PyTorch's SGD, ``lowrank.optim``'s default) the pair
(W, v) forgets at the rate of the larger eigenvalue of the transition
``[[1−2μλ, −μβ], [2λ, β]]``, ``ρ ≈ 1 − 2μλ/(1−β)`` when ``2μλ ≪ (1−β)²``
(``decomposition.momentum_forgetting_rate``): momentum at μ forgets like plain SGD at
``μ/(1−β)``, so ``h = 2λ Σ_t μ_t / (1−β)``. With decoupled decay the weight coefficient is
``Π_t(1 − 2μ_tλ)`` exactly, so ``h = 2λ Σ_t μ_t`` whatever β. AdamW
(``optim.name = "adamw"``: ``W ← (1 − 2μ_tλ)W − μ_t u_t``) is the decoupled case with
Adam's update ``u_t`` in place of the gradient, so the same h. Adam with coupled L2 passes
``2λW`` through Adam's per-coordinate normalization, which moves each weight by about μ
per step whatever its size: no factor shrinks a direction, so there is no horizon (the
records say None).

The ε-rank (σ_i/σ_max > ε) can fall only once an unfed direction has shrunk below ε
relative to the fed ones: once ``e^{−h} < ε``, i.e. ``h > ln(1/ε)`` (6.9 at ε = 1e-3). Theorem
3.3's window ``n ≈ log(2/ε)/(2μλ)`` is the same condition at constant μ.
"""

from __future__ import annotations

import math


def horizon_rate(lam: float, beta: float = 0.0, decoupled: bool = False) -> float:
    """``h`` per unit of summed learning rate: ``2λ``, or ``2λ/(1−β)`` with coupled momentum.

    Raises:
      ValueError: λ < 0 or β outside [0, 1).
    """
    if lam < 0 or not 0 <= beta < 1:
        raise ValueError(f"theory: horizon needs λ ≥ 0 and 0 ≤ β < 1 (got λ={lam}, β={beta}).")
    return 2.0 * lam if decoupled else 2.0 * lam / (1.0 - beta)


def horizon(
    learning_rate_sum: float, lam: float, beta: float = 0.0, decoupled: bool = False
) -> float:
    """The forgetting horizon ``h`` after steps whose learning rates sum to
    ``learning_rate_sum`` (``Σ_t μ_t``, schedule included; see the module docstring)."""
    return horizon_rate(lam, beta, decoupled) * float(learning_rate_sum)


def horizon_needed(epsilon: float) -> float:
    """``ln(1/ε)``: the horizon below which the ε-rank cannot have fallen."""
    if not 0 < epsilon < 1:
        raise ValueError(f"theory: ε={epsilon} must lie in (0, 1).")
    return math.log(1.0 / epsilon)
