"""How a compile group's one-member functions run over its members, devices and hosts.

* :class:`OverMembers`: ``vmap`` (one program over all members, sharded over the devices)
  or ``loop`` (the one-member program called for each member in turn, on one device),
  behind one interface (``sweep.vectorize``);
* :func:`epoch_function`: an epoch as one ``lax.scan`` or a host loop of compiled steps
  (``train.epoch_loop``), over members as :class:`OverMembers` does it;
* the members mesh, host arrays → sharded global arrays and back, and joining several
  hosts (``jax.distributed``).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from lowrank import models, train

log = logging.getLogger(__name__)


def initialize_hosts(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> None:
    """Joins this process to a multi-host run (``jax.distributed.initialize``).

    With no arguments JAX detects the cluster itself (SLURM, Open MPI, TPU pods, ...);
    otherwise give all three. Must run before any other JAX call. On CPUs the processes
    exchange results through gloo collectives.
    """
    # Only the CPU backend reads this; GPUs use NCCL.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=coordinator_address,
        num_processes=num_processes,
        process_id=process_id,
    )
    log.info(
        "process %d of %d: %d local / %d global devices",
        jax.process_index(),
        jax.process_count(),
        jax.local_device_count(),
        jax.device_count(),
    )


def member_mesh() -> jax.sharding.Mesh:
    """A 1-D mesh over all devices (of all processes): the members axis is split on it."""
    return jax.sharding.Mesh(np.asarray(jax.devices()), ("members",))


def shard(tree: Any, sharding: jax.sharding.Sharding) -> Any:
    """Host arrays → global arrays with ``sharding`` (works with several processes too)."""

    def put(x):
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])

    return jax.tree_util.tree_map(put, tree)


def to_host(tree: Any) -> Any:
    """Device → host NumPy, gathering the shards of other processes when there are any."""
    if jax.process_count() == 1:
        return jax.device_get(tree)
    from jax.experimental import multihost_utils

    return multihost_utils.process_allgather(tree, tiled=True)


def _convolutional_on_cpu(config: ml_collections.ConfigDict) -> bool:
    return jax.default_backend() == "cpu" and config.model.name in models.CONVOLUTIONAL


def epoch_loop_mode(config: ml_collections.ConfigDict) -> str:
    """``train.epoch_loop``, with "auto" resolved: "host" for convolutional models on CPUs,
    else "scan"."""
    mode = config.train.epoch_loop
    if mode != "auto":
        return mode
    return "host" if _convolutional_on_cpu(config) else "scan"


def vectorize_mode(config: ml_collections.ConfigDict) -> str:
    """``sweep.vectorize``, with "auto" resolved: "loop" on a single CPU device (XLA:CPU
    runs the members' batched matmuls and grouped convolutions slower than the members
    one by one; benchmarks/README.md), else "vmap"."""
    mode = config.sweep.vectorize
    if mode != "auto":
        return mode
    return "loop" if jax.default_backend() == "cpu" and jax.device_count() == 1 else "vmap"


def cpu_cores() -> int:
    """The CPU cores this process may use."""
    return len(os.sched_getaffinity(0))


def loop_threads(config: ml_collections.ConfigDict) -> int:
    """``sweep.threads``, with 0 resolved to :func:`cpu_cores`."""
    return config.sweep.threads or cpu_cores()


class OverMembers:
    """How a compile group applies one-member functions to its stacked members.

    The first ``n_mapped`` arguments of a wrapped function carry a leading members axis;
    the others are shared. With ``sweep.vectorize = "vmap"`` a function becomes
    ``jit(vmap(fn))``, one program over all members; with ``"loop"`` it is compiled for
    one member and called for each member in turn (one device only); the training epoch
    (:func:`epoch_function`) runs ``sweep.threads`` members at a time from host threads.
    XLA:CPU runs a small net's program on about one core, so members side by side use the
    others; every member still runs the same one-member program on the same inputs, so
    its numbers do not depend on the threads. Only training: two members' rank SVDs at
    once deadlock XLA's CPU pool (jaxlib's batched LAPACK kernels, see
    ``lowrank.rank.spectra_of``), and training is nearly all of a run's time.
    """

    def __init__(self, config: ml_collections.ConfigDict) -> None:
        self.vmap = vectorize_mode(config) == "vmap"
        self.threads = 1 if self.vmap else loop_threads(config)
        self._take = jax.jit(lambda tree, i: jax.tree_util.tree_map(lambda x: x[i], tree))
        self._stack = jax.jit(
            lambda *trees: jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *trees)
        )

    def piece(self, fn: Callable, n_mapped: int, donate: bool = False) -> Callable:
        """``fn`` compiled as it is called: over all members (vmap) or for one (loop)."""
        donate_argnums = (0,) if donate else ()
        if not self.vmap:
            return jax.jit(fn, donate_argnums=donate_argnums)
        in_axes = (0,) * n_mapped

        def batched(*args):
            return jax.vmap(fn, in_axes=in_axes + (None,) * (len(args) - n_mapped))(*args)

        return jax.jit(batched, donate_argnums=donate_argnums)

    def each(self, fn: Callable, n_mapped: int, threads: int = 1) -> Callable:
        """Calls one-member ``fn`` for each member, ``threads`` at a time (loop); unchanged
        with vmap, where ``fn`` is already made of pieces over all members."""
        if self.vmap:
            return fn

        def looped(*args):
            mapped, shared = args[:n_mapped], args[n_mapped:]
            k = jax.tree_util.tree_leaves(mapped[0])[0].shape[0]
            one = lambda i: fn(*self._take(mapped, i), *shared)
            if min(k, threads) == 1:
                return self._stack(*map(one, range(k)))
            with ThreadPoolExecutor(min(k, threads)) as pool:
                return self._stack(*pool.map(one, range(k)))

        return looped

    def __call__(
        self, fn: Callable, n_mapped: int, donate: bool = False, threads: int = 1
    ) -> Callable:
        """One compiled call over all members (vmap), or one per member (loop)."""
        return self.each(self.piece(fn, n_mapped, donate), n_mapped, threads)


def epoch_function(
    config: ml_collections.ConfigDict,
    over_members: OverMembers,
    *,
    model: Any,
    tx: optax.GradientTransformation,
    batch_size: int,
    mean: Any,
    std: Any,
    record: train.Recording | None = None,
) -> Callable:
    """A compile group's epoch over all members, as ``train.epoch_loop`` asks.

    ``(state, train_images, train_labels, epoch) → (state, metrics[, window])`` with a
    leading members axis on the state and the results: ``train.train_epoch``
    (one ``lax.scan``) or ``train.HostEpoch`` (one compiled call per step), over members
    as ``over_members`` does it.
    """
    pipeline = {"model": model, "tx": tx, "mean": mean, "std": std, "aug_cfg": config.augment}
    if epoch_loop_mode(config) == "scan":
        epoch = functools.partial(
            train.train_epoch, batch_size=batch_size, record=record, **pipeline
        )
        return over_members(epoch, 1, donate=True, threads=over_members.threads)
    step = over_members.piece(functools.partial(train.epoch_step, **pipeline), 3, donate=True)
    record_step = None
    if record is not None:
        record_step = functools.partial(train.epoch_step, record=record, **pipeline)
        record_step = over_members.piece(record_step, 3, donate=True)
    host_epoch = train.HostEpoch(
        start=over_members.piece(functools.partial(train.epoch_start, batch_size=batch_size), 1),
        step=step,
        end=over_members.piece(train.epoch_end, 2),
        record_step=record_step,
        record_steps=record.steps if record is not None else 0,
        steps_axis=1 if over_members.vmap else 0,
    )
    return over_members.each(host_epoch, 1, over_members.threads)
