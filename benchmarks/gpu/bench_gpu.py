"""The prepared GPU run: set-up check, sweep throughput, and the PyTorch peer, in one go.

    python benchmarks/gpu/bench_gpu.py OUT_DIR            # on the GPU machine (≤ 8 min)
    python benchmarks/gpu/bench_gpu.py OUT_DIR --dry-run  # anywhere: tiny sizes, K = 2

1. **Set-up.** The devices JAX sees, the versions it runs with, and that the project
   imports; then a 2-member sweep of a few SGD steps on the default device and the same on
   the CPU, compared at ``highest`` matmul precision (loss and every parameter to relative
   1e-3: both sides are float32, but XLA's GPU and CPU kernels sum in different orders;
   at ``default`` precision the GPU may use TF32, so that difference is only reported).
2. **Throughput.** The engine's own epoch function (``benchmarks/bench_sweep.py``'s
   ``Group``) for ResNet-18 at width 64 (CIFAR shape, random data), B = 8, and
   MLP-BN-10-100 (CIFAR shape), B = 16, at K ∈ {1, 4, 16, 64} members, ``vmap/scan`` and
   ``loop/scan``, default and ``highest`` precision: member-samples/s (median of the
   timed epochs after a warm-up epoch that compiles) and its FLOP rate as a fraction of
   the measured bf16 and fp32 (``highest``) matmul rates. No augmentation on either side.
3. **The PyTorch peer** (``torch_peer.py``): one model at a time, ``torch.optim.SGD`` with
   weight decay, BatchNorm, same shapes and B, at PyTorch's default settings (which the
   JSON records), when PyTorch is installed.
4. Writes ``OUT_DIR/gpu_bench.json`` and ``OUT_DIR/gpu_bench.txt`` (the table and the
   headline: the best K's member-throughput against the PyTorch peer).

Combinations started after ``--deadline-s`` (default 360 s of the 8 minutes, shared
equally by the two models) are skipped and marked so; the persistent compilation cache
makes the loop strategy compile its one-member program once for every K.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # bench_sweep
sys.path.insert(0, str(HERE.parents[1]))  # lowrank

import bench_sweep  # noqa: E402  (after the path set-up)
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

# name → (family, model overrides, input shape, B)
FULL = {
    "resnet18_w64": ("resnet18", {"width": 64}, (32, 32, 3), 8),
    "mlp_bn_10_100": ("mlp_bn", {"width": 100, "depth": 10}, (32, 32, 3), 16),
}
DRY = {
    "resnet18_w64": ("resnet18", {"width": 2}, (8, 8, 3), 8),
    "mlp_bn_10_100": ("mlp_bn", {"width": 16, "depth": 2}, (8, 8, 3), 16),
}
STRATEGIES = ("vmap/scan", "loop/scan")
PRECISIONS = ("default", "highest")


def setup_report() -> dict[str, Any]:
    """What runs here: devices, versions, and the project's import."""
    versions = {"python": platform.python_version(), "jax": jax.__version__}
    for name in ("jaxlib", "flax", "optax", "orbax.checkpoint", "ml_collections", "torch"):
        try:
            versions[name] = getattr(importlib.import_module(name), "__version__", "?")
        except ImportError:
            versions[name] = None
    import lowrank  # noqa: F401  (fails loudly here if the image's JAX does not fit)

    return {
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "device_kind": jax.devices()[0].device_kind,
        "versions": versions,
    }


def _two_member_epoch(device: jax.Device, sizes: dict) -> tuple[np.ndarray, list[np.ndarray]]:
    """A 2-member epoch of a few steps of the small MLP, on ``device``: (loss, params)."""
    ds = bench_sweep.fake_dataset(sizes["mlp_bn_10_100"][2], 4 * 16, seed=1)
    with jax.default_device(device):
        group = bench_sweep.Group("gpu_mlp_bn_10_100", 2, 16, ds, "vmap/scan")
        state, x, y = jax.device_put((group.state, ds.x, ds.y), device)
        state, m = group.epoch_fn(state, x, y, jnp.asarray(1))
    return np.asarray(m["loss"]), [np.asarray(p) for p in jax.tree.leaves(state.params)]


