"""An epoch of one member's steps with data, shuffling and augmentation on the device:
one ``lax.scan`` (:func:`train_epoch`) or a host loop of compiled steps (:class:`HostEpoch`)."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from lowrank import augment, data
from lowrank.train.step import Recording, TrainState, _record, _step, train_step

Array = jax.Array


def epoch_start(
    state: TrainState, train_images: Array, epoch: Array, *, batch_size: int
) -> tuple[Array, Array]:
    """The epoch's batches ``(steps, B)`` of example indices and its augmentation key.

    A fresh permutation from ``fold_in(state.rng, epoch)``; the last ``N mod batch_size``
    shuffled examples are dropped.
    """
    epoch_rng = jax.random.fold_in(jax.random.fold_in(state.rng, epoch), 2)
    perm_rng, aug_rng = jax.random.split(epoch_rng)
    order = data.epoch_permutation(perm_rng, train_images.shape[0], batch_size)
    return order, aug_rng


def epoch_step(
    state: TrainState,
    idx: Array,
    aug_rng: Array,
    i: Array,
    train_images: Array,
    train_labels: Array,
    *,
    model: nn.Module,
    tx: optax.GradientTransformation,
    mean: Any,
    std: Any,
    aug_cfg: ml_collections.ConfigDict,
    record: Recording | None = None,
) -> tuple[TrainState, Any]:
    """Step ``i`` of an epoch on the examples ``idx`` (gathered, standardized, augmented).

    Returns the state and the step metrics, or with ``record`` the state and
    ``(metrics, record)``.
    """
    images = data.standardize(train_images[idx], mean, std)
    images = augment.augment_batch(jax.random.fold_in(aug_rng, i), images, aug_cfg)
    batch = (images, train_labels[idx])
    if record is None:
        return train_step(state, batch, model=model, tx=tx)
    new, metrics, grads = _step(state, batch, model=model, tx=tx)
    return new, (metrics, _record(state, grads, record))


def epoch_end(state: TrainState, step_metrics: dict[str, Array]) -> dict[str, Array]:
    """Mean over steps of the step metrics, plus ``finite``: whether every weight,
    statistic and optimizer value is finite at the end of the epoch."""
    metrics = jax.tree_util.tree_map(jnp.mean, step_metrics)
    leaves = jax.tree_util.tree_leaves((state.params, state.batch_stats, state.opt_state))
    metrics["finite"] = jnp.all(
        jnp.stack(
            [jnp.all(jnp.isfinite(x)) for x in leaves if jnp.issubdtype(x.dtype, jnp.floating)]
        )
    )
    return metrics


def train_epoch(
    state: TrainState,
    train_images: Array,
    train_labels: Array,
    epoch: Array,
    *,
    model: nn.Module,
    tx: optax.GradientTransformation,
    batch_size: int,
    mean: Any,
    std: Any,
    aug_cfg: ml_collections.ConfigDict,
    record: Recording | None = None,
) -> tuple[TrainState, dict[str, Array]] | tuple[TrainState, dict[str, Array], dict]:
    """All steps of one epoch in one ``lax.scan``; data stay on the device.

    ``train_images`` are uint8 ``(N, H, W, C)``; batches as :func:`epoch_start`, steps as
    :func:`epoch_step`. Returns the state and :func:`epoch_end`'s metrics; with ``record``,
    also the window of the epoch's last ``record.steps`` steps (oldest first).
    :class:`HostEpoch` runs the same steps from a host loop.
    """
    order, aug_rng = epoch_start(state, train_images, epoch, batch_size=batch_size)
    step = functools.partial(epoch_step, model=model, tx=tx, mean=mean, std=std, aug_cfg=aug_cfg)

    def body(carry: TrainState, xs: tuple[Array, Array]):
        i, idx = xs
        return step(carry, idx, aug_rng, i, train_images, train_labels)

    def recorded(carry: TrainState, xs: tuple[Array, Array]):
        i, idx = xs
        return step(carry, idx, aug_rng, i, train_images, train_labels, record=record)

    steps = jnp.arange(order.shape[0])
    if record is None:
        state, metrics = jax.lax.scan(body, state, (steps, order))
    else:
        # Two scans: the first steps record nothing, the last n stack their records.
        n = record.steps
        state, early = jax.lax.scan(body, state, (steps[:-n], order[:-n]))
        state, (late, window) = jax.lax.scan(recorded, state, (steps[-n:], order[-n:]))
        metrics = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a, b]), early, late)
    metrics = epoch_end(state, metrics)
    if record is not None:
        return state, metrics, window
    return state, metrics


@dataclasses.dataclass(frozen=True)
class HostEpoch:
    """:func:`train_epoch` driven from the host: one compiled call per step.

    XLA:CPU runs convolutions inside a loop (the epoch's ``lax.scan``) many times slower
    than at the top level of a program (jax-ml/jax#12868; 8-9x for ResNet-18 here), while
    one call per step costs well under a millisecond: for conv nets on CPUs this is the
    faster epoch. The pieces are compiled :func:`epoch_start`, :func:`epoch_step` (and its
    recording variant) and :func:`epoch_end`, either for one member or ``vmap``ped over a
    leading members axis; ``steps_axis`` is where their results stack the steps (0 for one
    member, 1 behind a members axis), as ``lax.scan`` does.
    """

    start: Callable
    step: Callable
    end: Callable
    record_step: Callable | None = None
    record_steps: int = 0
    steps_axis: int = 0

    def __call__(self, state, train_images, train_labels, epoch):
        order, aug_rng = self.start(state, train_images, epoch)
        n = order.shape[self.steps_axis]
        first_recorded = n - self.record_steps if self.record_step is not None else n
        step_metrics, records = [], []
        for i in range(n):
            idx = jnp.take(order, i, axis=self.steps_axis)
            if i < first_recorded:
                state, m = self.step(state, idx, aug_rng, i, train_images, train_labels)
            else:
                state, (m, r) = self.record_step(state, idx, aug_rng, i, train_images, train_labels)
                records.append(r)
            step_metrics.append(m)
        stack = lambda *xs: jnp.stack(xs, axis=self.steps_axis)
        metrics = self.end(state, jax.tree_util.tree_map(stack, *step_metrics))
        if self.record_step is not None:
            return state, metrics, jax.tree_util.tree_map(stack, *records)
        return state, metrics
