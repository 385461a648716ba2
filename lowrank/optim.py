"""SGD with the paper's L2 weight decay, as an optax chain with per-member hyperparameters.

The paper's step is ``W ← W − μ(∇L_batch(W) + 2λW) = (1 − 2μλ)W − μ∇L_batch(W)``: λ here is
the paper's λ and the optimizer adds ``2λW`` to the gradient. PyTorch's
``SGD(weight_decay=w)`` adds ``w·W``, so it corresponds to ``λ = w/2`` here.

μ, λ and the momentum β are injected hyperparameters (``optax.inject_hyperparams``): they
live in the optimizer state as arrays, so a sweep ``vmap``s over them in one program.
The learning-rate schedule is a multiplier of μ shared by all members of a compile group.

With momentum the update follows PyTorch: ``v ← βv + g; W ← W − μ_t v``, where ``g`` is the
data gradient plus ``2λW`` (coupled, the default) or, with ``decoupled=True``, ``2λW`` is
added after the momentum buffer (``W ← W − μ_t(v + 2λW)``), so the decay never enters the
velocity. Without momentum both are the same step.

``optim.name`` chooses the update that replaces the gradient step (β must then be 0; Adam's
own β1, β2, ε are ``optim.adam_b1``, ``adam_b2``, ``adam_eps``, shared by a compile group):

* ``"adam"``: coupled L2, ``g + 2λW`` goes into Adam's moments (PyTorch's
  ``Adam(weight_decay=2λ)``). Adam's per-coordinate scaling then rescales the decay too, so
  ``W`` no longer shrinks by ``(1 − 2μλ)`` per step: no forgetting horizon, no identity.
* ``"adamw"``: decoupled, ``W ← W − μ_t(u_t + 2λW) = (1 − 2μ_tλ)W − μ_t u_t`` with
  ``u_t`` Adam's update of the data gradient: the paper's shrink and horizon hold with
  ``u_t`` in place of the gradient. In optax's ``adamw(learning_rate=μ, weight_decay=w)``
  and PyTorch's ``AdamW(lr=μ, weight_decay=w)`` the step is ``W ← W − μ(u + wW)``: the
  paper's λ is ``w/2``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from lowrank.rank import path_str

DECAY_MASKS = ("all", "kernels")
SCHEDULES = ("constant", "piecewise")
OPTIMIZERS = ("sgd", "adam", "adamw")


def default_optim_config() -> ml_collections.ConfigDict:
    """Optimizer settings shared by all members (μ, λ, β themselves come from the grid)."""
    c = ml_collections.ConfigDict()
    c.name = "sgd"  # "sgd" (the paper's) | "adam" (coupled L2) | "adamw" (decoupled)
    c.adam_b1 = 0.9  # Adam's first-moment decay β1 (name "adam" / "adamw" only)
    c.adam_b2 = 0.999  # Adam's second-moment decay β2
    c.adam_eps = 1e-8  # Adam's ε (added to the root of the second moment)
    c.schedule = "piecewise"  # "constant" | "piecewise": μ·factor^(milestones passed)
    c.milestones = (60, 100, 200)  # epochs at which μ is multiplied by `factor` (paper)
    c.factor = 0.1  # paper: ×0.1 (the authors' code uses ×0.2)
    c.decay_mask = "all"  # "all" parameters (paper's λ‖W‖², authors' code) | "kernels"
    c.decoupled = False  # True: decay added after the momentum buffer (AdamW-style)
    return c


def lr_multiplier(
    schedule: str, milestones: Sequence[int], factor: float, steps_per_epoch: int
) -> Callable[[jax.Array], jax.Array]:
    """Step → multiplier of μ. Piecewise: ``factor ** (number of milestones reached)``.

    The powers of ``factor`` are computed in Python (float64) and returned in JAX's
    default float type when traced: float64 under ``jax_enable_x64``, so a float64 run
    follows its schedule to float64 precision (optax casts the multiplier to each
    update's dtype).
    """
    if schedule == "constant":
        return lambda step: jnp.ones(jnp.shape(step), jnp.result_type(float))
    if schedule != "piecewise":
        raise ValueError(f"optim.schedule={schedule!r}; choose one of {SCHEDULES}.")
    bounds = [m * steps_per_epoch for m in milestones]
    powers = np.asarray([float(factor) ** k for k in range(len(milestones) + 1)], np.float64)

    def multiplier(step: jax.Array) -> jax.Array:
        step = jnp.asarray(step)
        passed = (
            jnp.sum(step[..., None] >= jnp.asarray(bounds, step.dtype), axis=-1) if bounds else 0
        )
        return jnp.asarray(powers, jnp.result_type(float))[passed]

    return multiplier


def multiplier_sum(
    schedule: str, milestones: Sequence[int], factor: float, steps_per_epoch: int, epochs: int
) -> float:
    """``Σ_t multiplier(t)`` over the first ``epochs`` epochs' steps, in Python floats (the
    multiplier changes only at epoch boundaries): ``μ`` times it is ``Σ_t μ_t``."""
    if schedule == "constant":
        return float(steps_per_epoch * epochs)
    edges = [0, *sorted(min(m, epochs) for m in milestones), epochs]
    spans = [max(0, b - a) for a, b in itertools.pairwise(edges)]
    return float(steps_per_epoch * sum(n * float(factor) ** k for k, n in enumerate(spans)))


def decay_mask(kind: str) -> Callable[[Any], Any] | None:
    """Which leaves get weight decay: ``None`` (all) or a mask of leaves named ``kernel``."""
    if kind == "all":
        return None
    if kind != "kernels":
        raise ValueError(f"optim.decay_mask={kind!r}; choose one of {DECAY_MASKS}.")

    def mask(params: Any) -> Any:
        return jax.tree_util.tree_map_with_path(
            lambda p, _: path_str(p).split("/")[-1] in ("kernel", "weight"), params
        )

    return mask


def sgd_l2(
    learning_rate: float | jax.Array,
    weight_decay: float | jax.Array,
    momentum: float | jax.Array,
    *,
    multiplier: Callable[[jax.Array], jax.Array],
    mask: Callable[[Any], Any] | None = None,
    decoupled: bool = False,
) -> optax.GradientTransformation:
    """``add_decayed_weights(2λ)`` + SGD(μ·schedule, momentum β) (see module docstring)."""
    trace = optax.trace(decay=momentum)
    return _with_decay(trace, weight_decay, mask, decoupled, learning_rate, multiplier)


def _with_decay(direction, weight_decay, mask, decoupled, learning_rate, multiplier):
    """``direction`` (momentum or Adam) with the decay 2λW before it (coupled) or after
    it (decoupled), then × μ·schedule."""
    decay = optax.add_decayed_weights(2.0 * weight_decay, mask)
    parts = [direction, decay] if decoupled else [decay, direction]
    return optax.chain(
        *parts,
        optax.scale_by_learning_rate(learning_rate),
        optax.scale_by_schedule(multiplier),
    )


def adam_l2(
    learning_rate: float | jax.Array,
    weight_decay: float | jax.Array,
    momentum: float | jax.Array,
    *,
    multiplier: Callable[[jax.Array], jax.Array],
    mask: Callable[[Any], Any] | None = None,
    decoupled: bool = False,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
) -> optax.GradientTransformation:
    """Adam with the paper's decay 2λW, coupled (into the moments) or ``decoupled``
    (AdamW); ``momentum`` is unused (validated to be 0) and kept for one signature."""
    del momentum
    adam = optax.scale_by_adam(b1=b1, b2=b2, eps=eps)
    return _with_decay(adam, weight_decay, mask, decoupled, learning_rate, multiplier)


def make_optimizer(
    cfg: ml_collections.ConfigDict, steps_per_epoch: int
) -> optax.GradientTransformation:
    """The optimizer of a compile group: one transformation for all its members.

    μ, λ, β are injected hyperparameters: they live only in the optimizer state, which
    :func:`with_hparams` fills with one member's values after ``init`` (under ``vmap``,
    each member's state holds its own), so one compiled program serves every member.
    """
    multiplier = lr_multiplier(cfg.schedule, cfg.milestones, cfg.factor, steps_per_epoch)
    name = cfg.get("name", "sgd")
    if name not in OPTIMIZERS:
        raise ValueError(f"optim.name={name!r}; choose one of {OPTIMIZERS}.")
    static = ("multiplier", "mask", "decoupled")
    extra: dict[str, Any] = {"decoupled": cfg.decoupled}
    factory = sgd_l2
    if name != "sgd":
        factory, static = adam_l2, (*static, "b1", "b2", "eps")
        extra = {"decoupled": name == "adamw", "b1": float(cfg.adam_b1),
                 "b2": float(cfg.adam_b2), "eps": float(cfg.adam_eps)}  # fmt: skip
    injected = optax.inject_hyperparams(factory, static_args=static)
    return injected(
        learning_rate=0.0,
        weight_decay=0.0,
        momentum=0.0,
        multiplier=multiplier,
        mask=decay_mask(cfg.decay_mask),
        **extra,
    )


def adamw_direction(cfg: ml_collections.ConfigDict) -> Callable[[Any, Any], Any]:
    """AdamW's direction u_t of a step, from the step's data gradient and the optimizer
    state before it: the step is ``W_{t+1} = (1 − 2μ_tλ)W_t − μ_t u_t`` (the forgetting
    identity with u in place of the gradient). Recomputed from Adam's moments by optax's
    own ``scale_by_adam``, independently of the weights."""
    adam = optax.scale_by_adam(
        b1=float(cfg.adam_b1), b2=float(cfg.adam_b2), eps=float(cfg.adam_eps)
    )

    def is_adam(x: Any) -> bool:
        return isinstance(x, optax.ScaleByAdamState)

    def direction(grads: Any, opt_state: Any) -> Any:
        leaves = jax.tree_util.tree_leaves(opt_state, is_leaf=is_adam)
        (before,) = [s for s in leaves if is_adam(s)]
        return adam.update(grads, before)[0]

    return direction


def is_decoupled(cfg: ml_collections.ConfigDict) -> bool:
    """Whether the decay bypasses the update's transformation (AdamW, or SGD's option)."""
    return cfg.get("name", "sgd") == "adamw" or bool(cfg.decoupled)


def with_hparams(opt_state: Any, *, learning_rate: Any, weight_decay: Any, momentum: Any) -> Any:
    """``opt_state`` of :func:`make_optimizer` holding one member's μ, λ, β (in the dtype
    its hyperparameters already have: float64 under x64)."""
    hp = dict(opt_state.hyperparams)
    for name, value in (
        ("learning_rate", learning_rate),
        ("weight_decay", weight_decay),
        ("momentum", momentum),
    ):
        hp[name] = jnp.asarray(value, hp[name].dtype)
    return opt_state._replace(hyperparams=hp)
