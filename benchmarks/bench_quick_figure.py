"""Where a quick figure's time goes: training steps, evaluation, rank SVDs, compilation.

    .venv/bin/python benchmarks/bench_quick_figure.py --fig 11 [--panel 0] [--epochs 2]

Builds the panel's compile group exactly as ``lowrank.engine.run`` does (same config, data,
execution modes) and times, in one run: the first call of each piece (compilation +
one execution) and then its steady cost per epoch — one training epoch, evaluating the
training and test splits, and measuring the ranks — and prints each as a share of a
steady epoch, with the run's epochs, ``train.eval_every`` and ``rank.every`` taken into
account. Checkpoints are asynchronous and not timed.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import jax.numpy as jnp

from lowrank import data, figures, io, models
from lowrank.config_files import load_config_file
from lowrank.engine import Group, loop_threads, member_mesh
from lowrank.engine import members as members_of

ROOT = Path(__file__).resolve().parent.parent


def load_config(number: int, quick: bool):
    return load_config_file(ROOT / "configs" / f"fig{number:02d}.py", "quick" if quick else None)


def timed(fn) -> float:
    start = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fig", type=int, required=True)
    ap.add_argument("--panel", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=2, help="steady epochs to time")
    ap.add_argument("--full", action="store_true", help="the full-scale config, not :quick")
    ap.add_argument("--threads", type=int, default=0, help="sweep.threads (0: one per core)")
    args = ap.parse_args()
    panel = figures.panel_configs(load_config(args.fig, not args.full))[args.panel]
    c = panel.config
    c.sweep.threads = args.threads
    ds = data.load_dataset(c.data)
    model = models.build_model(c.model, ds.num_classes)
    start = time.perf_counter()
    group = Group(c, ds, model, members_of(c), member_mesh())
    init_s = time.perf_counter() - start
    x, y, tx, ty = (jax.device_put(a) for a in (ds.train_images, ds.train_labels,
                                                ds.test_images, ds.test_labels))  # fmt: skip
    pieces = {
        "train epoch": lambda e: group.train(e, x, y, record=False)["run"],
        "evaluate train split": lambda e: group.evaluate(x, y),
        "evaluate test split": lambda e: group.evaluate(tx, ty),
        "measure ranks": lambda e: group.measure(),
    }
    first = {name: timed(lambda f=f: f(1)) for name, f in pieces.items()}
    steady = {
        name: sum(timed(lambda f=f, e=e: f(2 + e)) for e in range(args.epochs)) / args.epochs
        for name, f in pieces.items()
    }
    epochs, t = c.train.epochs, c.train
    per_run = {  # how many times a run calls each piece
        "train epoch": epochs,
        "evaluate train split": (epochs // t.eval_every + 1) if t.eval_train else 0,
        "evaluate test split": epochs // t.eval_every + 1,
        "measure ranks": epochs // c.rank.every + 1,
    }
    total = sum(steady[n] * per_run[n] for n in pieces)
    rows = [
        [n, f"{first[n]:.2f}", f"{steady[n]:.3f}", per_run[n], f"{steady[n] * per_run[n]:.1f}",
         f"{steady[n] * per_run[n] / total:.1%}"]
        for n in pieces
    ]  # fmt: skip
    print(f"Fig. {args.fig} panel {args.panel} ({panel.label}): {len(group.members)} members, "
          f"{group.steps} steps/epoch, {epochs} epochs, B={group.batch_size}, "
          f"{jax.default_backend()}, {loop_threads(c)} threads; group built (init "
          f"compiled) in {init_s:.1f} s")  # fmt: skip
    header = ["piece", "first call s", "steady s", "calls/run", "run s", "share of run"]
    print(io.format_table(header, rows))
    compile_s = sum(first[n] - steady[n] for n in pieces) + init_s
    print(
        f"compilation (first calls less a steady call, + init): {compile_s:.1f} s; "
        f"steady run {total:.0f} s; training is {steady['train epoch'] * epochs / total:.0%}"
    )


if __name__ == "__main__":
    jnp.zeros(())  # backend up before timing
    main()
