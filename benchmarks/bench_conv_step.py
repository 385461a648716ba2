"""Whether a quick conv figure's SGD step can be made cheaper on this CPU.

    .venv/bin/python benchmarks/bench_conv_step.py [--fig 11] [--steps 300]

One member of a quick figure's model (from its config: the figure's ResNet-18 or VGG-16 at
its quick width, on 8×8 digits) takes ``lowrank.train.train_step`` with the project's
optimizer, compiled once, called from a host loop as the engine does on CPUs. Measured in
one run, each case in its own subprocess (XLA reads its flags at start-up):

* the step's cost against B (1, 8, 32, 128), split by a least-squares line into a fixed
  cost per call and a cost per example — what a quick figure could save by calling less
  often (its B = 8 steps) against what it cannot (the arithmetic);
* the XLA:CPU options that could change how the step runs (the thunk runtime, oneDNN,
  XNNPACK, Eigen's threads, the concurrency scheduler), each as the step's time over the
  default's, at B = 8;
* two processes stepping at once against one alone (the two cores: what
  ``experiments/figure.py --jobs 2`` can gain).

The issue behind it: issue 15's figures that stay below half are short of SGD steps
(experiments/README, "Prediction 4.1, measured"); this says whether the CPU has cheaper
steps to give.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BATCH_SIZES = (1, 8, 32, 128)
FLAGS = (
    "--xla_cpu_use_thunk_runtime=false",
    "--xla_cpu_use_onednn=true",
    "--xla_cpu_use_xnnpack=true",
    "--xla_cpu_experimental_xnn_fusion_type=dot,eltwise,reduce",
    "--xla_cpu_multi_thread_eigen=false",
    "--xla_cpu_enable_concurrency_optimized_scheduler=true",
)


def _timed(fn, state, batches, steps: int) -> float:
    """Seconds per call of ``fn(state, batch) -> state`` from a host loop, after warm-up."""
    import jax

    for i in range(20):  # compile and warm up
        state = fn(state, batches[i % len(batches)])
    jax.block_until_ready(state)
    start = time.perf_counter()
    for i in range(steps):
        state = fn(state, batches[i % len(batches)])
    jax.block_until_ready(state)
    return (time.perf_counter() - start) / steps


def time_steps(fig: int, batch_size: int, steps: int, pieces: bool) -> dict[str, float]:
    """Seconds per step of one member of Fig. ``fig``'s quick model at ``batch_size``:
    the whole ``train_step``, and with ``pieces`` also its forward pass alone, forward and
    backward, and those plus the optimizer's update (no metrics)."""
    import jax
    import jax.numpy as jnp
    import optax

    from lowrank import data, figures, models, optim, train
    from lowrank.config_files import load_config_file

    quick = load_config_file(ROOT / "configs" / f"fig{fig:02d}.py", "quick")
    c = figures.panel_configs(quick)[0].config
    ds = data.load_dataset(c.data)
    model = models.build_model(c.model, ds.num_classes)
    tx = optim.make_optimizer(c.optim, ds.num_train // batch_size)
    hparams = train.Hparams(*(jnp.float32(v) for v in (0.1, 5e-4, 0.0)))
    state = train.init_state(
        jax.random.PRNGKey(0), hparams, model=model, tx=tx, input_shape=ds.input_shape
    )
    rng = np.random.default_rng(0)
    batches = [
        (jnp.asarray(rng.normal(size=(batch_size, *ds.input_shape)), jnp.float32),
         jnp.asarray(rng.integers(0, ds.num_classes, batch_size), jnp.int32))
        for _ in range(8)
    ]  # fmt: skip

    def loss(params, s, batch):
        variables = {"params": params, "batch_stats": s.batch_stats}
        logits, _ = model.apply(variables, batch[0], train=True, mutable=["batch_stats"])
        return train.cross_entropy(logits, batch[1])

    def forward(s, batch):  # the loss, folded into a parameter so nothing is dead code
        return s.replace(step=s.step + loss(s.params, s, batch).astype(jnp.int32))

    def backward(s, batch):
        grads = jax.grad(loss)(s.params, s, batch)
        return s.replace(params=jax.tree_util.tree_map(lambda p, g: p - 1e-9 * g, s.params, grads))

    def update(s, batch):
        updates, opt_state = tx.update(jax.grad(loss)(s.params, s, batch), s.opt_state, s.params)
        return s.replace(params=optax.apply_updates(s.params, updates), opt_state=opt_state)

    def whole(s, batch):
        return train.train_step(s, batch, model=model, tx=tx)[0]

    cases = {"train_step": whole}
    if pieces:
        cases = {"forward": forward, "forward + backward": backward,
                 "forward + backward + update": update, **cases}  # fmt: skip
    return {
        name: _timed(
            jax.jit(fn, donate_argnums=0), jax.tree_util.tree_map(jnp.copy, state), batches, steps
        )
        for name, fn in cases.items()
    }


def measure(
    fig: int, batch_size: int, steps: int, flags: str = "", copies: int = 1, pieces: bool = False
) -> dict[str, float]:
    """``time_steps`` in ``copies`` fresh processes at once (XLA_FLAGS=``flags``); the mean
    over the processes of each case's seconds per step."""
    env = dict(os.environ, XLA_FLAGS=flags, OPENBLAS_NUM_THREADS="1")
    cmd = [sys.executable, __file__, "--child", str(fig), str(batch_size), str(steps),
           str(int(pieces))]  # fmt: skip
    procs = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True) for _ in range(copies)
    ]
    outs = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs):
        raise RuntimeError(f"a step benchmark failed (XLA_FLAGS={flags!r}, B={batch_size})")
    results = [json.loads(o.strip().splitlines()[-1]) for o in outs]
    return {name: float(np.mean([r[name] for r in results])) for name in results[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fig", type=int, default=11, help="a quick conv figure (its model)")
    ap.add_argument("--steps", type=int, default=300, help="timed steps per case")
    args = ap.parse_args()
    print(f"Fig. {args.fig}'s quick model, one member; load average {os.getloadavg()[0]:.1f}")

    by_b = {b: measure(args.fig, b, args.steps)["train_step"] for b in BATCH_SIZES}
    slope, fixed = np.polyfit(list(by_b), list(by_b.values()), 1)
    for b, s in by_b.items():
        print(f"B = {b:>3}: {s * 1e3:7.3f} ms per step, {s / b * 1e3:.3f} ms per example")
    print(f"least squares: {fixed * 1e3:.3f} ms per call + {slope * 1e3:.4f} ms per example; "
          f"at B = 8 the fixed cost is {fixed / by_b[8]:.0%} of a step")  # fmt: skip

    pieces = measure(args.fig, 8, args.steps, pieces=True)
    for name, s in pieces.items():
        print(f"B = 8, {name}: {s * 1e3:.3f} ms ({s / pieces['train_step']:.0%} of train_step)")

    # Each option against the default measured right before it: load drifts, pairs do not.
    for flags in FLAGS:
        base = measure(args.fig, 8, args.steps)["train_step"]
        s = measure(args.fig, 8, args.steps, flags)["train_step"]
        print(f"B = 8, {flags}: {s / base:.2f}× the default's time")

    base = measure(args.fig, 8, args.steps)["train_step"]
    both = measure(args.fig, 8, args.steps, copies=2)["train_step"]
    print(f"two processes at once: {both / base:.2f}× the time per step each, "
          f"{2 * base / both:.2f}× one process's throughput")  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--child":
        fig, b, n, with_pieces = (int(a) for a in sys.argv[2:])
        print(json.dumps(time_steps(fig, b, n, bool(with_pieces))))
    else:
        main()
