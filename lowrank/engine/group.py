"""One compile group: its compiled functions and the device state of its running members.

Dropping diverged members changes the members axis, so the functions recompile once for
the smaller sweep and the diverged members cost nothing after.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from lowrank import config as config_lib
from lowrank import data, optim, train
from lowrank.engine.execution import OverMembers, epoch_function, shard
from lowrank.engine.members import Member, Roster


def _recording(config: ml_collections.ConfigDict, multiplier: Any) -> train.Recording | None:
    """What ``record.steps`` asks to record in the last epoch, or None."""
    if not config.record.steps:
        return None
    selection = config_lib.rank_selection(config)
    if config.record.include:
        selection["include"] = list(config.record.include)
    return train.Recording(
        steps=config.record.steps,
        learning_rate=train.InjectedLearningRate(multiplier),
        selection=tuple(
            sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in selection.items())
        ),
        direction=optim.adamw_direction(config.optim)
        if config.optim.get("name", "sgd") == "adamw"
        else None,
    )


class Group:
    """The compiled functions and device state of one compile group (see the module doc).

    ``state`` holds one row per entry of ``roster.rows`` (μ, λ, β in its optimizer state);
    it is None once every member has diverged.
    """

    def __init__(self, config, ds, model, group_members: list[Member], mesh) -> None:
        self.members = group_members
        self.sharded = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("members"))
        self.batch_size = group_members[0].batch_size
        self.steps = data.steps_per_epoch(ds.num_train, self.batch_size, field="sweep.batch_sizes")
        o = config.optim
        self.multiplier = optim.lr_multiplier(o.schedule, o.milestones, o.factor, self.steps)
        tx = optim.make_optimizer(o, self.steps)
        over_members = OverMembers(config)
        init = functools.partial(train.init_state, model=model, tx=tx, input_shape=ds.input_shape)
        self.init_fn = over_members(init, 2)
        epoch_fn = functools.partial(
            epoch_function, config, over_members, model=model, tx=tx,
            batch_size=self.batch_size, mean=ds.mean, std=ds.std,
        )  # fmt: skip
        self.epoch_fn = epoch_fn()
        recording = _recording(config, self.multiplier)
        self.record_fn = epoch_fn(record=recording) if recording else None
        evaluate = functools.partial(
            train.evaluate, model=model, batch_size=config.train.eval_batch_size,
            mean=ds.mean, std=ds.std,
        )  # fmt: skip
        self.eval_fn = over_members(evaluate, 1)
        measure = functools.partial(
            train.measure, epsilons=tuple(config.rank.epsilons),
            normalization=config.rank.normalization, method=config.rank.method,
            selection=config_lib.rank_selection(config),
        )  # fmt: skip
        self.measure_fn = over_members(measure, 1)
        represent = functools.partial(
            train.represent, model=model, mean=ds.mean, std=ds.std,
            epsilons=tuple(config.rank.epsilons), normalization=config.rank.normalization,
            method=config.rank.method, selection=config_lib.rank_selection(config),
        )  # fmt: skip
        self.represent_fn = over_members(represent, 1)
        self.roster = Roster(group_members, mesh.size)
        self.state = self._fresh_state()

    def _chosen(self) -> list[Member]:
        return [self.members[i] for i in self.roster.rows]

    def _hparams(self, chosen: list[Member]) -> train.Hparams:
        """The members' μ, λ, β, for ``init_state`` (they live in the state after)."""
        return shard(
            train.Hparams(
                learning_rate=np.asarray([m.learning_rate for m in chosen], np.float32),
                weight_decay=np.asarray([m.weight_decay for m in chosen], np.float32),
                momentum=np.asarray([m.momentum for m in chosen], np.float32),
            ),
            self.sharded,
        )

    def _fresh_state(self) -> Any:
        """Initial state of the rows (None when no member runs); also sets ``hparams``."""
        chosen = self._chosen()
        if not chosen:
            return None
        keys = shard(np.stack([jax.random.PRNGKey(m.seed) for m in chosen]), self.sharded)
        return self.init_fn(keys, self._hparams(chosen))

    def resume(self, diverged: dict[int, str], restore: Any) -> None:
        """Continues from a checkpoint: ``diverged`` members left out, the state restored
        by ``restore(like)`` onto the shapes of the remaining rows."""
        self.roster = Roster(self.members, self.roster.n_devices, diverged=dict(diverged))
        self.state = self._fresh_state()
        if self.state is not None:
            self.state = restore(self.state)

    def drop(self, reasons: dict[int, str]) -> None:
        """Stops the members (by id) in ``reasons``: their rows leave the device state."""
        where = self.roster.drop(reasons)
        if not where:
            self.state = None
            return
        take = jax.jit(
            lambda s, w: jax.tree_util.tree_map(lambda x: jnp.take(x, w, axis=0), s),
            out_shardings=self.sharded,
        )
        self.state = take(self.state, shard(np.asarray(where, np.int32), self.sharded))

    def train(self, epoch: int, train_x, train_y, *, record: bool) -> dict[str, Any]:
        """One epoch for every row: ``{"run": metrics}``, with ``"window"`` if recorded."""
        fn = self.record_fn if record else self.epoch_fn
        out = fn(self.state, train_x, train_y, jnp.asarray(epoch))
        self.state = out[0]
        return {"run": out[1], "window": out[2]} if record else {"run": out[1]}

    def evaluate(self, images, labels) -> dict[str, Any]:
        return self.eval_fn(self.state, images, labels)

    def measure(self) -> dict[str, Any]:
        return self.measure_fn(self.state.params)

    def represent(self, probe_images) -> dict[str, Any]:
        """Rank measures of every measured layer's outputs on the probe images."""
        return self.represent_fn(self.state, probe_images)
