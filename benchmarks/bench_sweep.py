"""Benchmark: sweep throughput of the training engine (issue 5).

For each model, execution strategy, batch size B and member count K, builds the engine's
own epoch function (``lowrank.engine.epoch_function``; data on the device), runs one
warm-up epoch (which compiles), then times whole epochs on random uint8 data of the
model's input size. A strategy is ``<sweep.vectorize>/<train.epoch_loop>``: ``vmap/scan``
(one compiled program per epoch over all members), ``loop/scan`` (that program for one
member, called per member), ``loop/host`` and ``vmap/host`` (one compiled call per step);
``auto/auto`` is what the engine picks here. It prints, from the same run:

* member-samples/s (K · steps · B / epoch time), its ratio to K = 1 of the same strategy
  and to the engine's choice at the same B and K (what ``sweep.vectorize = "auto"`` and
  ``train.epoch_loop = "auto"`` rest on: below 1 everywhere means the choice is right);
* the fraction of this machine's fp32 matmul rate (a jitted 2048² ``jnp.dot``, measured
  right before and after each combination, so that load from other processes is tracked)
  that the sweep reaches, counting the model's matmul/conv FLOPs from its layer shapes.

Run from the repository root: ``.venv/bin/python benchmarks/bench_sweep.py`` (mlp and
resnet8, K ∈ {1, 4, 16, 64}, B ∈ {8, 16, 128}, three strategies; combinations estimated
over ``--max-epoch-s`` are skipped), ``--quick`` (K ∈ {1, 16}, B = 16, half the examples,
3 timed epochs, ``--max-epoch-s 15``), or e.g. ``--models vit32 --ks 1,16 --batch-sizes 16``.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import math
import os
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax
import jax.numpy as jnp
import ml_collections

from lowrank import config, data, engine, io, models, optim, rank, train
from lowrank.models import structure

# name → (model family, config overrides, input shape, augmentation on?)
MODELS: dict[str, tuple[str, dict[str, Any], tuple[int, int, int], bool]] = {
    # MLP-BN-3-256 on Fashion-MNIST-sized inputs, no augmentation (configs/default.py).
    "mlp": ("mlp_bn", {"width": 256, "depth": 3}, (28, 28, 1), False),
    # ResNet-18 at width 8 (stages 8-16-32-64) on CIFAR-sized inputs, paper augmentation.
    "resnet8": ("resnet18", {"width": 8}, (32, 32, 3), True),
    # VGG-16 at width 8, CIFAR-sized, paper augmentation.
    "vgg8": ("vgg16", {"width": 8}, (32, 32, 3), True),
    # ViT of width 32 (2 layers, 4 heads, 4×4 patches), CIFAR-sized, no augmentation. Its
    # FLOPs count the weight matrices only (not the attention scores).
    "vit32": (
        "vit",
        {"width": 32, "patch_size": 4, "num_heads": 4, "num_layers": 2, "mlp_dim": 64},
        (32, 32, 3),
        False,
    ),
}
# Training examples per epoch (--examples overrides): the conv nets run ~50× slower.
EXAMPLES = {"mlp": 2048, "resnet8": 256, "vgg8": 256, "vit32": 512}
GOAL_K, GOAL_B = 16, 16  # issue 5: ≥ 4× the K = 1 throughput, ≥ 40 % of the matmul rate


def run_config(name: str, k: int, b: int, strategy: str) -> ml_collections.ConfigDict:
    """A run config for K members (seeds 0..K−1) at batch size B."""
    family, overrides, _, aug = MODELS[name]
    c = config.base_config(family)
    for key, v in overrides.items():
        c.model[key] = v
    c.augment.crop = c.augment.flip = c.augment.rotate = aug
    c.optim.schedule = "constant"
    c.sweep.seeds = tuple(range(k))
    c.sweep.learning_rates, c.sweep.weight_decays, c.sweep.batch_sizes = (0.05,), (5e-4,), (b,)
    c.sweep.vectorize, c.train.epoch_loop = strategy.split("/")
    return c


def resolved(cfg: ml_collections.ConfigDict) -> str:
    """The strategy the engine runs for ``cfg`` ("auto" resolved)."""
    return f"{engine.vectorize_mode(cfg)}/{engine.epoch_loop_mode(cfg)}"


def fake_dataset(shape: tuple[int, int, int], n: int, seed: int = 0) -> types.SimpleNamespace:
    """Random uint8 images and labels of a dataset's size (what a compile group reads)."""
    rng = np.random.default_rng(seed)
    c = shape[-1]
    return types.SimpleNamespace(
        num_train=n,
        mean=np.full(c, 0.5, np.float32),
        std=np.full(c, 0.25, np.float32),
        x=rng.integers(0, 256, (n, *shape), dtype=np.uint8),
        y=rng.integers(0, 10, (n,), dtype=np.int32),
    )