def agreement(sizes: dict) -> dict[str, Any]:
    """The same 2-member epoch on the default device and on the CPU, at both precisions."""
    out: dict[str, Any] = {}
    cpu = jax.devices("cpu")[0]
    for precision in PRECISIONS:
        with _precision(precision):
            loss_d, params_d = _two_member_epoch(jax.devices()[0], sizes)
            loss_c, params_c = _two_member_epoch(cpu, sizes)
        scale = lambda a, b: np.abs(a - b).max() / max(np.abs(b).max(), 1e-12)
        out[precision] = {
            "loss_rel": float(scale(loss_d, loss_c)),
            "params_rel": float(max(scale(a, b) for a, b in zip(params_d, params_c, strict=True))),
        }
    highest = out["highest"]
    out["agrees"] = highest["loss_rel"] <= 1e-3 and highest["params_rel"] <= 1e-3
    out["tolerance"] = "relative 1e-3 (loss and every parameter) at highest precision"
    return out


def _precision(precision: str):
    if precision == "default":
        return contextlib.nullcontext()
    return jax.default_matmul_precision(precision)


def matmul_rates(n: int) -> dict[str, float]:
    """TFLOP/s of a jitted (n×n)@(n×n) in bf16 and in fp32 at ``highest`` precision."""
    rates = {}
    for name, dtype, precision in (("bf16", jnp.bfloat16, None), ("fp32", jnp.float32, "highest")):
        a = jax.random.normal(jax.random.key(0), (n, n), dtype)
        fn = jax.jit(lambda x, y, p=precision: jnp.dot(x, y, precision=p))
        jax.block_until_ready(fn(a, a))
        times = []
        for _ in range(5):
            start = time.perf_counter()
            jax.block_until_ready(fn(a, a))
            times.append(time.perf_counter() - start)
        rates[name] = 2.0 * n**3 / float(np.median(times)) / 1e12
    return rates


class _FixedRate:  # bench_sweep.measure asks a rate object for the fp32 GFLOP/s
    def __init__(self, gflops: float) -> None:
        self.gflops = gflops

    def measure(self) -> float:
        return self.gflops


def throughput(sizes, ks, examples, epochs, rates, deadline) -> list[dict[str, Any]]:
    """Every (model, strategy, precision, K) the deadline allows; the rest marked skipped.
    Each model gets an equal share of the time left, so a slow one cannot starve the next."""
    rows = []
    for i, (name, (_, _, shape, b)) in enumerate(sizes.items()):
        share = (deadline - time.perf_counter()) / (len(sizes) - i)
        model_deadline = time.perf_counter() + share
        key = f"gpu_{name}"
        ds = bench_sweep.fake_dataset(shape, examples[name])
        flops = bench_sweep.model_flops(key)[1]
        for strategy in STRATEGIES:
            for precision in PRECISIONS:
                for k in ks:
                    row = {"model": name, "strategy": strategy, "precision": precision, "K": k}
                    row["B"] = b
                    if time.perf_counter() > model_deadline:
                        rows.append({**row, "skipped": "deadline"})
                        continue
                    with _precision(precision):
                        r = bench_sweep.measure(
                            key, strategy, b, k, ds, epochs, _FixedRate(rates["fp32"] * 1e3)
                        )
                    rate = r["member_samples_per_s"] * flops / 1e12
                    row |= {k_: r[k_] for k_ in ("member_samples_per_s", "epoch_s", "notes")}
                    row |= {"tflops": rate, "of_bf16": rate / rates["bf16"]}
                    row["of_fp32"] = rate / rates["fp32"]
                    rows.append(row)
                    print(_line(row), flush=True)
    return rows


def _line(r: dict[str, Any]) -> str:
    head = f"{r['model']:>14} {r['strategy']:>9} {r['precision']:>7} B={r['B']:<3} K={r['K']:<3}"
    if "skipped" in r:
        return f"{head} skipped ({r['skipped']})"
    return (
        f"{head} {r['member_samples_per_s']:>12,.0f} member-samples/s  "
        f"{100 * r['of_bf16']:5.1f}% of bf16  {100 * r['of_fp32']:5.1f}% of fp32  "
        f"epoch {r['epoch_s']:.3f}s  ({r['notes']})"
    )


