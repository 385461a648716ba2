"""``run``: a whole sweep, group by group, epoch by epoch, into a results folder.

Per group and epoch: train (epoch > 0) → evaluate → measure → records → write →
checkpoint. One host sync per epoch; a killed run resumes from its last checkpoint and
ends with exactly the metrics of an uninterrupted run (only ``seconds`` differs). On
SIGTERM or SIGUSR1 it checkpoints after the epoch in flight and raises ``Preempted``
(``lowrank.engine.preemption``).
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from tqdm import tqdm

from lowrank import budget, checkpoint, data, models, optim, train
from lowrank import config as config_lib
from lowrank.analysis import theory_checks
from lowrank.engine import records as records_lib
from lowrank.engine.execution import member_mesh, shard, to_host
from lowrank.engine.group import Group
from lowrank.engine.members import members as all_members_of
from lowrank.engine.preemption import Preempted, StopRequest
from lowrank.models import structure
from lowrank.results import ResultsFolder

log = logging.getLogger(__name__)


def run(
    config: ml_collections.ConfigDict,
    workdir: str | Path,
    *,
    progress: bool = True,
    restart: bool = False,
) -> str:
    """Trains every member of the sweep and writes the results folder.

    Running it again on the same workdir resumes from the latest checkpoint and ends with
    exactly the metrics of an uninterrupted run (only the ``seconds`` fields differ).

    Args:
      config: a run config (see ``lowrank.config.base_config``).
      workdir: the results folder (created).
      progress: show a progress bar per compile group.
      restart: delete the workdir's results and checkpoints and start over (also allowed
        when it holds a different config).

    Returns:
      The summary table (also written to ``workdir/summary.txt``).

    Raises:
      ConfigError: a bad config (before anything is loaded or written).
      WorkdirConfigError: the workdir holds a different config's run and not ``restart``.
      Preempted: SIGTERM or SIGUSR1 came; the epoch in flight finished and was checkpointed.
    """
    mesh = member_mesh()
    config_lib.validate(config, devices=mesh.size)
    ds = data.load_dataset(config.data)
    config_lib.validate(config, num_train=ds.num_train, devices=mesh.size)  # the files' size
    results = ResultsFolder(Path(workdir), writer=jax.process_index() == 0)
    members = all_members_of(config)
    results.claim(config, restart, members)
    ckpts = checkpoint.SweepCheckpoints(results.path / "checkpoints", config.checkpoint.keep)
    latest = ckpts.latest_meta()
    results.start_lines(latest[1] if latest else None)
    if latest is not None:
        log.info("resuming from group %d epoch %d", latest[1]["group"], latest[1]["epoch"])

    model = models.build_model(config.model, ds.num_classes)
    m_l = structure.patch_counts(model, ds.input_shape, **config_lib.rank_selection(config))
    results.write_structure(m_l)
    arrays = _device_arrays(config, ds, mesh)
    try:
        with _matmul_precision(config.train.precision), StopRequest() as stop:
            for g, b in enumerate(config.sweep.batch_sizes):
                if latest is not None and g < latest[1]["group"]:
                    continue
                gc = budget.group_config(config, b)  # train.budget="steps" scales its epochs
                group = Group(gc, ds, model, [m for m in members if m.group == g], mesh)
                resume = latest if latest is not None and g == latest[1]["group"] else None
                ids = _CheckpointIds(config, g)
                _run_group(gc, group, ids, arrays, m_l, results, ckpts, resume, stop, progress)
                latest = None
    finally:
        ckpts.close()  # waits for the last asynchronous write (also when preempted)
    table = records_lib.summary(results.records(), float(config.rank.epsilons[0]))
    results.write_summary(table)
    return table


def _device_arrays(config: ml_collections.ConfigDict, ds: Any, mesh: Any) -> tuple:
    """The splits and the probe batch of the representation ranks (empty when
    ``rank.probe_size`` is 0), replicated on every device."""
    probe = config.rank.get("probe_size", 0)
    idx = train.probe_indices(ds.num_train, probe, config.rank.probe_seed) if probe else []
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    return shard(
        (ds.train_images, ds.train_labels, ds.test_images, ds.test_labels, ds.train_images[idx]),
        replicated,
    )


def _matmul_precision(precision: str):
    """``train.precision`` as a context: "default" leaves JAX's choice alone."""
    if precision == "default":
        return contextlib.nullcontext()
    return jax.default_matmul_precision(precision)


