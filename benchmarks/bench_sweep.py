"""Benchmark: sweep throughput of the training engine (issue 5).

For each model, execution strategy, batch size B and member count K, builds the engine's
real epoch function (``lowrank.engine.epoch_function``; data on the device), runs one
warm-up epoch (which compiles), then times whole epochs on random uint8 data of the
model's input size. A strategy is ``<sweep.vectorize>/<train.epoch_loop>``: ``vmap/scan``
(one compiled program per epoch over all members: ``jit(vmap(train.train_epoch))``),
``loop/scan`` (that program for one member, called per member), ``loop/host`` and
``vmap/host`` (one compiled call per step). It prints, from the same run:

* member-samples per second (K · steps · B / epoch time) and the ratio to K = 1 of the
  same strategy;
* this machine's fp32 matrix-multiply rate (a jitted 2048² ``jnp.dot``), measured right
  before and after each combination so that load from other processes is tracked;
* the model's training FLOPs per sample (3 × the forward matmul/conv FLOPs from the layer
  shapes, cross-checked against XLA's ``cost_analysis`` of one train step) and the
  fraction of the measured matmul rate that the sweep reaches.

``--profile`` then takes the engine apart at one (K, B) (default 16, 16) and times the
pieces in one process, interleaved: the full epoch, the same with its ``lax.scan`` unrolled
8× (XLA:CPU runs convolutions inside a while loop far slower), without rotation or any
augmentation, without the gather/standardize (a fixed batch), forward+backward alone, a
plain SGD update instead of the optax chain, and (MLP) a hand-written batched matmul-only
MLP of the same shapes.

Run (from the repository root)::

    .venv/bin/python benchmarks/bench_sweep.py                 # all models, K, B (~30 min)
    .venv/bin/python benchmarks/bench_sweep.py --quick         # a subset, ~2 min
    .venv/bin/python benchmarks/bench_sweep.py --models mlp --ks 1,16 --batch-sizes 16 \\
        --profile
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import itertools
import json
import math
import os
import sys
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax
import jax.numpy as jnp
import ml_collections
import optax

from lowrank import augment, config, data, engine, io, models, optim, rank, train
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
DEFAULT_MODELS = ("mlp", "resnet8")
# Training examples per epoch (--examples overrides): the conv nets run ~50× slower.
EXAMPLES = {"mlp": 2048, "resnet8": 256, "vgg8": 256, "vit32": 512}
GOAL_K, GOAL_B = 16, 16  # issue 5: ≥ 4× the K = 1 throughput, ≥ 40 % of the matmul rate


# ---------------------------------------------------------------------------- setup


def run_config(name: str, k: int, b: int, strategy: str = "auto/auto") -> ml_collections.ConfigDict:
    """A validated run config for K members (seeds 0..K−1) at batch size B."""
    family, overrides, _, aug = MODELS[name]
    c = config.base_config(family)
    for key, v in overrides.items():
        c.model[key] = v
    c.augment.crop = c.augment.flip = c.augment.rotate = aug
    c.optim.schedule = "constant"
    c.sweep.seeds = tuple(range(k))
    c.sweep.learning_rates = (0.05,)
    c.sweep.weight_decays = (5e-4,)
    c.sweep.batch_sizes = (b,)
    c.sweep.vectorize, c.train.epoch_loop = strategy.split("/")
    return c


def fake_dataset(shape: tuple[int, int, int], n: int, seed: int = 0) -> types.SimpleNamespace:
    """Random uint8 images and labels of a dataset's size (what a compile group reads)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
    y = rng.integers(0, 10, (n,), dtype=np.int32)
    c = shape[-1]
    return types.SimpleNamespace(
        num_train=n, mean=np.full(c, 0.5, np.float32), std=np.full(c, 0.25, np.float32), x=x, y=y
    )


