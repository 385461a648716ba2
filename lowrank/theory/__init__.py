"""The paper's theory (§3) as functions: decay factors, the forgetting decomposition,
the forgetting horizon (:mod:`~lowrank.theory.horizon`), Lemma 3.1 ranks, Lemma 3.2
distances and bounds, Theorem 3.3 rank bounds.

Every function works on single matrices and on the ``{path: matrix}`` dicts of
``lowrank.rank.weight_matrices`` (any pytree: the coefficients are shared by all leaves).
Notation: ``g_t = ∇L_{S_t}(W_t)`` is the *data* gradient of step t (mean loss over the
minibatch, without the decay term); ``μ_t`` the learning rate applied at step t (μ times
the schedule multiplier); λ the paper's λ (the optimizer adds ``2λW``, ``lowrank.optim``).

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

from lowrank.theory.bounds import (
    NORMS,
    gradient_rank_bounds,
    lemma32,
    lemma32_bound,
    matrix_norm,
    nearest_low_rank_distance,
    theorem33_rank_bound,
    theorem33_window,
)
from lowrank.theory.decomposition import (
    Decomposition,
    Window,
    coefficient_table,
    decay_factor,
    decay_product,
    decompose_window,
    forgetting_decomposition,
    identity_residual,
    momentum_coefficients,
    momentum_decomposition,
    momentum_forgetting_rate,
    momentum_transition,
    sgd_coefficients,
)
from lowrank.theory.horizon import horizon, horizon_needed, horizon_rate

__all__ = [
    "NORMS",
    "Decomposition",
    "Window",
    "coefficient_table",
    "decay_factor",
    "decay_product",
    "decompose_window",
    "forgetting_decomposition",
    "gradient_rank_bounds",
    "horizon",
    "horizon_needed",
    "horizon_rate",
    "identity_residual",
    "lemma32",
    "lemma32_bound",
    "matrix_norm",
    "momentum_coefficients",
    "momentum_decomposition",
    "momentum_forgetting_rate",
    "momentum_transition",
    "nearest_low_rank_distance",
    "sgd_coefficients",
    "theorem33_rank_bound",
    "theorem33_window",
]
