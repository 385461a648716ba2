"""Pure training functions for one member; the sweep ``vmap``s them over members.

* :func:`train_step` ``(state, batch, hparams) → (state, metrics)``: one SGD step.
* :func:`train_epoch`: one ``lax.scan`` over all steps of an epoch, with shuffling,
  batching, standardization and augmentation on the device; :class:`HostEpoch` runs the
  same steps from a host loop (faster for conv nets on CPUs).
* :func:`evaluate`: loss and accuracy on a split, BatchNorm in evaluation mode.
* :func:`measure`: rank measures, singular values and norms of the weight matrices.

Static things (model, optimizer factory, configs) are bound with ``functools.partial``;
everything that varies across members (parameters, μ, λ, β, RNG) is an array argument.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from lowrank import augment, data, rank

Array = jax.Array
OptimizerFactory = Callable[..., optax.GradientTransformation]


@flax.struct.dataclass
class Hparams:
    """One member's traced hyperparameters."""

    learning_rate: Array  # μ
    weight_decay: Array  # λ (the paper's: the optimizer adds 2λW)
    momentum: Array  # β


@flax.struct.dataclass
class TrainState:
    """Everything one member carries from step to step."""

    step: Array
    params: Any
    batch_stats: Any
    opt_state: optax.OptState
    rng: Array  # the member's base key; per-step keys are fold_in(rng, step)


def init_state(
    rng: Array, hparams: Hparams, *, model: nn.Module, tx: OptimizerFactory, input_shape
) -> TrainState:
    """A fresh member: parameters from ``rng``, optimizer state holding μ, λ, β."""
    init_rng, dropout_rng, train_rng = jax.random.split(rng, 3)
    x = jnp.zeros((1, *input_shape), jnp.float32)
    variables = model.init({"params": init_rng, "dropout": dropout_rng}, x, train=False)
    params = variables["params"]
    optimizer = tx(
        learning_rate=hparams.learning_rate,
        weight_decay=hparams.weight_decay,
        momentum=hparams.momentum,
    )
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        batch_stats=variables.get("batch_stats", {}),
        opt_state=optimizer.init(params),
        rng=train_rng,
    )


def _variables(params: Any, batch_stats: Any) -> dict[str, Any]:
    return {"params": params, "batch_stats": batch_stats} if batch_stats else {"params": params}


def cross_entropy(logits: Array, labels: Array) -> Array:
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def data_loss_and_grad(
    params: Any, batch_stats: Any, images: Array, labels: Array, dropout_rng: Array, *, model
) -> tuple[tuple[Array, tuple[Array, Any]], Any]:
    """Mean cross-entropy of a batch (no decay term) and its gradient, BN in training mode.

    Returns ``((loss, (logits, new_batch_stats)), grads)``.
    """

    def loss_fn(p):
        if batch_stats:
            logits, updates = model.apply(
                _variables(p, batch_stats),
                images,
                train=True,
                rngs={"dropout": dropout_rng},
                mutable=["batch_stats"],
            )
            new_stats = updates["batch_stats"]
        else:
            logits = model.apply({"params": p}, images, train=True, rngs={"dropout": dropout_rng})
            new_stats = batch_stats
        return cross_entropy(logits, labels), (logits, new_stats)

    return jax.value_and_grad(loss_fn, has_aux=True)(params)


def _with_hparams(opt_state: Any, hparams: Hparams) -> Any:
    """Writes the member's μ, λ, β into the injected-hyperparameter state."""
    hp = dict(opt_state.hyperparams)
    hp["learning_rate"] = jnp.asarray(hparams.learning_rate, hp["learning_rate"].dtype)
    hp["weight_decay"] = jnp.asarray(hparams.weight_decay, hp["weight_decay"].dtype)
    hp["momentum"] = jnp.asarray(hparams.momentum, hp["momentum"].dtype)
    return opt_state._replace(hyperparams=hp)


