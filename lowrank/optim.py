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


def default_optim_config() -> ml_collections.ConfigDict:
    """Optimizer settings shared by all members (μ, λ, β themselves come from the grid)."""
    c = ml_collections.ConfigDict()
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
    decay = optax.add_decayed_weights(2.0 * weight_decay, mask)
    trace = optax.trace(decay=momentum)
    parts = [trace, decay] if decoupled else [decay, trace]
    return optax.chain(
        *parts,
        optax.scale_by_learning_rate(learning_rate),
        optax.scale_by_schedule(multiplier),
    )


def make_optimizer(
    cfg: ml_collections.ConfigDict, steps_per_epoch: int
) -> optax.GradientTransformation:
    """The optimizer of a compile group: one transformation for all its members.

    μ, λ, β are injected hyperparameters: they live only in the optimizer state, which
    :func:`with_hparams` fills with one member's values after ``init`` (under ``vmap``,
    each member's state holds its own), so one compiled program serves every member.
    """
    multiplier = lr_multiplier(cfg.schedule, cfg.milestones, cfg.factor, steps_per_epoch)
    injected = optax.inject_hyperparams(sgd_l2, static_args=("multiplier", "mask", "decoupled"))
    return injected(
        learning_rate=0.0,
        weight_decay=0.0,
        momentum=0.0,
        multiplier=multiplier,
        mask=decay_mask(cfg.decay_mask),
        decoupled=cfg.decoupled,
    )


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