class Group:
    """One compile group as ``lowrank.engine.Group`` builds it, without the results plumbing.

    ``epoch_fn`` is the engine's own (``engine.epoch_function``) for ``strategy`` =
    ``"<sweep.vectorize>/<train.epoch_loop>"``: ``vmap/scan`` is one compiled program per
    epoch over all members, ``loop/host`` one compiled call per member and step; ``auto``
    is the engine's choice. Members are not sharded: this machine has one device.
    """

    def __init__(
        self,
        name: str,
        k: int,
        b: int,
        ds: types.SimpleNamespace,
        strategy: str = "auto/auto",
    ):
        cfg = run_config(name, k, b, strategy)
        self.strategy = f"{engine.vectorize_mode(cfg)}/{engine.epoch_loop_mode(cfg)}"
        config.validate(cfg)
        self.model = models.build_model(cfg.model, 10)
        self.steps = data.steps_per_epoch(ds.num_train, b)
        self.tx = optim.make_optimizer(cfg.optim, self.steps)
        self.hparams = train.Hparams(
            learning_rate=jnp.full((k,), cfg.sweep.learning_rates[0], jnp.float32),
            weight_decay=jnp.full((k,), cfg.sweep.weight_decays[0], jnp.float32),
            momentum=jnp.zeros((k,), jnp.float32),
        )
        init = functools.partial(
            train.init_state, model=self.model, tx=self.tx, input_shape=MODELS[name][2]
        )
        keys = jnp.stack([jax.random.PRNGKey(s) for s in range(k)])
        self.state = synthetic_state(jax.vmap(init), keys, self.hparams)
        self.epoch_fn = engine.epoch_function(
            cfg,
            engine.OverMembers(cfg),
            model=self.model,
            tx=self.tx,
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
        name = p.split("/")[-1]
        if p.startswith("params") and len(leaf.shape) >= 3:  # (K, ..., in, out) kernels
            fan_in = math.prod(leaf.shape[1:-1])
            return jnp.asarray(rng.standard_normal(leaf.shape) / math.sqrt(fan_in), leaf.dtype)
        if p.split("/")[0] in ("params", "batch_stats") and name in ("scale", "var"):
            return jnp.ones(leaf.shape, leaf.dtype)
        return jnp.zeros(leaf.shape, leaf.dtype)

    state = jax.tree_util.tree_map_with_path(fill, abstract)
    opt_state = jax.vmap(
        lambda o, lr, wd, mom: optim.with_hparams(
            o, learning_rate=lr, weight_decay=wd, momentum=mom
        )
    )(state.opt_state, hparams.learning_rate, hparams.weight_decay, hparams.momentum)
    return state.replace(
        opt_state=opt_state,
        rng=jnp.asarray(keys, abstract.rng.dtype).reshape(abstract.rng.shape),
    )


def model_of(name: str) -> Any:
    """The Flax module of a benchmark model (10 classes)."""
    family, overrides, _, _ = MODELS[name]
    cfg = models.default_model_config(family)
    for key, v in overrides.items():
        cfg[key] = v
    return models.build_model(cfg, 10)


def model_flops(name: str) -> tuple[float, float, int]:
    """Forward and training matmul/conv FLOPs per sample from the layer shapes.

    Each weight matrix (out, in) multiplies m_l vectors per sample (the output positions
    of a convolution, 1 for a dense layer on a vector): 2 · m_l · out · in FLOPs forward.
    Training = forward + weight gradients (the same) + input gradients (the same, except
    the first layer's, which nobody needs): about 3× forward. BatchNorm, activations, the
    loss, the optimizer and the data pipeline are not counted. Abstract shapes only
    (``jax.eval_shape``): nothing is compiled.

    Returns:
      ``(forward, training, number of weight layers)``.
    """
    model, shape = model_of(name), MODELS[name][2]
    m_l = structure.patch_counts(model, shape)
    calls, variables = structure.layer_calls(model, shape)
    mats = jax.eval_shape(rank.weight_matrices, variables["params"])
    per_layer = {p: 2.0 * m_l[p] * math.prod(mats[p].shape) for p in m_l}
    forward = sum(per_layer.values())
    return forward, 3.0 * forward - per_layer[calls[0].path], len(m_l)


def xla_step_flops(group: Group, name: str, b: int) -> float:
    """XLA's FLOP count of one vmapped train step at K = 1, per sample (cross-check)."""
    shape = MODELS[name][2]
    state1 = jax.tree_util.tree_map(lambda a: a[:1], group.state)
    batch = (jnp.zeros((1, b, *shape), jnp.float32), jnp.zeros((1, b), jnp.int32))
    step = jax.vmap(functools.partial(train.train_step, model=group.model, tx=group.tx))
    try:
        cost = jax.jit(step).lower(state1, batch).compile().cost_analysis()
    except Exception:  # cost analysis is best effort
        return math.nan
    if isinstance(cost, list):
        cost = cost[0] if cost else {}
    return float(cost.get("flops", math.nan)) / b if cost else math.nan


# --------------------------------------------------------------------------- timing


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


def time_epochs(group: Group, ds: Any, epochs: int) -> tuple[float, list[float]]:
    """Compile + warm-up epoch time, and the times of ``epochs`` further epochs."""
    x, y = jax.device_put(ds.x), jax.device_put(ds.y)
    start = time.perf_counter()
    group.state, m = group.epoch_fn(group.state, x, y, jnp.asarray(1))
    jax.block_until_ready(m)
    warm = time.perf_counter() - start
    times = []
    for e in range(epochs):
        start = time.perf_counter()
        group.state, m = group.epoch_fn(group.state, x, y, jnp.asarray(2 + e))
        jax.block_until_ready(m)
        times.append(time.perf_counter() - start)
    loss = np.asarray(m["loss"])
    if not np.all(np.isfinite(loss)):
        print(f"    warning: non-finite loss in {np.sum(~np.isfinite(loss))} members")
    return warm, times


def loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


# ------------------------------------------------------------------------ throughput


def throughput(
    names: list[str],
    ks: list[int],
    batch_sizes: list[int],
    examples: int | None,
    epochs: int,
    max_epoch_s: float,
    rate: MatmulRate,
    strategies: tuple[str, ...] = ("auto/auto",),
) -> dict[str, Any]:
    """The main table: member-samples/s per (model, strategy, B, K), ratio to K = 1 of the
    same strategy, % of matmul."""
    results: dict[str, Any] = {}
    for name in names:
        fwd, per_sample, layers = model_flops(name)
        family, overrides, shape, aug = MODELS[name]
        print(
            f"\n== {name}: {family} {overrides}, input {shape}, augmentation "
            f"{'crop+flip+rotate' if aug else 'off'}; {layers} weight layers"
        )
        print(
            f"   matmul/conv FLOPs per sample: forward {fwd / 1e6:.2f} M, training "
            f"{per_sample / 1e6:.2f} M (3× forward less the first layer's input gradient)"
        )
        n_ex = examples or EXAMPLES[name]
        ds = fake_dataset(shape, n_ex)
        rows = []
        res: dict[str, Any] = {"train_mflop_per_sample": per_sample / 1e6, "combos": {}}
        xla_checked = False
        for strategy, b in itertools.product(strategies, batch_sizes):
            base, t1 = None, None
            for k in ks:
                key = f"{strategy} B={b} K={k}"
                steps = n_ex // b
                before = rate.measure()
                # Skip what would blow the budget: from the K = 1 epoch time assuming vmap
                # gains at least 2×, or before that from 10 % of the matmul rate.
                est = k * steps * b * per_sample / (0.10 * before * 1e9)
                if t1 is not None:
                    est = t1 * k / (min(k, 2) if strategy.startswith("vmap") else 1)
                if est > max_epoch_s:
                    msg = f"skipped: ~{est:.0f}s/epoch estimated > --max-epoch-s {max_epoch_s:g}"
                    rows.append([strategy, b, k, steps, "-", "-", "-", "-", "-", msg])
                    res["combos"][key] = {"skipped": msg}
                    print(f"   {key}: {msg}", flush=True)
                    continue
                t0 = time.perf_counter()
                group = Group(name, k, b, ds, strategy)
                init_s = time.perf_counter() - t0
                if not xla_checked:
                    xla = xla_step_flops(group, name, b)
                    print(
                        f"   XLA cost_analysis of one train step: {xla / 1e6:.2f} MFLOP/sample "
                        f"(all ops; the table uses {per_sample / 1e6:.2f})"
                    )
                    res["xla_mflop_per_sample"] = xla / 1e6
                    xla_checked = True
                warm, times = time_epochs(group, ds, epochs)
                resolved = group.strategy
                after = rate.measure()
                del group
                t = float(np.median(times))
                sps = k * steps * b / t
                mm = 0.5 * (before + after)
                frac = sps * per_sample / (mm * 1e9)
                if k == 1:
                    base, t1 = sps, t
                ratio = sps / base if base else math.nan
                rows.append(
                    [
                        resolved,
                        b,
                        k,
                        steps,
                        f"{sps:,.0f}",
                        f"{ratio:.2f}x" if base else "-",
                        f"{mm:.1f}",
                        f"{100 * frac:.1f}%",
                        f"{t:.2f}",
                        f"init {init_s:.0f}s, compile+warm-up {warm:.0f}s",
                    ]
                )
                res["combos"][key] = {
                    "member_samples_per_s": sps,
                    "ratio_to_k1": ratio,
                    "matmul_gflops": mm,
                    "fraction_of_matmul": frac,
                    "epoch_s": t,
                    "warmup_s": warm,
                    "strategy": resolved,
                }
                print(
                    f"   {key}: {sps:,.0f} member-samples/s, {ratio:.2f}x K=1, "
                    f"{100 * frac:.1f}% of {mm:.1f} GFLOP/s  [load {loadavg()}]",
                    flush=True,
                )
        print(f"\n{name}: {n_ex} examples/epoch, median of {epochs} epoch(s) after a warm-up epoch")
        print(
            io.format_table(
                [
                    "members/epoch",
                    "B",
                    "K",
                    "steps",
                    "member-samples/s",
                    "vs K=1",
                    "matmul GFLOP/s",
                    "% of matmul",
                    "epoch s",
                    "notes",
                ],
                rows,
            )
        )
        for strategy in strategies:
            goal = res["combos"].get(f"{strategy} B={GOAL_B} K={GOAL_K}", {})
            if "ratio_to_k1" in goal:
                ok1, ok2 = goal["ratio_to_k1"] >= 4, goal["fraction_of_matmul"] >= 0.4
                print(
                    f"   goal at K={GOAL_K}, B={GOAL_B} ({strategy}): ≥4× K=1 → "
                    f"{goal['ratio_to_k1']:.2f}× ({'met' if ok1 else 'MISSED'}); ≥40% of "
                    f"matmul → {100 * goal['fraction_of_matmul']:.1f}% "
                    f"({'met' if ok2 else 'MISSED'})"
                )
        results[name] = res
    return results


# -------------------------------------------------------------------------- profile


@contextlib.contextmanager
def scan_unroll(n: int) -> Iterator[None]:
    """While tracing inside, every ``jax.lax.scan`` unrolls its loop body n times.

    Profiling only: it measures what ``lax.scan(..., unroll=n)`` in ``train.train_epoch``
    would give without copying the engine.
    """
    original = jax.lax.scan

    def patched(*args: Any, **kwargs: Any) -> Any:
        kwargs["unroll"] = n
        return original(*args, **kwargs)

    jax.lax.scan = patched
    try:
        yield
    finally:
        jax.lax.scan = original


def _scan_epoch(body: Callable, state: Any, steps: int) -> Callable:
    def run(state: Any) -> Any:
        state, out = jax.lax.scan(body, state, jnp.arange(steps))
        return state, jnp.mean(out)

    return run


def profile(
    name: str,
    k: int,
    b: int,
    examples: int | None,
    repeats: int,
    rate: MatmulRate,
    unroll: int = 8,
) -> dict:
    """Times pieces of the engine at one (K, B), interleaved, in this process."""
    family, overrides, shape, aug = MODELS[name]
    ds = fake_dataset(shape, examples or EXAMPLES[name])
    group = Group(name, k, b, ds, "vmap/scan")  # its state; the cases build their own programs
    cfg = run_config(name, k, b)
    model = models.build_model(cfg.model, 10)
    tx = optim.make_optimizer(cfg.optim, group.steps)
    steps = group.steps
    x, y = jax.device_put(ds.x), jax.device_put(ds.y)
    per_sample = model_flops(name)[1]

    def engine_epoch(aug_cfg: ml_collections.ConfigDict) -> Callable:
        fn = functools.partial(
            train.train_epoch,
            model=model,
            tx=tx,
            batch_size=b,
            mean=ds.mean,
            std=ds.std,
            aug_cfg=aug_cfg,
        )
        return jax.jit(jax.vmap(fn, in_axes=(0, None, None, None)))

    no_aug = augment.default_augment_config()
    no_aug.crop = no_aug.flip = no_aug.rotate = False
    no_rot = augment.default_augment_config()
    no_rot.rotate = False
    fixed_x = data.standardize(ds.x[:b], ds.mean, ds.std)
    fixed_y = jnp.asarray(ds.y[:b])

    def fixed_batch_steps(hp: train.Hparams, state: train.TrainState) -> Any:
        def body(s: train.TrainState, i: jax.Array):
            s, metrics = train.train_step(s, (fixed_x, fixed_y), model=model, tx=tx)
            return s, metrics["loss"]

        return _scan_epoch(body, state, steps)(state)

    def grads_only(hp: train.Hparams, state: train.TrainState) -> Any:
        def body(s: train.TrainState, i: jax.Array):
            (loss, _), g = train.data_loss_and_grad(
                s.params, s.batch_stats, fixed_x, fixed_y, s.rng, model=model
            )
            # Use the gradient so it is not dead code, without an optimizer.
            s = s.replace(params=jax.tree_util.tree_map(lambda p, q: p - 1e-9 * q, s.params, g))
            return s, loss

        return _scan_epoch(body, state, steps)(state)

    def plain_sgd(hp: train.Hparams, state: train.TrainState) -> Any:
        def body(s: train.TrainState, i: jax.Array):
            (loss, (_, stats)), g = train.data_loss_and_grad(
                s.params, s.batch_stats, fixed_x, fixed_y, s.rng, model=model
            )
            lr, wd = hp.learning_rate, hp.weight_decay
            params = jax.tree_util.tree_map(lambda p, q: p - lr * (q + 2 * wd * p), s.params, g)
            return s.replace(params=params, batch_stats=stats), loss

        return _scan_epoch(body, state, steps)(state)

    cases: dict[str, Callable[[], Any]] = {}
    full = engine_epoch(cfg.augment)
    cases["engine train_epoch, rolled scan (unroll 1)"] = lambda: full(
        group.state, x, y, jnp.asarray(1)
    )
    unrolled = engine_epoch(cfg.augment)
    with scan_unroll(unroll):  # trace + compile here; later calls reuse the executable
        jax.block_until_ready(unrolled(group.state, x, y, jnp.asarray(1)))
    cases[f"engine, epoch scan unrolled {unroll}×"] = lambda: unrolled(
        group.state, x, y, jnp.asarray(1)
    )
    if aug:
        f_norot = engine_epoch(no_rot)
        cases["engine, crop+flip only (no rotation)"] = lambda: f_norot(
            group.state, x, y, jnp.asarray(1)
        )
        f_noaug = engine_epoch(no_aug)
        cases["engine, no augmentation"] = lambda: f_noaug(group.state, x, y, jnp.asarray(1))
    f_fixed = jax.jit(jax.vmap(fixed_batch_steps))
    cases["train_step on a fixed batch (no gather/standardize/augment)"] = lambda: f_fixed(
        group.hparams, group.state
    )
    f_sgd = jax.jit(jax.vmap(plain_sgd))
    cases["  same, plain SGD update instead of the optax chain"] = lambda: f_sgd(
        group.hparams, group.state
    )
    f_grad = jax.jit(jax.vmap(grads_only))
    cases["  forward+backward only (no optimizer)"] = lambda: f_grad(group.hparams, group.state)
    if family == "mlp_bn":
        mlp_fn, mlp_args = matmul_only_mlp(k, b, shape, overrides, steps)
        cases["hand-written batched MLP, no BN, plain SGD"] = lambda: mlp_fn(*mlp_args)

    times: dict[str, list[float]] = {n: [] for n in cases}
    print(f"\n== profile {name} K={k} B={b} ({steps} steps/epoch); load {loadavg()}")
    for n, fn in cases.items():
        start = time.perf_counter()
        jax.block_until_ready(fn())
        print(f"   compiled {n.strip()}: {time.perf_counter() - start:.0f}s", flush=True)
    mm = rate.measure()
    names = list(cases)
    for r in range(repeats):
        for n in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            jax.block_until_ready(cases[n]())
            times[n].append(time.perf_counter() - start)
    mm = 0.5 * (mm + rate.measure())
    base = float(np.median(times[names[0]]))
    rows = []
    out = {}
    for n in names:
        t = float(np.median(times[n]))
        sps = k * steps * b / t
        rows.append(
            [
                n,
                f"{1000 * t / steps:.2f}",
                f"{sps:,.0f}",
                f"{t / base:.2f}",
                f"{100 * sps * per_sample / (mm * 1e9):.1f}%",
            ]
        )
        out[n] = {"ms_per_step": 1000 * t / steps, "member_samples_per_s": sps}
    print(
        f"\nprofile {name} K={k} B={b}: median of {repeats}, matmul {mm:.1f} GFLOP/s, "
        f"load {loadavg()}"
    )
    print(
        io.format_table(
            ["variant", "ms/step", "member-samples/s", "time vs engine", "% of matmul"], rows
        )
    )
    return out


def matmul_only_mlp(
    k: int, b: int, shape: tuple[int, int, int], overrides: dict[str, Any], steps: int
) -> tuple[Callable, tuple]:
    """A K-member MLP of the same shapes as hand-written batched einsums (the ideal)."""
    width, depth = overrides["width"], overrides["depth"]
    dims = [math.prod(shape), *([width] * depth), 10]
    key = jax.random.key(0)
    ws = [
        jax.random.normal(jax.random.fold_in(key, i), (k, a, c)) / math.sqrt(a)
        for i, (a, c) in enumerate(itertools.pairwise(dims))
    ]
    xb = jax.random.normal(key, (k, b, dims[0]))
    yb = jax.random.randint(key, (k, b), 0, 10)

    def loss(ws: list[jax.Array]) -> jax.Array:
        h = xb
        for w in ws[:-1]:
            h = jax.nn.relu(jnp.einsum("kbi,kio->kbo", h, w))
        logits = jnp.einsum("kbi,kio->kbo", h, ws[-1])
        return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean() * k

    def run(ws: list[jax.Array]) -> Any:
        def body(ws, i):
            value, g = jax.value_and_grad(loss)(ws)
            return [w - 0.05 * (q + 1e-3 * w) for w, q in zip(ws, g, strict=True)], value

        return jax.lax.scan(body, ws, jnp.arange(steps))

    return jax.jit(run), (ws,)


# ---------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--quick", action="store_true", help="mlp and resnet8 at K 1,16 and B 16, engine's choice"
    )
    p.add_argument("--models", default=",".join(DEFAULT_MODELS), help=f"of {list(MODELS)}")
    p.add_argument("--ks", default="1,4,16,64", help="member counts")
    p.add_argument("--batch-sizes", default="8,16,128", help="batch sizes")
    p.add_argument(
        "--examples", type=int, default=None, help=f"examples per epoch (default {EXAMPLES})"
    )
    p.add_argument("--epochs", type=int, default=1, help="timed epochs after the warm-up")
    p.add_argument(
        "--strategies",
        default="vmap/scan,loop/scan,loop/host",
        help="sweep.vectorize/train.epoch_loop pairs to time (auto: the engine's choice)",
    )
    p.add_argument(
        "--max-epoch-s",
        type=float,
        default=40.0,
        help="skip combinations estimated slower than this per epoch",
    )
    p.add_argument("--profile", action="store_true", help="also profile the engine's pieces")
    p.add_argument("--profile-k", type=int, default=GOAL_K)
    p.add_argument("--profile-b", type=int, default=GOAL_B)
    p.add_argument("--profile-repeats", type=int, default=3)
    p.add_argument("--no-table", action="store_true", help="only the profile")
    p.add_argument("--json", default="", help="write results to this JSON file")
    a = p.parse_args(argv)

    names = [x for x in a.models.split(",") if x]
    ks = [int(x) for x in a.ks.split(",")]
    bs = [int(x) for x in a.batch_sizes.split(",")]
    if a.quick:
        names, ks, bs = ["mlp", "resnet8"], [1, 16], [16]
        a.strategies = "auto/auto"
    unknown = set(names) - set(MODELS)
    if unknown:
        p.error(f"unknown model(s) {sorted(unknown)}; choose from {list(MODELS)}")
    if 1 not in ks:
        ks = [1, *ks]  # ratios need K = 1

    print("== bench_sweep: sweep throughput of the engine's epoch over K members")
    print(
        f"  jax {jax.__version__}, {jax.devices()[0].platform}, {os.cpu_count()} CPUs, "
        f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}, load average {loadavg()}"
    )
    rate = MatmulRate()
    print(f"  fp32 matmul rate (jitted 2048² jnp.dot, median of 5): {rate.measure(5):.1f} GFLOP/s")
    results: dict[str, Any] = {}
    start = time.perf_counter()
    if not a.no_table:
        strategies = tuple(x for x in a.strategies.split(",") if x)
        for st in strategies:
            v, _, e = st.partition("/")
            if v not in config.VECTORIZE or e not in config.EPOCH_LOOPS:
                p.error(
                    f"--strategies: {st!r} is not <vectorize>/<epoch_loop> with vectorize in "
                    f"{config.VECTORIZE} and epoch_loop in {config.EPOCH_LOOPS}"
                )
        results["throughput"] = throughput(
            names, ks, bs, a.examples, a.epochs, a.max_epoch_s, rate, strategies
        )
    if a.profile:
        results["profile"] = {
            n: profile(n, a.profile_k, a.profile_b, a.examples, a.profile_repeats, rate)
            for n in names
        }
    print(f"\ndone in {time.perf_counter() - start:.0f}s; load average {loadavg()}")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