class _CheckpointIds:
    """Checkpoint step numbers that grow across groups: ``g · (most epochs + 1) + epoch``
    (groups run different epochs under ``train.budget = "steps"``)."""

    def __init__(self, config: ml_collections.ConfigDict, g: int) -> None:
        self.group = g
        self.span = max(budget.group_epochs(config, b) for b in config.sweep.batch_sizes) + 1

    def __call__(self, epoch: int) -> int:
        return self.group * self.span + epoch


def _run_group(config, group, ids, arrays, m_l, results, ckpts, resume, stop, progress) -> None:
    """All epochs of one compile group (from a checkpoint's ``resume`` if given); after
    an epoch in which ``stop`` caught a signal, checkpoints and raises ``Preempted``.
    ``config`` is the group's (``lowrank.budget.group_config``)."""
    g = ids.group
    dropped = data.describe_remainder(arrays[0].shape[0], group.batch_size)
    if dropped:
        log.warning("group %d: %s", g, dropped)
    epochs = config.train.epochs
    previous_norms: dict[int, dict[str, float]] = {}
    first_epoch = 0
    if resume is not None:
        step, meta = resume
        first_epoch = meta["epoch"] + 1
        previous_norms = {int(k): v for k, v in meta["previous_norms"].items()}
        diverged = {int(k): v for k, v in meta["diverged"].items()}
        group.resume(diverged, lambda like: ckpts.restore_state(step, like))
    bar = tqdm(
        range(first_epoch, epochs + 1),
        initial=first_epoch,
        total=epochs + 1,
        desc=f"group {g} (B={group.batch_size}, {len(group.members)} members)",
        disable=not (progress and results.writer),
        dynamic_ncols=True,
    )
    eps0 = f"{float(config.rank.epsilons[0]):g}"
    for epoch in bar:
        start = time.perf_counter()
        records = _run_epoch(config, group, epoch, arrays, m_l, previous_norms, results)
        seconds = time.perf_counter() - start
        for r in records:
            r["seconds"] = seconds
        results.append("metrics", records)
        every = config.checkpoint.every
        stopping = stop.agreed()
        if stopping or epoch == epochs or (every and epoch % every == 0):
            meta = {
                "group": g,
                "epoch": epoch,
                "active": group.roster.running(),
                "diverged": {str(k): v for k, v in group.roster.diverged.items()},
                "previous_norms": {str(k): v for k, v in previous_norms.items()},
                **results.sizes(),
            }
            # Orbax refuses an empty tree: a group whose members all diverged saves a
            # placeholder (never restored: no member runs).
            state = group.state if group.state is not None else {"none": np.zeros(())}
            ckpts.save(ids(epoch), state, meta)
        if stopping:
            bar.close()
            raise Preempted(stop.signal_name, g, epoch)
        ranks = [r[f"avg_rank@{eps0}"] for r in records if "rank" in r]
        if ranks:
            bar.set_postfix_str("avg rank " + " ".join(f"{v:.1f}" for v in ranks))


def _device_epoch(config, group: Group, epoch: int, arrays) -> dict[str, Any]:
    """Train (epoch > 0), evaluate and measure the running members; one host sync."""
    if group.state is None:
        return {}
    train_x, train_y, test_x, test_y, probe = arrays
    last = epoch == config.train.epochs
    out: dict[str, Any] = {}
    if epoch > 0:
        out.update(group.train(epoch, train_x, train_y, record=last and bool(group.record_fn)))
    if epoch % config.train.eval_every == 0 or last:
        if config.train.eval_train:
            out["train"] = group.evaluate(train_x, train_y)
        out["test"] = group.evaluate(test_x, test_y)
    if epoch % config.rank.every == 0 or last:
        out["rank"] = group.measure()
        if config.rank.get("probe_size", 0):
            out["repr"] = group.represent(probe)
    if "window" in out:
        out["params"] = group.state.params
    return to_host(out)  # the one host sync of the epoch


