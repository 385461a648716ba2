"""One member's training step: state, loss and gradient, the SGD step, recording.

* :func:`init_state`: a fresh member (its μ, λ, β go into the optimizer state, once);
* :func:`train_step` ``(state, batch) → (state, metrics)``: one step;
* :class:`Recording`, :func:`train_and_record`: the last steps' W, momentum buffer, data
  gradient and learning rate, for ``lowrank.theory``.
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
import optax

from lowrank import optim, rank

Array = jax.Array


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
    rng: Array,
    hparams: Hparams,
    *,
    model: nn.Module,
    tx: optax.GradientTransformation,
    input_shape: tuple[int, ...],
) -> TrainState:
    """A fresh member: parameters from ``rng``, optimizer state holding its μ, λ, β
    (``tx`` from ``lowrank.optim.make_optimizer``; they live nowhere else)."""
    init_rng, dropout_rng, train_rng = jax.random.split(rng, 3)
    x = jnp.zeros((1, *input_shape), jnp.float32)
    variables = model.init({"params": init_rng, "dropout": dropout_rng}, x, train=False)
    params = variables["params"]
    opt_state = optim.with_hparams(
        tx.init(params),
        learning_rate=hparams.learning_rate,
        weight_decay=hparams.weight_decay,
        momentum=hparams.momentum,
    )
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        batch_stats=variables.get("batch_stats", {}),
        opt_state=opt_state,
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


def _step(state, batch, *, model, tx):
    """One SGD step; also returns the data gradient (for recording)."""
    images, labels = batch
    dropout_rng = jax.random.fold_in(jax.random.fold_in(state.rng, state.step), 1)
    (loss, (logits, new_stats)), grads = data_loss_and_grad(
        state.params, state.batch_stats, images, labels, dropout_rng, model=model
    )
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
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
    *,
    model: nn.Module,
    tx: optax.GradientTransformation,
) -> tuple[TrainState, dict[str, Array]]:
    """One SGD step on a standardized, augmented batch ``(images, labels)``.

    Returns the new state and health numbers: loss, accuracy, gradient and parameter norms.
    """
    new_state, metrics, _ = _step(state, batch, model=model, tx=tx)
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
    # (grads, opt_state before the step) → what the step applies in place of the gradient
    # (AdamW: Adam's direction, lowrank.optim.adamw_direction); None: the data gradient.
    direction: Callable[[Any, Any], Any] | None = None


def _record(state: TrainState, grads: Any, rec: Recording) -> dict[str, Any]:
    selection = dict(rec.selection)
    trace = optax.tree_utils.tree_get(state.opt_state, "trace")  # None: no momentum buffer
    return {
        "weights": rank.weight_matrices(state.params, **selection),
        "velocities": None if trace is None else rank.weight_matrices(trace, **selection),
        "grads": rank.weight_matrices(
            grads if rec.direction is None else rec.direction(grads, state.opt_state), **selection
        ),
        "learning_rates": rec.learning_rate(state.opt_state),
    }


@functools.partial(jax.jit, static_argnames=("model", "tx", "record"))
def train_and_record(
    state: TrainState,
    images: Array,
    labels: Array,
    batches: Array,
    *,
    model: nn.Module,
    tx: optax.GradientTransformation,
    record: Recording,
) -> tuple[TrainState, dict[str, Any], Array]:
    """``len(batches)`` steps on given batches of standardized ``images`` (no
    augmentation), recording the last ``record.steps`` of them; one compiled program.

    Everything recorded is what the optimizer saw: ``W_t`` and the momentum buffer before
    step t, the data gradient of step t and the learning rate it applied. The first steps
    record nothing and run at full speed.

    Returns:
      ``(state_T, window, losses)``: ``window`` holds ``weights``, ``velocities`` (None
      without a momentum buffer), ``grads`` and ``learning_rates`` (the fields of
      ``lowrank.theory.Window``), oldest first.
    """
    n = record.steps
    if not 1 <= n <= batches.shape[0]:
        raise ValueError(
            f"train: record.steps={n} must lie in 1..{batches.shape[0]} (the number of steps)."
        )

    def plain(carry, idx):
        carry, metrics, _ = _step(carry, (images[idx], labels[idx]), model=model, tx=tx)
        return carry, metrics["loss"]

    def recorded(carry, idx):
        new, metrics, grads = _step(carry, (images[idx], labels[idx]), model=model, tx=tx)
        return new, (_record(carry, grads, record), metrics["loss"])

    early = jnp.zeros((0,), jnp.float32)
    if batches.shape[0] > n:  # static: no first loop to compile when all steps are recorded
        state, early = jax.lax.scan(plain, state, batches[:-n])
    state, (window, late) = jax.lax.scan(recorded, state, batches[-n:])
    return state, window, jnp.concatenate([early.astype(late.dtype), late])


def state_from_variables(
    variables: dict[str, Any], opt_state: Any, rng: Array | None = None
) -> TrainState:
    """A :class:`TrainState` at step 0 from Flax ``variables`` and an optimizer state
    (``rng`` feeds dropout; default ``PRNGKey(0)``)."""
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=variables["params"],
        batch_stats=variables.get("batch_stats", {}),
        opt_state=opt_state,
        rng=jax.random.PRNGKey(0) if rng is None else rng,
    )


def cast_tree(tree: Any, dtype: Any) -> Any:
    """Casts every floating leaf of ``tree`` (e.g. model variables to float64 under x64)."""
    return jax.tree.map(
        lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree
    )