class Group:
    """One compile group as ``lowrank.engine.Group`` builds it, without the results
    plumbing: the engine's ``epoch_fn`` for ``strategy`` and a members' state (one
    device: members are not sharded)."""

    def __init__(self, name: str, k: int, b: int, ds: types.SimpleNamespace, strategy: str):
        cfg = run_config(name, k, b, strategy)
        config.validate(cfg)
        model = models.build_model(cfg.model, 10)
        self.steps = data.steps_per_epoch(ds.num_train, b)
        tx = optim.make_optimizer(cfg.optim, self.steps)
        hparams = train.Hparams(
            learning_rate=jnp.full((k,), cfg.sweep.learning_rates[0], jnp.float32),
            weight_decay=jnp.full((k,), cfg.sweep.weight_decays[0], jnp.float32),
            momentum=jnp.zeros((k,), jnp.float32),
        )
        init = functools.partial(train.init_state, model=model, tx=tx, input_shape=MODELS[name][2])
        keys = jnp.stack([jax.random.PRNGKey(s) for s in range(k)])
        self.state = synthetic_state(jax.vmap(init), keys, hparams)
        self.epoch_fn = engine.epoch_function(
            cfg,
            engine.OverMembers(cfg),
            model=model,
            tx=tx,
            batch_size=b,
            mean=ds.mean,
            std=ds.std,
        )


def synthetic_state(init: Callable, keys: jax.Array, hparams: train.Hparams) -> Any:
    """The members' TrainState with random values, without compiling the initializer.

    Compiling ``jax.vmap(train.init_state)`` takes minutes for the conv nets on this CPU
    and does not change the throughput, so take the state's structure from
    ``jax.eval_shape`` and fill it: kernels N(0, 1/fan_in), BatchNorm scales and running
    variances 1, everything else 0, then the members' μ, λ, β into the optimizer state
    (``optim.with_hparams``, as ``train.init_state`` does) and the members' own keys.
    """
    abstract = jax.eval_shape(init, keys, hparams)
    rng = np.random.default_rng(0)

    def fill(path: Any, leaf: jax.ShapeDtypeStruct) -> jax.Array:
        p = rank.path_str(path)
        if p.startswith("params") and len(leaf.shape) >= 3:  # (K, ..., in, out) kernels
            fan_in = math.prod(leaf.shape[1:-1])
            return jnp.asarray(rng.standard_normal(leaf.shape) / math.sqrt(fan_in), leaf.dtype)
        if p.split("/")[0] in ("params", "batch_stats") and p.endswith(("/scale", "/var")):
            return jnp.ones(leaf.shape, leaf.dtype)
        return jnp.zeros(leaf.shape, leaf.dtype)

    state = jax.tree_util.tree_map_with_path(fill, abstract)
    set_hparams = lambda o, lr, wd, mom: optim.with_hparams(
        o, learning_rate=lr, weight_decay=wd, momentum=mom
    )
    opt_state = jax.vmap(set_hparams)(
        state.opt_state, hparams.learning_rate, hparams.weight_decay, hparams.momentum
    )
    rng_key = jnp.asarray(keys, abstract.rng.dtype).reshape(abstract.rng.shape)
    return state.replace(opt_state=opt_state, rng=rng_key)


def model_flops(name: str) -> tuple[float, float, int]:
    """Forward and training matmul/conv FLOPs per sample from the layer shapes, and the
    number of weight layers.

    Each weight matrix (out, in) multiplies m_l vectors per sample (the output positions
    of a convolution, 1 for a dense layer on a vector): 2 · m_l · out · in FLOPs forward.
    Training = forward + weight gradients (the same) + input gradients (the same, except
    the first layer's): about 3× forward. BatchNorm, activations, the loss, the optimizer
    and the data pipeline are not counted. Abstract shapes only: nothing is compiled.
    """
    family, overrides, shape, _ = MODELS[name]
    cfg = models.default_model_config(family)
    for key, v in overrides.items():
        cfg[key] = v
    model = models.build_model(cfg, 10)
    m_l = structure.patch_counts(model, shape)
    calls, variables = structure.layer_calls(model, shape)
    mats = jax.eval_shape(rank.weight_matrices, variables["params"])
    per_layer = {p: 2.0 * m_l[p] * math.prod(mats[p].shape) for p in m_l}
    forward = sum(per_layer.values())
    return forward, 3.0 * forward - per_layer[calls[0].path], len(m_l)