def torch_peer(sizes, steps: int) -> dict[str, Any]:
    """The PyTorch peer per model, or why it did not run."""
    try:
        import torch
        import torch_peer as peer
    except ImportError:
        return {"skipped": "PyTorch is not installed"}
    device = "cuda" if torch.cuda.is_available() else "cpu"
    out: dict[str, Any] = {
        "device": device,
        "torch": torch.__version__,
        "settings": {
            "matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
            "cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
            "cudnn.benchmark": torch.backends.cudnn.benchmark,
        },
    }
    for name, (family, overrides, shape, b) in sizes.items():
        out[name] = peer.throughput(family, overrides, shape, b, steps, 3, device)
        print(f"{name:>14} PyTorch peer B={b}: {out[name]['member_samples_per_s']:,.0f} samples/s")
    return out


def headline(rows: list[dict[str, Any]], peer: dict[str, Any]) -> list[str]:
    """Per model: the best K's member-throughput (any strategy, default precision)
    against the PyTorch peer."""
    lines = []
    for name in dict.fromkeys(r["model"] for r in rows):
        done = [r for r in rows if r["model"] == name and "skipped" not in r]
        done = [r for r in done if r["precision"] == "default"]
        if not done:
            lines.append(f"{name}: nothing measured before the deadline")
            continue
        best = max(done, key=lambda r: r["member_samples_per_s"])
        text = (
            f"{name}: best {best['strategy']} K={best['K']} "
            f"{best['member_samples_per_s']:,.0f} member-samples/s"
        )
        if name in peer:
            ratio = best["member_samples_per_s"] / peer[name]["member_samples_per_s"]
            text += (
                f" = {ratio:.1f}x the PyTorch peer "
                f"({peer[name]['member_samples_per_s']:,.0f} samples/s, one model)"
            )
        lines.append(text)
    return lines


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="folder for gpu_bench.json and gpu_bench.txt")
    ap.add_argument("--dry-run", action="store_true", help="tiny sizes and K = 2 (any CPU)")
    ap.add_argument("--deadline-s", type=float, default=360.0)
    args = ap.parse_args(argv)
    start = time.perf_counter()
    deadline = start + args.deadline_s
    args.out.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", tempfile.mkdtemp(prefix="xla_cache_"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    sizes = DRY if args.dry_run else FULL
    for name, (family, overrides, shape, _) in sizes.items():
        bench_sweep.MODELS[f"gpu_{name}"] = (family, overrides, shape, False)
    ks = (2,) if args.dry_run else (1, 4, 16, 64)
    examples = {n: 8 * b if args.dry_run else 64 * b for n, (*_, b) in sizes.items()}
    report: dict[str, Any] = {"dry_run": args.dry_run, "setup": setup_report()}
    print(json.dumps(report["setup"]), flush=True)
    report["agreement"] = agreement(sizes)
    print("agreement with the CPU:", json.dumps(report["agreement"]), flush=True)
    report["matmul_tflops"] = matmul_rates(512 if args.dry_run else 8192)
    print("matmul TFLOP/s:", report["matmul_tflops"], flush=True)
    epochs = 2 if args.dry_run else 3
    report["throughput"] = throughput(
        sizes, ks, examples, epochs, report["matmul_tflops"], deadline
    )
    report["torch_peer"] = torch_peer(sizes, 4 if args.dry_run else 64)
    report["headline"] = headline(report["throughput"], report["torch_peer"])
    report["seconds"] = time.perf_counter() - start
    (args.out / "gpu_bench.json").write_text(json.dumps(report, indent=1))
    table = [_line(r) for r in report["throughput"]] + [""] + report["headline"]
    (args.out / "gpu_bench.txt").write_text("\n".join(table) + "\n")
    print("\n".join(report["headline"]))
    return report


if __name__ == "__main__":
    main()
