"""Benchmark: what representation ranks (``rank.probe_size``) cost, per model family.

For one member of each family at a quick figure's size, in one run: the milliseconds of
the weights' rank measurement (``train.measure``, what every measured epoch already pays)
and of the layer outputs' (``train.represent``) at several probe sizes, each compiled
once and timed as the median of interleaved repeats, and their ratio. The cost in a real
run (the same figure with and without the probe) is in experiments/README.md.

Run from the repository root: ``.venv/bin/python benchmarks/bench_represent.py``.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax
import jax.numpy as jnp

from lowrank import models, optim, train

EPSILONS = (1e-3, 1e-2, 1e-1)
# (family, model fields, input shape): the sizes of the quick figures.
FAMILIES = (
    ("mlp_bn", {"width": 100, "depth": 10}, (28, 28, 1)),
    ("res_bn", {"width": 128, "depth": 5}, (28, 28, 1)),
    ("vgg16", {"width": 8}, (32, 32, 1)),
    ("resnet18", {"width": 8}, (32, 32, 1)),
    (
        "vit",
        {"width": 32, "num_layers": 2, "num_heads": 4, "mlp_dim": 64, "patch_size": 2},
        (8, 8, 1),
    ),
)


def _state(name: str, fields: dict, shape: tuple[int, ...]):
    cfg = models.default_model_config(name)
    cfg.update({k: v for k, v in fields.items() if k in cfg})
    model = models.build_model(cfg, 10)
    o = optim.default_optim_config()
    hp = train.Hparams(jnp.float32(0.1), jnp.float32(1e-3), jnp.float32(0.0))
    state = train.init_state(
        jax.random.key(0), hp, model=model, tx=optim.make_optimizer(o, 100), input_shape=shape
    )
    return model, state


def _median_ms(fns: dict, repeats: int) -> dict[str, float]:
    """Interleaved repeats of each compiled function; the median per function, in ms."""
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            start = time.perf_counter()
            jax.block_until_ready(fn())
            times[k].append(1e3 * (time.perf_counter() - start))
    return {k: statistics.median(v) for k, v in times.items()}


def bench(probe_sizes: tuple[int, ...], repeats: int) -> None:
    print(f"{'family':<9} {'weights ms':>10} " + " ".join(f"{f'probe {p} ms':>13}" for p in
          probe_sizes) + " " + " ".join(f"{f'ratio@{p}':>9}" for p in probe_sizes))  # fmt: skip
    for name, fields, shape in FAMILIES:
        model, state = _state(name, fields, shape)
        measure = jax.jit(
            functools.partial(train.measure, epsilons=EPSILONS, normalization="spectral")
        )
        represent = jax.jit(
            functools.partial(
                train.represent,
                model=model,
                mean=0.0,
                std=1.0,
                epsilons=EPSILONS,
                normalization="spectral",
            )
        )
        fns = {"weights": functools.partial(measure, state.params)}
        for p in probe_sizes:
            images = jax.random.uniform(jax.random.key(p), (p, *shape))
            fns[p] = functools.partial(represent, state, images)
        for fn in fns.values():  # compile
            jax.block_until_ready(fn())
        ms = _median_ms(fns, repeats)
        cells = " ".join(f"{ms[p]:13.1f}" for p in probe_sizes)
        ratios = " ".join(f"{ms[p] / ms['weights']:9.2f}" for p in probe_sizes)
        print(f"{name:<9} {ms['weights']:10.1f} {cells} {ratios}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--probe-sizes", default="128,512")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    bench(tuple(int(p) for p in args.probe_sizes.split(",")), args.repeats)


if __name__ == "__main__":
    main()