class MatmulRate:
    """The machine's fp32 matmul rate, from a jitted (n × n) @ (n × n) ``jnp.dot``."""

    def __init__(self, n: int = 2048):
        self.n = n
        key = jax.random.key(0)
        self.a = jax.random.normal(key, (n, n), jnp.float32)
        self.b = jax.random.normal(jax.random.fold_in(key, 1), (n, n), jnp.float32)
        self.fn = jax.jit(jnp.dot)
        jax.block_until_ready(self.fn(self.a, self.b))

    def measure(self, repeats: int = 3) -> float:
        """GFLOP/s, median of ``repeats`` calls."""
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            jax.block_until_ready(self.fn(self.a, self.b))
            times.append(time.perf_counter() - start)
        return 2.0 * self.n**3 / float(np.median(times)) / 1e9


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def measure(name: str, strategy: str, b: int, k: int, ds: Any, epochs: int, rate: MatmulRate):
    """One combination: a warm-up epoch (compiles), then the median of ``epochs`` epochs,
    with the matmul rate averaged from right before and right after."""
    before = rate.measure()
    start = time.perf_counter()
    group = Group(name, k, b, ds, strategy)
    init_s = time.perf_counter() - start
    x, y = jax.device_put(ds.x), jax.device_put(ds.y)
    times = []
    for e in range(1 + epochs):
        start = time.perf_counter()
        group.state, m = group.epoch_fn(group.state, x, y, jnp.asarray(1 + e))
        jax.block_until_ready(m)
        times.append(time.perf_counter() - start)
    if not np.all(np.isfinite(np.asarray(m["loss"]))):
        print("    warning: non-finite loss")
    t = float(np.median(times[1:]))
    return {
        "steps": group.steps,
        "member_samples_per_s": k * group.steps * b / t,
        "matmul_gflops": 0.5 * (before + rate.measure()),
        "epoch_s": t,
        "notes": f"init {init_s:.0f}s, compile+warm-up {times[0]:.0f}s",
    }


def sweep_model(
    name: str,
    strategies,
    ks,
    bs,
    n_ex: int,
    epochs: int,
    max_s: float,
    rate: MatmulRate,
    per_sample: float,
) -> dict[tuple[str, int, int], dict]:
    """``{(strategy, B, K): result}`` for one model; a combination whose epoch is
    estimated over ``max_s`` (from the K = 1 epoch of the same strategy and B, assuming
    vmap gains at most 2×; before that from 10 % of the matmul rate) is skipped."""
    ds = fake_dataset(MODELS[name][2], n_ex)
    combos: dict[tuple[str, int, int], dict] = {}
    for strategy, b in itertools.product(strategies, bs):
        t1 = None
        for k in ks:
            st = resolved(run_config(name, k, b, strategy))
            if t1 is None:
                est = k * n_ex * per_sample / (0.1 * rate.measure() * 1e9)
            else:
                est = t1 * k / (min(k, 2) if st.startswith("vmap") else 1)
            if est > max_s:
                combos[(st, b, k)] = {"skipped": f"~{est:.0f}s/epoch > --max-epoch-s {max_s:g}"}
                print(f"   {st} B={b} K={k}: skipped ({combos[(st, b, k)]['skipped']})")
                continue
            r = combos[(st, b, k)] = measure(name, st, b, k, ds, epochs, rate)
            t1 = r["epoch_s"] if k == 1 else t1
            print(
                f"   {st} B={b} K={k}: {r['member_samples_per_s']:,.0f} member-samples/s, "
                f"epoch {r['epoch_s']:.2f}s  [load {loadavg()}]",
                flush=True,
            )
    return combos


def ratio(a: float, b: float | None) -> str:
    return f"{a / b:.2f}x" if b else "-"


