"""A sweep as one compiled program per compile group: config grid → members → results.

Members are the Cartesian product of ``config.sweep``'s lists. Seeds, μ, λ and β are
traced values, so all members of one batch size share one compiled program: ``vmap``ped
over the members (GPUs, several devices) or called for each member in turn (one CPU
device, where that is faster; ``sweep.vectorize``). Each batch size is a compile group,
run one after another.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from tqdm import tqdm

from lowrank import checkpoint, data, io, models, optim, rank, theory, train
from lowrank import config as config_lib
from lowrank.models import structure

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Member:
    """One training run of the sweep."""

    id: int
    group: int
    seed: int
    learning_rate: float
    weight_decay: float
    momentum: float
    batch_size: int

    def hparams(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "learning_rate": self.learning_rate,
            "weight_decay": self.weight_decay,
            "momentum": self.momentum,
            "batch_size": self.batch_size,
        }


def members(config: ml_collections.ConfigDict) -> list[Member]:
    """All members, grouped by batch size (the compile groups), in grid order."""
    s = config.sweep
    out: list[Member] = []
    for g, b in enumerate(s.batch_sizes):
        for seed, mu, lam, beta in itertools.product(
            s.seeds, s.learning_rates, s.weight_decays, s.momenta
        ):
            out.append(Member(len(out), g, int(seed), float(mu), float(lam), float(beta), int(b)))
    return out


def rank_selection(config: ml_collections.ConfigDict) -> dict[str, Any]:
    r = config.rank
    return {
        "preset": r.preset,
        "include": list(r.include) or None,
        "exclude": list(r.exclude) or None,
    }


def theorem33_bounds(
    m_l: dict[str, int], batch_size: int, lr: float, lam: float, epsilons: tuple[float, ...]
) -> dict[str, list[float | None]]:
    """Theorem 3.3's rank bound per layer and ε (None where ε ≥ 1/2, inf where λ = 0)."""

    out: dict[str, list[float | None]] = {}
    for path, m in m_l.items():
        out[path] = [
            float(theory.theorem33_rank_bound(m, batch_size, lr, lam, e)) if e < 0.5 else None
            for e in epsilons
        ]
    return out


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


def _shard(tree: Any, sharding: jax.sharding.Sharding) -> Any:
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
    mode = config.train.get("epoch_loop", "auto")
    if mode != "auto":
        return mode
    return "host" if _convolutional_on_cpu(config) else "scan"


def vectorize_mode(config: ml_collections.ConfigDict) -> str:
    """``sweep.vectorize``, with "auto" resolved: "loop" on a single CPU device (XLA:CPU
    runs the members' batched matmuls and grouped convolutions slower than the members
    one by one; benchmarks/README.md), else "vmap"."""
    mode = config.sweep.get("vectorize", "auto")
    if mode != "auto":
        return mode
    return "loop" if jax.default_backend() == "cpu" and jax.device_count() == 1 else "vmap"


class _OverMembers:
    """How a compile group applies one-member functions to its stacked members.

    The first ``n_mapped`` arguments of a wrapped function carry a leading members axis;
    the others are shared. With ``sweep.vectorize = "vmap"`` a function becomes
    ``jit(vmap(fn))``, one program over all members; with ``"loop"`` it is compiled for
    one member and called for each member in turn, slicing and restacking the members
    axis (one device only).
    """

    def __init__(self, config: ml_collections.ConfigDict) -> None:
        self.vmap = vectorize_mode(config) == "vmap"
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

    def each(self, fn: Callable, n_mapped: int) -> Callable:
        """Calls one-member ``fn`` for each member in turn (loop); unchanged with vmap,
        where ``fn`` is already made of pieces over all members."""
        if self.vmap:
            return fn

        def looped(*args):
            mapped, shared = args[:n_mapped], args[n_mapped:]
            k = jax.tree_util.tree_leaves(mapped[0])[0].shape[0]
            return self._stack(*[fn(*self._take(mapped, i), *shared) for i in range(k)])

        return looped

    def __call__(self, fn: Callable, n_mapped: int, donate: bool = False) -> Callable:
        """One compiled call over all members (vmap), or one per member (loop)."""
        return self.each(self.piece(fn, n_mapped, donate), n_mapped)


