"""Compression study: train networks with different λ, truncate them by SVD, re-evaluate.

    python experiments/compression_study.py --config=configs/compression.py:quick \\
        --out workdirs/compression_quick --publish experiments/results/compression
    python experiments/compression_study.py --config=configs/compression.py \\
        --out workdirs/compression

Trains every member of the config's sweep (seeds × μ × λ × β, one batch size) with the
engine (``lowrank.engine.run`` into ``--out/sweep``, a results folder like any other),
saves the final parameters (``params.npz``: ``{path: (members, ...)}``, with BatchNorm
statistics, from the run's last checkpoint) and then, for each
member, truncates every weight matrix with ``lowrank.compress`` (to its effective rank
at each ``compress.epsilons`` and to each ``compress.fractions`` of its full rank; the
matrices matching ``compress.keep`` stay whole) and re-evaluates test accuracy. Writes
``compression.jsonl`` (one row per member and level), ``summary.txt`` and
``compression.png``. With ``params.npz`` present, training is skipped
(``--retrain`` forces it), so the study can be redone or redrawn cheaply.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from lowrank import compress, data, engine, io, logs, models, rank
from lowrank import config as config_lib
from lowrank.data import DataError
from lowrank.figures import layer_plots, plots

_CONFIG = config_flags.DEFINE_config_file("config", None, "configs/compression.py[:quick].")
_OUT = flags.DEFINE_string("out", None, "Results folder (created).")
_RETRAIN = flags.DEFINE_bool("retrain", False, "Train again even if params.npz exists.")
_PUBLISH = flags.DEFINE_string("publish", None, "Copy the PNG and summary into this folder.")

_PROGRESS = flags.DEFINE_bool("progress", True, "Show the training progress bar.")
_LOG_LEVEL = logs.define_flag()
log = logging.getLogger("experiments.compression")


def train_members(
    config, out: Path, progress: bool, restart: bool
) -> tuple[list[engine.Member], Any, dict]:
    """Trains all members (one batch size) with the engine into ``out/sweep``.

    Returns:
      The members that did not diverge, their final ``TrainState`` (leading members axis)
      and per-member test accuracy and average rank at the first ε, read from the run's
      ``metrics.jsonl``.
    """
    if len(config.sweep.batch_sizes) != 1:
        raise config_lib.ConfigError(
            "bad config:\n  the compression study trains one batch size; "
            f"sweep.batch_sizes={tuple(config.sweep.batch_sizes)}."
        )
    engine.run(config, out / "sweep", progress=progress, restart=restart)
    members, state = engine.final_state(config, out / "sweep")
    last = {
        r["member"]: r
        for r in io.read_jsonl(out / "sweep" / "metrics.jsonl")
        if r["epoch"] == config.train.epochs and not r.get("diverged")
    }
    key = f"avg_rank@{float(config.rank.epsilons[0]):g}"
    measured = {
        name: np.asarray([last[m.id][name] for m in members]) for name in ("test_accuracy", key)
    }
    return members, state, measured


def save_params(path: Path, params: Any, batch_stats: Any) -> None:
    arrays = {f"params/{p}": np.asarray(v) for p, v in rank.leaves_with_paths(params)}
    arrays.update(
        {f"batch_stats/{p}": np.asarray(v) for p, v in rank.leaves_with_paths(batch_stats)}
    )
    io.save_npz(path, arrays)


def load_params(path: Path, params_like: Any, stats_like: Any) -> tuple[Any, Any]:
    """Reads ``params.npz`` back into the structure of freshly initialized variables."""
    with np.load(path) as z:
        stored = {k: z[k] for k in z.files}

    def fill(prefix: str, like: Any) -> Any:
        return jax.tree_util.tree_map_with_path(
            lambda kp, _: stored[f"{prefix}/{rank.path_str(kp)}"], like
        )

    return fill("params", params_like), fill("batch_stats", stats_like)


def member_slice(tree: Any, k: int) -> Any:
    return jax.tree.map(lambda x: np.asarray(x)[k], tree)


def summary(rows: list[dict[str, Any]], epsilons: tuple[float, ...]) -> str:
    """Per λ: uncompressed accuracy, and for a few levels the parameters kept and accuracy."""
    header = ["lambda", "seeds", "test acc", "level", "avg rank", "params kept", "test acc (cut)"]
    levels = [("epsilon", e) for e in epsilons] + [("fraction", f) for f in (0.3, 0.1, 0.05)]
    out = []

    def ms(values: list[float], spec: str) -> str:
        a = np.asarray(values, float)
        return f"{format(a.mean(), spec)} ± {format(a.std(), spec)}"

    for lam in sorted({r["weight_decay"] for r in rows}):
        mine = [r for r in rows if r["weight_decay"] == lam]
        base = [r["accuracy"] for r in mine if r["method"] == "none"]
        for method, level in levels:
            pts = [r for r in mine if r["method"] == method and math.isclose(r["level"], level)]
            if not pts:
                continue
            out.append(
                [
                    lam,
                    len(base),
                    ms(base, ".3f"),
                    f"ε={level:g}" if method == "epsilon" else f"{level:g}·full",
                    ms([r["avg_rank"] for r in pts], ".1f"),
                    ms([r["param_fraction"] for r in pts], ".3f"),
                    ms([r["accuracy"] for r in pts], ".3f"),
                ]
            )
    return io.format_table(header, out)


def run(config, out: Path, retrain: bool) -> str:
    config_lib.validate(config)
    ds = data.load_dataset(config.data)
    config_lib.validate(config, num_train=ds.num_train)
    log.info("data: %s", ds.describe())
    model = models.build_model(config.model, ds.num_classes)
    out.mkdir(parents=True, exist_ok=True)
    io.atomic_write_text(out / "config.json", config.to_json_best_effort(indent=2) + "\n")
    params_file = out / "params.npz"
    members = engine.members(config)
    if retrain or not params_file.exists():
        start = time.perf_counter()
        members, state, measured = train_members(config, out, _PROGRESS.value, retrain)
        save_params(params_file, state.params, state.batch_stats)
        io.atomic_write_text(
            out / "members.json",
            json.dumps(
                [{**dataclasses.asdict(m), **{k: float(v[i]) for k, v in measured.items()}}
                 for i, m in enumerate(members)], indent=1,
            ) + "\n",
        )  # fmt: skip
        io.atomic_write_text(out / "train_seconds.txt", f"{time.perf_counter() - start:.1f}\n")
        params, stats = state.params, state.batch_stats
    else:
        log.info("reusing %s (pass --retrain to train again)", params_file)
        x = jnp.zeros((1, *ds.input_shape))
        like = jax.eval_shape(
            lambda: model.init({"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(0)},
                               x, train=False)
        )  # fmt: skip
        one = lambda t: jax.tree.map(lambda s: np.zeros((len(members), *s.shape), s.dtype), t)
        params, stats = load_params(
            params_file, one(like["params"]), one(like.get("batch_stats", {}))
        )
    c = config.compress
    selection = config_lib.rank_selection(config)
    selection["exclude"] = [*(selection["exclude"] or []), *c.get("keep", ())] or None
    rows = []
    for k, m in enumerate(members):
        evaluate = compress.accuracy_fn(
            model, ds.test_images, ds.test_labels, mean=ds.mean, std=ds.std,
            batch_stats=member_slice(stats, k), batch_size=config.train.eval_batch_size,
        )  # fmt: skip
        curve = compress.compression_curve(
            member_slice(params, k), evaluate, epsilons=tuple(c.epsilons),
            fractions=tuple(c.fractions), normalization=config.rank.normalization, **selection,
        )  # fmt: skip
        for r in curve:
            rows.append({"member": m.id, **m.hparams(), **r})
        base = curve[0]["accuracy"]
        log.info(
            "member %d (λ=%g, seed %d): test accuracy %.4f", m.id, m.weight_decay, m.seed, base
        )
    path = out / "compression.jsonl"
    path.unlink(missing_ok=True)
    io.append_jsonl(path, rows)
    table = summary(rows, tuple(c.epsilons[:3]))
    io.atomic_write_text(out / "summary.txt", table + "\n")
    title = (
        f"Compression by truncated SVD: {config.model.name} on {config.data.name} "
        f"(dotted: uncompressed)"
    )
    fig = layer_plots.plot_compression(rows, title=title)
    plots.save_png(fig, out / "compression.png")
    return table


def main(argv: list[str]) -> None:
    del argv
    logs.configure(_LOG_LEVEL.value)
    if _CONFIG.value is None or _OUT.value is None:
        raise app.UsageError("give --config=configs/compression.py[:quick] and --out=DIR.")
    try:
        print(run(_CONFIG.value, Path(_OUT.value), _RETRAIN.value))
    except (config_lib.ConfigError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    if _PUBLISH.value:
        dest = Path(_PUBLISH.value)
        dest.mkdir(parents=True, exist_ok=True)
        for name in ("compression.png", "summary.txt", "members.json", "train_seconds.txt"):
            if (Path(_OUT.value) / name).exists():
                shutil.copy2(Path(_OUT.value) / name, dest / name)


if __name__ == "__main__":
    app.run(main)