def report(name: str, combos: dict, per_sample: float) -> dict[str, Any]:
    """The table of one model: ratios to K = 1 and to the engine's choice, % of matmul."""
    choice = resolved(run_config(name, 1, 1, "auto/auto"))  # the same for every B and K
    sps = {c: r.get("member_samples_per_s") for c, r in combos.items()}
    rows, out = [], {}
    for (st, b, k), r in combos.items():
        if "skipped" in r:
            rows.append([st, b, k, *["-"] * 7, r["skipped"]])
            out[f"{st} B={b} K={k}"] = r
            continue
        s, k1, ref = sps[(st, b, k)], sps.get((st, b, 1)), sps.get((choice, b, k))
        frac = s * per_sample / (r["matmul_gflops"] * 1e9)
        out[f"{st} B={b} K={k}"] = {**r, "vs_k1": s / k1 if k1 else None, "fraction": frac}
        out[f"{st} B={b} K={k}"]["vs_choice"] = s / ref if ref else None
        mm, t = f"{r['matmul_gflops']:.1f}", f"{r['epoch_s']:.2f}"
        row = [st, b, k, r["steps"], f"{s:,.0f}", ratio(s, k1), ratio(s, ref), mm]
        rows.append([*row, f"{100 * frac:.1f}%", t, r["notes"]])
    print(f"\n{name}: median of the timed epochs after a warm-up; engine's choice {choice}")
    header = ["strategy", "B", "K", "steps", "member-samples/s", "vs K=1", "vs choice"]
    header += ["matmul GFLOP/s", "% of matmul", "epoch s", "notes"]
    print(io.format_table(header, rows))
    for key, r in out.items():
        if key.endswith(f"B={GOAL_B} K={GOAL_K}") and r.get("vs_k1"):
            print(
                f"   issue 5 goals at K={GOAL_K}, B={GOAL_B}, {key.split()[0]}: ≥ 4× K=1 → "
                f"{r['vs_k1']:.2f}×, ≥ 40% of matmul → {100 * r['fraction']:.1f}%"
            )
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="K 1,16, B 16, half the examples, 3 epochs")
    p.add_argument("--models", default="mlp,resnet8", help=f"of {list(MODELS)}")
    p.add_argument("--ks", default="1,4,16,64", help="member counts")
    p.add_argument("--batch-sizes", default="8,16,128", help="batch sizes")
    p.add_argument("--examples", type=int, default=None, help=f"per epoch (default {EXAMPLES})")
    p.add_argument("--epochs", type=int, default=1, help="timed epochs after the warm-up")
    p.add_argument(
        "--strategies",
        default="vmap/scan,loop/scan,loop/host",
        help="sweep.vectorize/train.epoch_loop pairs to time (auto: the engine's choice)",
    )
    p.add_argument("--max-epoch-s", type=float, default=40.0, help="skip slower combinations")
    p.add_argument("--json", default="", help="write results to this JSON file")
    a = p.parse_args(argv)
    names = [x for x in a.models.split(",") if x]
    ks = sorted({1, *(int(x) for x in a.ks.split(","))})  # ratios need K = 1
    bs = [int(x) for x in a.batch_sizes.split(",")]
    if a.quick:
        ks, bs, a.max_epoch_s, a.epochs = [1, 16], [16], 15.0, 3
    strategies = [x for x in a.strategies.split(",") if x]
    for st in strategies:
        v, _, e = st.partition("/")
        if v not in config.VECTORIZE or e not in config.EPOCH_LOOPS:
            p.error(f"--strategies: {st!r} is not <{config.VECTORIZE}>/<{config.EPOCH_LOOPS}>")
    if set(names) - set(MODELS):
        p.error(f"unknown model(s) {sorted(set(names) - set(MODELS))}; choose from {list(MODELS)}")

    print("== bench_sweep: sweep throughput of the engine's epoch over K members")
    print(
        f"  jax {jax.__version__}, {jax.devices()[0].platform}, {os.cpu_count()} CPUs, "
        f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}, load average {loadavg()}"
    )
    rate = MatmulRate()
    print(f"  fp32 matmul rate (jitted 2048² jnp.dot, median of 5): {rate.measure(5):.1f} GFLOP/s")
    results: dict[str, Any] = {}
    start = time.perf_counter()
    for name in names:
        family, overrides, shape, aug = MODELS[name]
        fwd, per_sample, layers = model_flops(name)
        n_ex = a.examples or EXAMPLES[name] // (2 if a.quick else 1)
        print(
            f"\n== {name}: {family} {overrides}, input {shape}, augmentation "
            f"{'crop+flip+rotate' if aug else 'off'}; {layers} weight layers; training "
            f"{per_sample / 1e6:.2f} MFLOP/sample (forward {fwd / 1e6:.2f}); {n_ex} examples, "
            f"{a.epochs} timed epoch(s)"
        )
        combos = sweep_model(
            name, strategies, ks, bs, n_ex, a.epochs, a.max_epoch_s, rate, per_sample
        )
        results[name] = report(name, combos, per_sample)
    print(f"\ndone in {time.perf_counter() - start:.0f}s; load average {loadavg()}")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