def epoch_function(
    config: ml_collections.ConfigDict,
    over_members: _OverMembers,
    *,
    model: Any,
    tx: train.OptimizerFactory,
    batch_size: int,
    mean: Any,
    std: Any,
    record: train.Recording | None = None,
) -> Callable:
    """A compile group's epoch over all members, as ``train.epoch_loop`` asks.

    ``(state, hparams, train_images, train_labels, epoch) → (state, metrics[, window])``
    with a leading members axis on state, hparams and the results: ``train.train_epoch``
    (one ``lax.scan``) or ``train.HostEpoch`` (one compiled call per step), over members
    as ``over_members`` does it.
    """
    pipeline = {"model": model, "tx": tx, "mean": mean, "std": std, "aug_cfg": config.augment}
    if epoch_loop_mode(config) == "scan":
        epoch = functools.partial(
            train.train_epoch, batch_size=batch_size, record=record, **pipeline
        )
        return over_members(epoch, 2, donate=True)
    step = over_members.piece(functools.partial(train.epoch_step, **pipeline), 4, donate=True)
    record_step = None
    if record is not None:
        record_step = functools.partial(train.epoch_step, record=record, **pipeline)
        record_step = over_members.piece(record_step, 4, donate=True)
    host_epoch = train.HostEpoch(
        start=over_members.piece(functools.partial(train.epoch_start, batch_size=batch_size), 1),
        step=step,
        end=over_members.piece(train.epoch_end, 2),
        record_step=record_step,
        record_steps=record.steps if record is not None else 0,
        steps_axis=1 if over_members.vmap else 0,
    )
    return over_members.each(host_epoch, 2)


class _Group:
    """The compiled functions and device state of one compile group.

    The device state holds the *active* members (not diverged), padded with copies of the
    first active member to a multiple of the device count; padded rows never reach the
    results. Dropping diverged members changes the members axis, so the functions
    recompile once for the smaller sweep and the diverged members cost nothing after.
    """

    def __init__(self, config, ds, model, group_members, mesh):
        self.members = group_members
        self.mesh = mesh
        self.sharded = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("members"))
        self.batch_size = group_members[0].batch_size
        self.steps = data.steps_per_epoch(ds.num_train, self.batch_size, field="sweep.batch_sizes")
        o = config.optim
        self.multiplier = optim.lr_multiplier(o.schedule, o.milestones, o.factor, self.steps)
        tx = optim.make_optimizer(o, self.steps)
        over_members = _OverMembers(config)
        init = functools.partial(train.init_state, model=model, tx=tx, input_shape=ds.input_shape)
        self.init_fn = over_members(init, 2)
        epoch_fn = functools.partial(
            epoch_function,
            config,
            over_members,
            model=model,
            tx=tx,
            batch_size=self.batch_size,
            mean=ds.mean,
            std=ds.std,
        )
        self.epoch_fn = epoch_fn()
        evaluate = functools.partial(
            train.evaluate,
            model=model,
            batch_size=config.train.eval_batch_size,
            mean=ds.mean,
            std=ds.std,
        )
        self.eval_fn = over_members(evaluate, 1)
        measure = functools.partial(
            train.measure,
            epsilons=tuple(config.rank.epsilons),
            normalization=config.rank.normalization,
            method=config.rank.method,
            selection=rank_selection(config),
        )
        self.measure_fn = over_members(measure, 1)
        self.record_fn = None
        if config.record.steps:
            selection = rank_selection(config)
            if config.record.include:
                selection["include"] = list(config.record.include)
            recording = train.Recording(
                steps=config.record.steps,
                learning_rate=theory.InjectedLearningRate(self.multiplier),
                selection=tuple(
                    sorted(
                        (k, tuple(v) if isinstance(v, list) else v) for k, v in selection.items()
                    )
                ),
            )
            self.record_fn = epoch_fn(record=recording)
        self.set_active(list(range(len(group_members))), fresh=True)

    def set_active(self, active: list[int], *, fresh: bool = False) -> None:
        """Keeps only the members at positions ``active`` (of ``self.members``) on device."""
        n_dev = self.mesh.size
        rows = active + [active[0]] * (-len(active) % n_dev) if active else []
        self.active = list(active)
        self.rows = rows
        if not rows:
            self.state = None
            return
        chosen = [self.members[i] for i in rows]
        self.hparams = _shard(
            train.Hparams(
                learning_rate=np.asarray([m.learning_rate for m in chosen], np.float32),
                weight_decay=np.asarray([m.weight_decay for m in chosen], np.float32),
                momentum=np.asarray([m.momentum for m in chosen], np.float32),
            ),
            self.sharded,
        )
        if fresh:
            keys = _shard(np.stack([jax.random.PRNGKey(m.seed) for m in chosen]), self.sharded)
            self.state = self.init_fn(keys, self.hparams)
        else:
            # Positions of the kept members in the current state (their first row).
            where = [self._row_of[i] for i in rows]
            take = jax.jit(
                lambda s, w: jax.tree_util.tree_map(lambda x: jnp.take(x, w, axis=0), s),
                out_shardings=self.sharded,
            )
            self.state = take(self.state, _shard(np.asarray(where, np.int32), self.sharded))
        self._row_of = {i: rows.index(i) for i in active}