def _step(state, batch, hparams, *, model, tx):
    """One SGD step; also returns the data gradient (for recording)."""
    images, labels = batch
    dropout_rng = jax.random.fold_in(jax.random.fold_in(state.rng, state.step), 1)
    (loss, (logits, new_stats)), grads = data_loss_and_grad(
        state.params, state.batch_stats, images, labels, dropout_rng, model=model
    )
    # The transformation reads μ, λ, β from opt_state.hyperparams; the values passed here
    # only build its structure.
    optimizer = tx(learning_rate=0.0, weight_decay=0.0, momentum=0.0)
    opt_state = _with_hparams(state.opt_state, hparams)
    updates, opt_state = optimizer.update(grads, opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {
        "loss": loss,
        "accuracy": jnp.mean(jnp.argmax(logits, -1) == labels),
        "grad_norm": optax.tree.norm(grads),
        "param_norm": optax.tree.norm(params),
    }
    new_state = state.replace(
        step=state.step + 1, params=params, batch_stats=new_stats, opt_state=opt_state
    )
    return new_state, metrics, grads


def train_step(
    state: TrainState,
    batch: tuple[Array, Array],
    hparams: Hparams,
    *,
    model: nn.Module,
    tx: OptimizerFactory,
) -> tuple[TrainState, dict[str, Array]]:
    """One SGD step on a standardized, augmented batch ``(images, labels)``.

    Returns the new state and health numbers: loss, accuracy, gradient and parameter norms.
    """
    new_state, metrics, _ = _step(state, batch, hparams, model=model, tx=tx)
    return new_state, metrics


@dataclasses.dataclass(frozen=True)
class InjectedLearningRate:
    """The learning rate a ``lowrank.optim`` optimizer applies at its next step.

    ``opt_state.hyperparams["learning_rate"] · multiplier(opt_state.count)``: μ is read
    from the state (so one compiled program serves every μ, λ, β of a sweep) and the step
    from the optimizer's own counter (so a continued state keeps its schedule position).

    Attributes:
      multiplier: the schedule, ``lowrank.optim.lr_multiplier(...)``.
    """

    multiplier: Callable[[Array], Array]

    def __call__(self, opt_state: Any) -> Array:
        """μ_t for the step the optimizer state is about to take."""
        mu = jnp.asarray(opt_state.hyperparams["learning_rate"])
        return mu * jnp.asarray(self.multiplier(opt_state.count), mu.dtype)


@dataclasses.dataclass(frozen=True)
class Recording:
    """Record the last ``steps`` steps of an epoch (static: part of the compiled program).

    For each selected weight matrix: ``W_t`` and the momentum buffer before step t and the
    data gradient of step t, plus the learning rate μ_t applied (``lowrank.theory.Window``
    layout). Memory per member: ``3·steps·Σ_l out_l·in_l`` numbers.
    """

    steps: int
    learning_rate: Callable[[Any], Array]  # opt_state → μ_t of its next step
    selection: tuple = ()  # sorted (key, value) items for rank.weight_matrices


def _record(state: TrainState, grads: Any, rec: Recording) -> dict[str, Any]:
    selection = dict(rec.selection)
    trace = optax.tree_utils.tree_get(state.opt_state, "trace")
    return {
        "weights": rank.weight_matrices(state.params, **selection),
        "velocities": rank.weight_matrices(trace, **selection),
        "grads": rank.weight_matrices(grads, **selection),
        "learning_rates": rec.learning_rate(state.opt_state),
    }


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
    hparams: Hparams,
    idx: Array,
    aug_rng: Array,
    i: Array,
    train_images: Array,
    train_labels: Array,
    *,
    model: nn.Module,
    tx: OptimizerFactory,
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
        return train_step(state, batch, hparams, model=model, tx=tx)
    new, metrics, grads = _step(state, batch, hparams, model=model, tx=tx)
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
    hparams: Hparams,
    train_images: Array,
    train_labels: Array,
    epoch: Array,
    *,
    model: nn.Module,
    tx: OptimizerFactory,
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
        return step(carry, hparams, idx, aug_rng, i, train_images, train_labels)

    def recorded(carry: TrainState, xs: tuple[Array, Array]):
        i, idx = xs
        return step(carry, hparams, idx, aug_rng, i, train_images, train_labels, record=record)

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

    def __call__(self, state, hparams, train_images, train_labels, epoch):
        order, aug_rng = self.start(state, train_images, epoch)
        n = order.shape[self.steps_axis]
        first_recorded = n - self.record_steps if self.record_step is not None else n
        step_metrics, records = [], []
        for i in range(n):
            idx = jnp.take(order, i, axis=self.steps_axis)
            if i < first_recorded:
                state, m = self.step(state, hparams, idx, aug_rng, i, train_images, train_labels)
            else:
                state, (m, r) = self.record_step(
                    state, hparams, idx, aug_rng, i, train_images, train_labels
                )
                records.append(r)
            step_metrics.append(m)
        stack = lambda *xs: jnp.stack(xs, axis=self.steps_axis)
        metrics = self.end(state, jax.tree_util.tree_map(stack, *step_metrics))
        if self.record_step is not None:
            return state, metrics, jax.tree_util.tree_map(stack, *records)
        return state, metrics


def evaluate(
    state: TrainState,
    images: Array,
    labels: Array,
    *,
    model: nn.Module,
    batch_size: int,
    mean: Any,
    std: Any,
) -> dict[str, Array]:
    """Mean loss and accuracy over a whole split (BatchNorm in evaluation mode).

    The split is padded to a multiple of ``batch_size``; padded examples are masked out.
    """
    n = images.shape[0]
    steps = -(-n // batch_size)
    pad = steps * batch_size - n
    idx = jnp.concatenate([jnp.arange(n), jnp.zeros((pad,), jnp.int32)]).reshape(steps, -1)
    valid = (jnp.arange(steps * batch_size) < n).reshape(steps, -1)
    variables = _variables(state.params, state.batch_stats)

    def body(totals, xs):
        batch_idx, mask = xs
        x = data.standardize(images[batch_idx], mean, std)
        logits = model.apply(variables, x, train=False)
        y = labels[batch_idx]
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, y)
        correct = jnp.argmax(logits, -1) == y
        return (
            totals[0] + jnp.sum(jnp.where(mask, losses, 0.0)),
            totals[1] + jnp.sum(jnp.where(mask, correct, False)),
        ), None

    (loss_sum, correct), _ = jax.lax.scan(body, (0.0, 0), (idx, valid))
    return {"loss": loss_sum / n, "accuracy": correct / n}


def measure(
    params: Any,
    *,
    epsilons: tuple[float, ...],
    normalization: str,
    method: str = "svd",
    selection: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Rank measures, singular values and Frobenius norms of the selected weight matrices."""
    selection = selection or {}
    matrices = rank.weight_matrices(params, **selection)
    spec = rank.spectra_of(matrices, method=method)
    out = rank.measures(spec, epsilons, normalization)
    out["singular_values"] = dict(spec.values)
    out["frobenius_norm"] = {p: jnp.sqrt(jnp.sum(s**2)) for p, s in spec.values.items()}
    return out
