"""A sweep as one compiled program per compile group: config grid → members → results.

Members are the Cartesian product of ``config.sweep``'s lists. Seeds, μ, λ and β are
traced values, so all members of one batch size train together in one ``vmap``ped,
``jit``ted program; each batch size is a compile group, run one after another.
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
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from tqdm import tqdm

from lowrank import config as config_lib
from lowrank import data, io, models, optim, train
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
    from lowrank import theory

    out: dict[str, list[float | None]] = {}
    for path, m in m_l.items():
        out[path] = [
            float(theory.theorem33_rank_bound(m, batch_size, lr, lam, e)) if e < 0.5 else None
            for e in epsilons
        ]
    return out


class _Group:
    """The compiled functions and device state of one compile group."""

    def __init__(self, config, ds, model, group_members, input_shape):
        self.members = group_members
        self.batch_size = group_members[0].batch_size
        self.steps = data.steps_per_epoch(ds.num_train, self.batch_size, field="sweep.batch_sizes")
        o = config.optim
        self.multiplier = optim.lr_multiplier(o.schedule, o.milestones, o.factor, self.steps)
        tx = optim.make_optimizer(o, self.steps)
        self.hparams = train.Hparams(
            learning_rate=jnp.asarray([m.learning_rate for m in group_members], jnp.float32),
            weight_decay=jnp.asarray([m.weight_decay for m in group_members], jnp.float32),
            momentum=jnp.asarray([m.momentum for m in group_members], jnp.float32),
        )
        keys = jnp.stack([jax.random.PRNGKey(m.seed) for m in group_members])
        init = functools.partial(train.init_state, model=model, tx=tx, input_shape=input_shape)
        self.state = jax.jit(jax.vmap(init))(keys, self.hparams)

        epoch = functools.partial(
            train.train_epoch,
            model=model,
            tx=tx,
            batch_size=self.batch_size,
            mean=ds.mean,
            std=ds.std,
            aug_cfg=config.augment,
        )
        self.epoch_fn = jax.jit(jax.vmap(epoch, in_axes=(0, 0, None, None, None)), donate_argnums=0)
        evaluate = functools.partial(
            train.evaluate,
            model=model,
            batch_size=config.train.eval_batch_size,
            mean=ds.mean,
            std=ds.std,
        )
        self.eval_fn = jax.jit(jax.vmap(evaluate, in_axes=(0, None, None)))
        measure = functools.partial(
            train.measure,
            epsilons=tuple(config.rank.epsilons),
            normalization=config.rank.normalization,
            method=config.rank.method,
            selection=rank_selection(config),
        )
        self.measure_fn = jax.jit(jax.vmap(measure))


def _member_records(
    group: _Group,
    epoch: int,
    host: dict[str, Any],
    m_l: dict[str, int],
    epsilons: tuple[float, ...],
    previous_norms: dict[int, dict[str, float]],
    seconds: float,
) -> list[dict[str, Any]]:
    """One JSON record per member for this epoch, from the host copy of the metrics."""
    lr_mult = float(group.multiplier(jnp.asarray(epoch * group.steps)))
    records = []
    for k, m in enumerate(group.members):
        r: dict[str, Any] = {"member": m.id, "group": m.group, **m.hparams(), "epoch": epoch}
        r["lr_now"] = m.learning_rate * lr_mult
        r["seconds"] = seconds
        if "run" in host:
            for name, v in host["run"].items():
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
                {p: (prev[p] / norms[p] if norms[p] > 0 else math.inf) for p in norms}
                if prev
                else None
            )
            previous_norms[m.id] = norms
            r["nonfinite"] = bool(ms["any_nonfinite"][k])
            r["bound"] = theorem33_bounds(m_l, m.batch_size, r["lr_now"], m.weight_decay, epsilons)
        records.append(r)
    return records


def _summary(records: list[dict[str, Any]], epsilon: float) -> str:
    """Final average rank and accuracy per hyperparameter setting, mean ± std over seeds."""
    key = f"avg_rank@{epsilon:g}"
    final: dict[int, dict[str, Any]] = {}
    first: dict[int, dict[str, Any]] = {}
    for r in records:
        if key not in r:
            continue
        first.setdefault(r["member"], r)
        final[r["member"]] = r
    settings: dict[tuple, list[int]] = {}
    for mid, r in final.items():
        settings.setdefault(
            (r["batch_size"], r["learning_rate"], r["weight_decay"], r["momentum"]), []
        ).append(mid)

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
    return io.format_table(header, rows)


def run(config: ml_collections.ConfigDict, workdir: str | Path, *, progress: bool = True) -> str:
    """Trains every member of the sweep and writes the results folder.

    Args:
      config: a run config (see ``lowrank.config.base_config``).
      workdir: the results folder (created).
      progress: show a progress bar per compile group.

    Returns:
      The summary table (also written to ``workdir/summary.txt``).
    """
    config_lib.validate(config)
    workdir = Path(workdir)
    ds = data.load_dataset(config.data)
    config_lib.validate_batch_sizes(config, ds.num_train)
    log.info("data: %s", ds.describe())

    workdir.mkdir(parents=True, exist_ok=True)
    io.atomic_write_text(workdir / "config.json", config.to_json_best_effort(indent=2) + "\n")
    all_members = members(config)
    io.atomic_write_text(
        workdir / "members.json",
        json.dumps([dataclasses.asdict(m) for m in all_members], indent=1) + "\n",
    )
    metrics_path = workdir / "metrics.jsonl"
    metrics_path.unlink(missing_ok=True)

    model = models.build_model(config.model, ds.num_classes)
    epsilons = tuple(float(e) for e in config.rank.epsilons)
    m_l = structure.patch_counts(model, ds.input_shape, **rank_selection(config))
    train_x, train_y = jax.device_put(ds.train_images), jax.device_put(ds.train_labels)
    test_x, test_y = jax.device_put(ds.test_images), jax.device_put(ds.test_labels)

    precision = (
        contextlib.nullcontext()
        if config.train.precision == "default"
        else jax.default_matmul_precision(config.train.precision)
    )
    epochs = config.train.epochs
    all_records: list[dict[str, Any]] = []
    with precision:
        for g in range(len(config.sweep.batch_sizes)):
            group_members = [m for m in all_members if m.group == g]
            group = _Group(config, ds, model, group_members, ds.input_shape)
            dropped = data.describe_remainder(ds.num_train, group.batch_size)
            if dropped:
                log.warning("group %d: %s", g, dropped)
            previous_norms: dict[int, dict[str, float]] = {}
            bar = tqdm(
                range(epochs + 1),
                desc=f"group {g} (B={group.batch_size}, {len(group_members)} members)",
                disable=not progress,
                dynamic_ncols=True,
            )
            for epoch in bar:
                start = time.perf_counter()
                out: dict[str, Any] = {}
                if epoch > 0:
                    group.state, out["run"] = group.epoch_fn(
                        group.state, group.hparams, train_x, train_y, jnp.asarray(epoch)
                    )
                if config.train.eval_train:
                    out["train"] = group.eval_fn(group.state, train_x, train_y)
                out["test"] = group.eval_fn(group.state, test_x, test_y)
                last = epoch == epochs
                if epoch % config.rank.every == 0 or last:
                    out["rank"] = group.measure_fn(group.state.params)
                host = jax.device_get(out)  # the one host sync of the epoch
                seconds = time.perf_counter() - start
                records = _member_records(
                    group, epoch, host, m_l, epsilons, previous_norms, seconds
                )
                io.append_jsonl(metrics_path, records)
                all_records.extend(records)
                every = config.rank.spectra_every
                if "rank" in host and (last or (every and epoch % every == 0)):
                    io.save_npz(
                        workdir / "spectra" / f"group{g}_epoch{epoch:04d}.npz",
                        host["rank"]["singular_values"],
                    )
                if "rank" in host:
                    ranks = host["rank"]["average"]["threshold_rank"][:, 0]
                    bar.set_postfix_str("avg rank " + " ".join(f"{v:.1f}" for v in ranks))
    table = _summary(all_records, epsilons[0])
    io.atomic_write_text(workdir / "summary.txt", table + "\n")
    return table