def _member_record(
    group: _Group,
    m: Member,
    k: int,
    epoch: int,
    host: dict[str, Any],
    m_l: dict[str, int],
    epsilons: tuple[float, ...],
    previous_norms: dict[int, dict[str, float]],
) -> dict[str, Any]:
    """Member ``m``'s record for this epoch, from row ``k`` of the host copy of the metrics."""
    lr_mult = float(group.multiplier(jnp.asarray(epoch * group.steps)))
    r: dict[str, Any] = {"member": m.id, "group": m.group, **m.hparams(), "epoch": epoch}
    r["lr_now"] = m.learning_rate * lr_mult
    if "run" in host:
        for name, v in host["run"].items():
            if name != "finite":
                r[f"running_{name}"] = float(v[k])
    for split in ("train", "test"):
        if split in host:
            r[f"{split}_loss"] = float(host[split]["loss"][k])
            r[f"{split}_accuracy"] = float(host[split]["accuracy"][k])
    if "rank" in host:
        ms = host["rank"]
        avg = ms["average"]
        for i, e in enumerate(epsilons):
            r[f"avg_rank@{e:g}"] = float(avg["threshold_rank"][k][i])
        r["avg_numerical_rank"] = float(avg["numerical_rank"][k])
        r["avg_stable_rank"] = float(avg["stable_rank"][k])
        r["avg_entropy_rank"] = float(avg["entropy_rank"][k])
        per = ms["per_layer"]
        r["rank"] = {p: v[k].tolist() for p, v in per["threshold_rank"].items()}
        for name in ("numerical_rank", "stable_rank", "entropy_rank"):
            r[name] = {p: float(v[k]) for p, v in per[name].items()}
        norms = {p: float(v[k]) for p, v in ms["frobenius_norm"].items()}
        r["frobenius_norm"] = norms
        prev = previous_norms.get(m.id)
        r["norm_ratio"] = (
            {p: (prev[p] / norms[p] if norms[p] > 0 else math.inf) for p in norms} if prev else None
        )
        previous_norms[m.id] = norms
        r["nonfinite"] = bool(ms["any_nonfinite"][k])
        r["bound"] = theorem33_bounds(m_l, m.batch_size, r["lr_now"], m.weight_decay, epsilons)
    return r


def _divergence(host: dict[str, Any], k: int) -> str | None:
    """Why row ``k`` diverged this epoch, or None."""
    run = host.get("run")
    if run is None:
        return None
    if not math.isfinite(float(run["loss"][k])):
        return f"training loss is {float(run['loss'][k])}"
    if not bool(run["finite"][k]):
        return "weights or optimizer state hold NaN/Inf"
    return None


