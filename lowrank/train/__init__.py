"""Pure training functions for one member; the sweep ``vmap``s them over members.

* :func:`train_step` ``(state, batch) → (state, metrics)``: one SGD step (μ, λ, β live
  in the state's optimizer state, set once by :func:`init_state`).
* :func:`train_epoch`: one ``lax.scan`` over all steps of an epoch, with shuffling,
  batching, standardization and augmentation on the device; :class:`HostEpoch` runs the
  same steps from a host loop (faster for conv nets on CPUs).
* :func:`evaluate`: loss and accuracy on a split, BatchNorm in evaluation mode.
* :func:`measure`: rank measures, singular values and norms of the weight matrices.
* :func:`represent`: the same rank measures of each measured layer's outputs on a probe
  batch (:mod:`~lowrank.train.represent`).

Modules: :mod:`~lowrank.train.step` (state, step, recording), :mod:`~lowrank.train.epoch`
(an epoch, scan or host loop), :mod:`~lowrank.train.evaluate` (evaluate, measure). This is
the only training code: the engine, ``experiments/`` and the theory checks all use it.

Static things (model, optimizer, configs) are bound with ``functools.partial``; everything
that varies across members (parameters, μ, λ, β, RNG) lives in the array state.
"""

from lowrank.train.epoch import HostEpoch, epoch_end, epoch_start, epoch_step, train_epoch
from lowrank.train.evaluate import evaluate, measure
from lowrank.train.represent import probe_indices, represent
from lowrank.train.step import (
    Hparams,
    InjectedLearningRate,
    Recording,
    TrainState,
    cast_tree,
    cross_entropy,
    data_loss_and_grad,
    init_state,
    state_from_variables,
    train_and_record,
    train_step,
)

__all__ = [
    "HostEpoch",
    "Hparams",
    "InjectedLearningRate",
    "Recording",
    "TrainState",
    "cast_tree",
    "cross_entropy",
    "data_loss_and_grad",
    "epoch_end",
    "epoch_start",
    "epoch_step",
    "evaluate",
    "init_state",
    "measure",
    "probe_indices",
    "represent",
    "state_from_variables",
    "train_and_record",
    "train_epoch",
    "train_step",
]