def _run_epoch(config, group, epoch, arrays, m_l, previous_norms, results) -> list[dict]:
    """One epoch of a group → one record per member (diverged ones without metrics);
    writes the spectra and theory checks; members found diverged leave the device."""
    host = _device_epoch(config, group, epoch, arrays)
    epsilons = tuple(float(e) for e in config.rank.epsilons)
    # μ of the epoch's last step: a run that ends on a milestone reports the μ it trained
    # with, not the one its next step would take.
    lr_multiplier = float(group.multiplier(jnp.asarray(max(epoch * group.steps - 1, 0))))
    o = config.optim
    schedule = {
        "multiplier_sum": optim.multiplier_sum(
            o.schedule, o.milestones, o.factor, group.steps, epoch
        ),
        "decoupled": optim.is_decoupled(o),
        "optimizer": o.get("name", "sgd"),
    }
    roster = group.roster
    records, newly = [], {}
    for i, m in enumerate(group.members):
        if m.id in roster.diverged:
            r = records_lib.stub_record(m, epoch, **schedule)
            records.append({**r, "diverged": True, "reason": roster.diverged[m.id]})
            continue
        k = roster.row_of(i)
        r = records_lib.member_record(
            m, k, epoch, host, lr_multiplier=lr_multiplier, m_l=m_l, epsilons=epsilons,
            previous_norms=previous_norms, **schedule,
        )  # fmt: skip
        why = records_lib.divergence(host, k)
        if why:
            newly[m.id] = f"diverged at epoch {epoch}: {why}"
            r.update(diverged=True, reason=newly[m.id])
            log.warning("member %d (%s) %s", m.id, m.hparams(), newly[m.id])
        records.append(r)
    for r in records:  # the SGD steps taken so far: equal across groups under budget="steps"
        r["step"] = epoch * group.steps
    last = epoch == config.train.epochs
    every = config.rank.spectra_every
    if "rank" in host and (last or (every and epoch % every == 0)):
        rows = [roster.row_of(i) for i in roster.running()]
        spectra = {p: v[rows] for p, v in host["rank"]["singular_values"].items()}
        results.save_spectra(group.members[0].group, epoch, spectra)
    if "window" in host and results.writer:
        checks = []
        for i, m in enumerate(group.members):
            if m.id not in roster.diverged and m.id not in newly:
                checks += theory_checks.window_checks(config, m, roster.row_of(i), host, m_l)
        results.append("theory", checks)
    if newly:
        group.drop(newly)
    return records


def final_state(config: ml_collections.ConfigDict, workdir: str | Path) -> tuple[list, Any]:
    """The finished run's last compile group: its members that did not diverge and their
    final device state (a leading members axis, one row each), from the last checkpoint.

    Raises:
      FileNotFoundError: the workdir holds no finished run of ``config``.
    """
    ckpts = checkpoint.SweepCheckpoints(Path(workdir) / "checkpoints", config.checkpoint.keep)
    try:
        latest = ckpts.latest_meta()
        last_group = len(config.sweep.batch_sizes) - 1
        last_batch = config.sweep.batch_sizes[last_group]
        if latest is None or (latest[1]["group"], latest[1]["epoch"]) != (
            last_group,
            budget.group_epochs(config, last_batch),
        ):
            raise FileNotFoundError(
                f"engine: {workdir} holds no finished run of this config; run it first."
            )
        step, meta = latest
        ds = data.load_dataset(config.data)
        model = models.build_model(config.model, ds.num_classes)
        members = [m for m in all_members_of(config) if m.group == last_group]
        group = Group(budget.group_config(config, last_batch), ds, model, members, member_mesh())
        diverged = {int(k): v for k, v in meta["diverged"].items()}
        group.resume(diverged, lambda like: ckpts.restore_state(step, like))
    finally:
        ckpts.close()
    running = group.roster.running()
    if group.state is None:
        return [], None
    rows = np.asarray([group.roster.row_of(i) for i in running])
    state = jax.tree_util.tree_map(lambda x: np.asarray(x)[rows], group.state)
    return [group.members[i] for i in running], state