def _summary(records: list[dict[str, Any]], epsilon: float) -> str:
    """Final average rank and accuracy per setting, mean ± std over seeds; diverged listed."""
    key = f"avg_rank@{epsilon:g}"
    final: dict[int, dict[str, Any]] = {}
    first: dict[int, dict[str, Any]] = {}
    reasons: dict[int, tuple[dict[str, Any], str]] = {}
    for r in records:
        if r.get("diverged"):
            reasons.setdefault(r["member"], (r, r["reason"]))
        elif key in r:
            first.setdefault(r["member"], r)
            final[r["member"]] = r
    settings: dict[tuple, list[int]] = {}
    for mid, r in final.items():
        if mid not in reasons:
            setting = (r["batch_size"], r["learning_rate"], r["weight_decay"], r["momentum"])
            settings.setdefault(setting, []).append(mid)

    def ms(values: list[float]) -> str:
        a = np.asarray(values, float)
        return f"{a.mean():.2f} ± {a.std():.2f}" if len(a) > 1 else f"{a.mean():.2f}"

    rows = []
    for (b, mu, lam, beta), ids in sorted(settings.items()):
        rows.append(
            [
                b,
                mu,
                lam,
                beta,
                len(ids),
                final[ids[0]]["epoch"],
                ms([first[i][key] for i in ids]),
                ms([final[i][key] for i in ids]),
                ms([final[i].get("train_accuracy", math.nan) for i in ids]),
                ms([final[i].get("test_accuracy", math.nan) for i in ids]),
            ]
        )
    header = ["B", "mu", "lambda", "beta", "seeds", "epoch", f"rank0@{epsilon:g}",
              f"rank@{epsilon:g}", "train acc", "test acc"]  # fmt: skip
    table = io.format_table(header, rows) if rows else "(no member finished)"
    if reasons:
        lines = [
            f"  member {mid} (seed {r['seed']}, B={r['batch_size']}, mu={r['learning_rate']:g}, "
            f"lambda={r['weight_decay']:g}, beta={r['momentum']:g}) {why}"
            for mid, (r, why) in sorted(reasons.items())
        ]
        table += f"\ndiverged ({len(reasons)}, left out of the table above):\n" + "\n".join(lines)
    return table


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
      ConfigError: a bad config (before anything is written).
      WorkdirConfigError: the workdir holds a different config's run and not ``restart``.
    """
    config_lib.validate(config)
    workdir = Path(workdir)
    ds = data.load_dataset(config.data)
    config_lib.validate_batch_sizes(config, ds.num_train)

    writer = jax.process_index() == 0  # one process writes results
    workdir.mkdir(parents=True, exist_ok=True)
    if writer:
        checkpoint.claim_workdir(workdir, config, restart)
    all_members = members(config)
    metrics_path = workdir / "metrics.jsonl"
    if writer:
        io.atomic_write_text(
            workdir / "members.json",
            json.dumps([dataclasses.asdict(m) for m in all_members], indent=1) + "\n",
        )
    ckpts = checkpoint.SweepCheckpoints(workdir / "checkpoints", config.checkpoint.keep)
    latest = ckpts.latest_meta()
    theory_path = workdir / "theory.jsonl"
    if latest is None and writer:
        metrics_path.unlink(missing_ok=True)
        theory_path.unlink(missing_ok=True)
    elif latest is not None and writer:
        # Lines written after the checkpoint are rewritten by the resumed run.
        for path, size in ((metrics_path, "metrics_bytes"), (theory_path, "theory_bytes")):
            if path.exists():
                with open(path, "r+") as f:
                    f.truncate(latest[1].get(size, 0))
        log.info("resuming from group %d epoch %d", latest[1]["group"], latest[1]["epoch"])

    model = models.build_model(config.model, ds.num_classes)
    epsilons = tuple(float(e) for e in config.rank.epsilons)
    m_l = structure.patch_counts(model, ds.input_shape, **rank_selection(config))
    mesh = member_mesh()
    if vectorize_mode(config) == "loop" and mesh.size > 1:
        raise config_lib.ConfigError(
            f"sweep.vectorize='loop' runs members one after another on one device, but "
            f"{mesh.size} devices are visible; use sweep.vectorize='vmap' to spread the "
            "members over them, or make one device visible (e.g. CUDA_VISIBLE_DEVICES=0)."
        )
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    train_x, train_y, test_x, test_y = _shard(
        (ds.train_images, ds.train_labels, ds.test_images, ds.test_labels), replicated
    )
    precision = (
        contextlib.nullcontext()
        if config.train.precision == "default"
        else jax.default_matmul_precision(config.train.precision)
    )
    epochs = config.train.epochs
    every_ckpt = config.checkpoint.every
    with precision:
        for g in range(len(config.sweep.batch_sizes)):
            if latest is not None and g < latest[1]["group"]:
                continue
            group_members = [m for m in all_members if m.group == g]
            group = _Group(config, ds, model, group_members, mesh)
            dropped = data.describe_remainder(ds.num_train, group.batch_size)
            if dropped:
                log.warning("group %d: %s", g, dropped)
            previous_norms: dict[int, dict[str, float]] = {}
            diverged: dict[int, str] = {}  # member id → reason
            first_epoch = 0
            if latest is not None and g == latest[1]["group"]:
                step, meta = latest
                first_epoch = meta["epoch"] + 1
                previous_norms = {int(k): v for k, v in meta["previous_norms"].items()}
                diverged = {int(k): v for k, v in meta["diverged"].items()}
                if meta["active"] != group.active:
                    group.set_active(meta["active"])
                if group.state is not None:
                    group.state = ckpts.restore_state(step, group.state)
            bar = tqdm(
                range(first_epoch, epochs + 1),
                initial=first_epoch,
                total=epochs + 1,
                desc=f"group {g} (B={group.batch_size}, {len(group_members)} members)",
                disable=not (progress and writer),
                dynamic_ncols=True,
            )
            for epoch in bar:
                start = time.perf_counter()
                records = _run_epoch(
                    config, group, epoch, m_l, epsilons, previous_norms, diverged,
                    (train_x, train_y, test_x, test_y), workdir if writer else None,
                )  # fmt: skip
                seconds = time.perf_counter() - start
                for r in records:
                    r["seconds"] = seconds
                if writer:
                    io.append_jsonl(metrics_path, records)
                last = epoch == epochs
                if last or (every_ckpt and epoch % every_ckpt == 0):
                    meta = {
                        "group": g,
                        "epoch": epoch,
                        "active": group.active,
                        "diverged": {str(k): v for k, v in diverged.items()},
                        "previous_norms": {str(k): v for k, v in previous_norms.items()},
                        "metrics_bytes": metrics_path.stat().st_size if writer else 0,
                        "theory_bytes": (
                            theory_path.stat().st_size if writer and theory_path.exists() else 0
                        ),
                    }
                    # Orbax refuses an empty tree: a group whose members all diverged
                    # saves a placeholder (never restored: no member is active).
                    state = group.state if group.state is not None else {"none": np.zeros(())}
                    ckpts.save(g * (epochs + 1) + epoch, state, meta)
                ranks = [r["avg_rank@" + f"{epsilons[0]:g}"] for r in records if "rank" in r]
                if ranks:
                    bar.set_postfix_str("avg rank " + " ".join(f"{v:.1f}" for v in ranks))
            latest = None
    ckpts.close()
    records = io.read_jsonl(metrics_path) if writer else []
    table = _summary(records, epsilons[0])
    if writer:
        io.atomic_write_text(workdir / "summary.txt", table + "\n")
    return table


def _run_epoch(
    config: ml_collections.ConfigDict,
    group: _Group,
    epoch: int,
    m_l: dict[str, int],
    epsilons: tuple[float, ...],
    previous_norms: dict[int, dict[str, float]],
    diverged: dict[int, str],
    arrays: tuple[jax.Array, ...],
    workdir: Path | None,
) -> list[dict[str, Any]]:
    """Trains (epoch > 0), evaluates and measures the active members; one host sync.

    Returns one record per member of the group: full records for active members, and
    ``{"diverged": True, "reason": ...}`` records without metrics for diverged ones.
    Members found diverged this epoch are dropped from the device state.
    """
    train_x, train_y, test_x, test_y = arrays
    last = epoch == config.train.epochs
    host: dict[str, Any] = {}
    if group.state is not None:
        out: dict[str, Any] = {}
        if epoch > 0 and last and group.record_fn is not None:
            group.state, out["run"], out["window"] = group.record_fn(
                group.state, group.hparams, train_x, train_y, jnp.asarray(epoch)
            )
        elif epoch > 0:
            group.state, out["run"] = group.epoch_fn(
                group.state, group.hparams, train_x, train_y, jnp.asarray(epoch)
            )
        if config.train.eval_train:
            out["train"] = group.eval_fn(group.state, train_x, train_y)
        out["test"] = group.eval_fn(group.state, test_x, test_y)
        if epoch % config.rank.every == 0 or last:
            out["rank"] = group.measure_fn(group.state.params)
        if "window" in out:
            out["params"] = group.state.params
        host = to_host(out)  # the one host sync of the epoch
    records = []
    newly: dict[int, str] = {}
    for i, m in enumerate(group.members):
        if m.id in diverged:
            r = {"member": m.id, "group": m.group, **m.hparams(), "epoch": epoch}
            records.append({**r, "diverged": True, "reason": diverged[m.id]})
            continue
        k = group.rows.index(i)
        r = _member_record(group, m, k, epoch, host, m_l, epsilons, previous_norms)
        why = _divergence(host, k)
        if why:
            newly[m.id] = f"diverged at epoch {epoch}: {why}"
            r.update(diverged=True, reason=newly[m.id])
            log.warning("member %d (%s) %s", m.id, m.hparams(), newly[m.id])
        records.append(r)
    every = config.rank.spectra_every
    if workdir is not None and "rank" in host and (last or (every and epoch % every == 0)):
        rows = [group.rows.index(i) for i in group.active]
        spectra = {p: v[rows] for p, v in host["rank"]["singular_values"].items()}
        io.save_npz(workdir / "spectra" / f"group{group.members[0].group}_epoch{epoch:04d}.npz",
                    spectra)  # fmt: skip
    if workdir is not None and "window" in host:
        checks = []
        for i, m in enumerate(group.members):
            if m.id not in diverged and m.id not in newly:
                k = group.rows.index(i)
                checks += _theory_checks(config, m, k, host, m_l)
        io.append_jsonl(workdir / "theory.jsonl", checks)
    if newly:
        diverged.update(newly)
        keep = [i for i in group.active if group.members[i].id not in diverged]
        group.set_active(keep)
    return records


def _theory_checks(
    config: ml_collections.ConfigDict, m: Member, k: int, host: dict[str, Any], m_l: dict[str, int]
) -> list[dict[str, Any]]:
    """The theory on member ``m``'s recorded window: one record per window length n.

    For each recorded layer: the identity residual ``‖W_T − a_n W_{T−n} − b_n v_{T−n} −
    U_{T,n}‖/‖W_T‖``, the numerical rank of ``U_{T,n}`` beside Lemma 3.1's ``m_l·B·n``, and
    Lemma 3.2's distance from ``W_T/‖W_T‖`` to rank ≤ m_l·B·n beside its bound, in the
    Frobenius and the spectral norm.
    """
    member = lambda tree: jax.tree_util.tree_map(lambda x: jnp.asarray(x[k]), tree)
    win = host["window"]
    window = theory.Window(
        member(win["weights"]), member(win["velocities"]), member(win["grads"]),
        jnp.asarray(win["learning_rates"][k]),
    )  # fmt: skip
    matrices = rank.weight_matrices(member(host["params"]))
    w_end = {p: w for p, w in matrices.items() if p in window.grads}
    out = []
    for n in config.record.windows:
        dec = theory.decompose_window(
            window, m.weight_decay, m.momentum, config.optim.decoupled, n=n
        )
        residual = dec.residual(w_end)
        layers = {}
        for p, w in w_end.items():
            bound = m_l[p] * m.batch_size * n
            fro = theory.lemma32(w, dec.tail[p], bound, "frobenius")
            spec = theory.lemma32(w, dec.tail[p], bound, "spectral")
            layers[p] = {
                "residual": float(residual[p]),
                "rank_update": theory.numerical_rank(np.asarray(dec.update[p])),
                "rank_bound": min(bound, min(w.shape)),
                "lemma32_frobenius": [float(fro["distance"]), float(fro["bound"])],
                "lemma32_spectral": [float(spec["distance"]), float(spec["bound"])],
            }
        out.append(
            {
                "member": m.id,
                **m.hparams(),
                "n": n,
                "weight_coefficient": float(dec.weight_coefficient),
                "max_residual": max(v["residual"] for v in layers.values()),
                "layers": layers,
            }
        )
    return out
