"""Benchmark: singular values of all 21 ResNet-18 weight matrices (issue 2).

Compares, in one run and on this machine (ratios measured in the same run,
never lone absolute times):

* (a) the grouped, batched JAX path ``jax.jit(jax.vmap(rank.spectra))`` on K stacked
  members (and, for K = 1, the unvmapped ``jax.jit(rank.spectra)``);
* (b) a per-matrix NumPy loop, ``np.linalg.svd(m, compute_uv=False)`` for every matrix of
  every member;
* (c) the Gram route (``method="gram"``: float64 eigenvalues of the smaller Gram matrix,
  run under ``jax.enable_x64(True)``), for speed and for agreement of the threshold rank
  at ε = 1e-3 with (a) and with a float64 NumPy reference.

Each is timed with BLAS limited to one thread and at the default BLAS thread count
(``--blas``; ``threadpoolctl``: jaxlib's CPU LAPACK kernels call SciPy's OpenBLAS, NumPy has
its own), and, for reference, on the tall orientation of each matrix (σ(M) = σ(Mᵀ);
LAPACK is faster on tall matrices).
Timings are interleaved (every repeat runs every method once, in rotating order) so that
load from other processes hits all methods alike; medians are reported.

Further sections run in subprocesses, because they need a fresh process (``XLA_FLAGS``,
``OPENBLAS_NUM_THREADS``) or may hang:

* ``variants``: the JAX path with ``--xla_cpu_multi_thread_eigen=false``, with
  ``OPENBLAS_NUM_THREADS=1``, with LAPACK's ``gesvd`` instead of ``gesdd``, in float64,
  on the tall orientation, and without the chaining of the shape groups that
  ``rank.spectra_of`` adds;
* ``deadlock``: jitted programs with several independent batched ``eigvalsh``/``svd``
  calls, each in a subprocess under a watchdog that tells a deadlock (no progress and no
  CPU time used) from a slow run, and asks gdb (if installed) where the threads wait.

Run (from the repository root)::

    .venv/bin/python benchmarks/bench_rank.py            # everything (20-40 min, loaded)
    .venv/bin/python benchmarks/bench_rank.py --blas 1   # skip the slow default-threads runs
    .venv/bin/python benchmarks/bench_rank.py --quick    # K = 1 and three probes
    .venv/bin/python benchmarks/bench_rank.py --sections speed,agreement --ks 1,8
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax
import jax.numpy as jnp
import scipy.linalg  # noqa: F401  (loads SciPy's OpenBLAS: jaxlib's CPU LAPACK calls it)
import threadpoolctl

from lowrank import io, models, rank

EPSILON = 1e-3
SECTIONS = ("speed", "agreement", "variants", "deadlock")

# ----------------------------------------------------------------------------- setup


def resnet18_param_shapes() -> Any:
    """Abstract parameters of CIFAR ResNet-18 (10 classes), without computing anything."""
    model = models.build_model(models.default_model_config("resnet18"), 10)
    x = jnp.zeros((1, 32, 32, 3), jnp.float32)
    variables = jax.eval_shape(lambda k: model.init(k, x, train=False), jax.random.key(0))
    return variables["params"]


def random_params(shapes: Any, k: int, seed: int = 0) -> Any:
    """K members of parameters, float32, stacked on a leading axis.

    Kernels are lecun-normal-like (N(0, 1/fan_in)); 1-D leaves are zeros. This gives the
    real ResNet-18 shapes without compiling the model's initializer.
    """
    rng = np.random.default_rng(seed)

    def fill(s: jax.ShapeDtypeStruct) -> np.ndarray:
        if len(s.shape) < 2:
            return np.zeros((k, *s.shape), np.float32)
        fan_in = math.prod(s.shape[:-1])
        return (rng.standard_normal((k, *s.shape)) / math.sqrt(fan_in)).astype(np.float32)

    return jax.tree_util.tree_map(fill, shapes)


def host_matrices(params: Any) -> dict[str, np.ndarray]:
    """``{path: (K, out, in)}`` float32 host arrays, C-contiguous (the paper's view)."""
    mats = jax.jit(jax.vmap(rank.weight_matrices))(params)
    return {p: np.ascontiguousarray(np.asarray(m)) for p, m in mats.items()}


def spectrum_matrix(rng: np.random.Generator, rows: int, cols: int, sv: np.ndarray) -> np.ndarray:
    """``U diag(sv) Vᵀ`` with random orthonormal U, V (float64 in, float32 out)."""
    r = min(rows, cols)
    u, _ = np.linalg.qr(rng.standard_normal((rows, r)))
    v, _ = np.linalg.qr(rng.standard_normal((cols, r)))
    return ((u * sv[None, :]) @ v.T).astype(np.float32)


def spectrum_kinds() -> dict[str, Callable[[int, np.random.Generator], np.ndarray]]:
    """Singular-value profiles of length r, largest 1, that cross ε = 1e-3."""

    def geometric(r: int, rng: np.random.Generator) -> np.ndarray:
        # 1 → 1e-6 geometrically: half of the values are above 1e-3.
        return np.logspace(0, -6, r)

    def cliff(r: int, rng: np.random.Generator) -> np.ndarray:
        # Rank r/4 signal, then a floor 100× below ε: counts are unambiguous.
        q = max(1, r // 4)
        return np.concatenate([np.logspace(0, -1, q), np.full(r - q, 1e-5)])

    def near_threshold(r: int, rng: np.random.Generator) -> np.ndarray:
        # A signal, then half the values within ±0.1 % of ε: a precision stress test.
        q = max(1, r // 2)
        close = EPSILON * (1 + rng.uniform(-1e-3, 1e-3, r - q))
        return np.sort(np.concatenate([np.logspace(0, -2, q), close]))[::-1]

    return {"geometric 1→1e-6": geometric, "cliff r/4": cliff, "±0.1% around ε": near_threshold}


def decaying_matrices(
    shapes: Mapping[str, tuple[int, int]], k: int, kind: Callable, seed: int = 1
) -> dict[str, np.ndarray]:
    """``{path: (K, out, in)}`` matrices with a prescribed spectrum (random singular vectors)."""
    rng = np.random.default_rng(seed)
    out = {}
    for path, (rows, cols) in shapes.items():
        r = min(rows, cols)
        out[path] = np.stack([spectrum_matrix(rng, rows, cols, kind(r, rng)) for _ in range(k)])
    return out


# ------------------------------------------------------------------------ computing


def numpy_loop(mats: Mapping[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    """Baseline (b): one ``np.linalg.svd(compute_uv=False)`` per matrix per member."""
    return {p: [np.linalg.svd(m, compute_uv=False) for m in stack] for p, stack in mats.items()}


def numpy_loop_tall(mats: Mapping[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    """The NumPy loop on the tall orientation (``m.T`` where wider than tall): same σ."""
    return {
        p: [np.linalg.svd(m.T if m.shape[0] < m.shape[1] else m, compute_uv=False) for m in stack]
        for p, stack in mats.items()
    }


def grouped_svdvals(
    matrices: Mapping[str, jax.Array],
    decompose: Callable[[jax.Array], jax.Array],
    *,
    chain: bool,
) -> dict[str, jax.Array]:
    """A copy of ``rank.spectra_of``'s grouping with a pluggable decomposition.

    ``chain=True`` adds the library's data dependency between the shape groups;
    ``chain=False`` leaves the groups independent (XLA may run them concurrently).
    """
    groups: dict[tuple[int, ...], list[str]] = {}
    for path, m in matrices.items():
        groups.setdefault(tuple(m.shape), []).append(path)
    values: dict[str, jax.Array] = {}
    previous = None
    for paths in groups.values():
        stack = jnp.stack([matrices[p] for p in paths])
        if chain and previous is not None:
            stack = stack + jnp.fmin(jnp.min(previous), 0).astype(stack.dtype)
        bad = ~jnp.all(jnp.isfinite(stack), axis=(-2, -1))
        sv = decompose(jnp.where(bad[:, None, None], jnp.zeros_like(stack), stack))
        previous = sv
        sv = jnp.where(bad[:, None], jnp.nan, sv)
        for i, p in enumerate(paths):
            values[p] = sv[i]
    return values


def gesdd(stack: jax.Array) -> jax.Array:
    return jax.lax.linalg.svd(stack, full_matrices=False, compute_uv=False)


def gesdd_tall(stack: jax.Array) -> jax.Array:
    """gesdd on the tall orientation (σ of M and Mᵀ are equal; LAPACK is faster on tall)."""
    if stack.shape[-2] < stack.shape[-1]:
        stack = jnp.swapaxes(stack, -1, -2)
    return gesdd(stack)


def gesvd(stack: jax.Array) -> jax.Array:
    return jax.lax.linalg.svd(
        stack, full_matrices=False, compute_uv=False, algorithm=jax.lax.linalg.SvdAlgorithm.QR
    )


def gesdd_f64(stack: jax.Array) -> jax.Array:
    return gesdd(stack.astype(jnp.float64)).astype(stack.dtype)


def gram_eigvalsh(stack: jax.Array) -> jax.Array:
    """The library's Gram route (float64 eigvalsh of the smaller Gram matrix)."""
    m = stack.astype(jnp.float64)
    if m.shape[-2] > m.shape[-1]:
        m = jnp.swapaxes(m, -1, -2)
    eig = jnp.linalg.eigvalsh(m @ jnp.swapaxes(m, -1, -2))[..., ::-1]
    return jnp.sqrt(jnp.maximum(eig, 0.0)).astype(stack.dtype)


def params_fn(decompose: Callable, *, chain: bool) -> Callable[[Any], dict[str, jax.Array]]:
    """params (one member) → {path: σ} via :func:`grouped_svdvals`."""
    return lambda p: grouped_svdvals(rank.weight_matrices(p), decompose, chain=chain)


def library_fn(method: str) -> Callable[[Any], dict[str, jax.Array]]:
    """params (one member) → {path: σ} via ``rank.spectra`` (the library as shipped)."""
    return lambda p: rank.spectra(p, method=method).values


# ------------------------------------------------------------------------- timing


@functools.cache
def _blas_controller() -> threadpoolctl.ThreadpoolController:
    """The loaded BLAS libraries, looked up once jaxlib has loaded its LAPACK.

    jaxlib's CPU kernels call the OpenBLAS that SciPy ships; it must be loaded before
    threadpoolctl looks, or limits would reach NumPy's OpenBLAS only.
    """
    jax.block_until_ready(jnp.linalg.svd(jnp.eye(2), compute_uv=False))
    return threadpoolctl.ThreadpoolController()


@contextlib.contextmanager
def blas_threads(n: int | None) -> Iterator[None]:
    """Limits every loaded BLAS (NumPy's and SciPy's OpenBLAS) to n threads; None: as is."""
    if n is None:
        yield
    else:
        with _blas_controller().limit(limits=n, user_api="blas"):
            yield


@contextlib.contextmanager
def x64(enabled: bool) -> Iterator[None]:
    if enabled:
        with jax.enable_x64(True):
            yield
    else:
        yield


class Case:
    """One timed computation: a zero-argument callable plus the context it runs in."""

    def __init__(self, name: str, fn: Callable[[], Any], threads: int | None, f64: bool):
        self.name, self.fn, self.threads, self.f64 = name, fn, threads, f64
        self.times: list[float] = []

    def run(self) -> Any:
        with blas_threads(self.threads), x64(self.f64):
            return jax.block_until_ready(self.fn())

    def timed(self) -> None:
        start = time.perf_counter()
        self.run()
        self.times.append(time.perf_counter() - start)

    @property
    def median(self) -> float:
        return float(np.median(self.times)) if self.times else math.nan


def interleaved(cases: list[Case], repeats: int, label: str = "") -> None:
    """Warms every case up (compiles), then times each once per repeat, rotating order."""
    for c in cases:
        start = time.perf_counter()
        c.run()
        print(f"  warm-up {label}{c.name}: {time.perf_counter() - start:.1f}s", flush=True)
    for r in range(repeats):
        order = cases[r % len(cases) :] + cases[: r % len(cases)]
        for c in order:
            c.timed()
        print(f"  repeat {r + 1}/{repeats} done ({time.strftime('%H:%M:%S')})", flush=True)


def loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


# ------------------------------------------------------------------------ sections


def environment() -> dict[str, Any]:
    """Versions, BLAS libraries and thread settings (printed at the top)."""
    blas = [
        f"{i['internal_api']} {i['version']} ({Path(i['filepath']).name}, "
        f"{i['num_threads']} threads, {i.get('architecture', '?')})"
        for i in threadpoolctl.threadpool_info()
        if i["user_api"] == "blas"
    ]
    env = {
        k: os.environ[k]
        for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "XLA_FLAGS")
        if k in os.environ
    }
    return {
        "python": platform.python_version(),
        "jax": jax.__version__,
        "numpy": np.__version__,
        "cpus": os.cpu_count(),
        "blas": blas,
        "env": env or "(no OPENBLAS_*/XLA_FLAGS set)",
        "loadavg": loadavg(),
    }


def speed(ks: list[int], repeats: int, blas: list[str]) -> dict[str, Any]:
    """Section (a)/(b)/(c): the main table and the ratios, per K.

    ``blas`` lists the BLAS thread settings to time: ``"1"`` (threadpoolctl limit) and/or
    ``"default"`` (as the process started; OpenBLAS uses every core).
    """
    shapes = resnet18_param_shapes()
    results: dict[str, Any] = {}
    settings = [(None if b == "default" else int(b), b) for b in blas]
    for k in ks:
        params = random_params(shapes, k)
        mats = host_matrices(params)
        n = sum(m.shape[0] for m in mats.values())
        print(f"\nK={k}: {len(mats)} matrices per member, {n} SVDs; load {loadavg()}")
        dparams = jax.device_put(params)
        svd = jax.jit(jax.vmap(library_fn("svd")))
        with jax.enable_x64(True):
            gram = jax.jit(jax.vmap(library_fn("gram")))
        tall = jax.jit(jax.vmap(params_fn(gesdd_tall, chain=True)))
        single = jax.tree_util.tree_map(lambda a: a[0], dparams)
        plain = jax.jit(library_fn("svd"))
        cases = []
        for threads, tag in settings:
            cases += [
                Case(f"numpy loop [{tag}]", functools.partial(numpy_loop, mats), threads, False),
                Case(f"jax svd vmap [{tag}]", functools.partial(svd, dparams), threads, False),
                Case(f"jax gram vmap [{tag}]", functools.partial(gram, dparams), threads, True),
                # What a transpose to the tall side gives each (σ(M) = σ(Mᵀ)).
                Case(
                    f"numpy loop, tall [{tag}]",
                    functools.partial(numpy_loop_tall, mats),
                    threads,
                    False,
                ),
                Case(
                    f"jax svd vmap, tall [{tag}]", functools.partial(tall, dparams), threads, False
                ),
            ]
            if k == 1:
                plain_case = functools.partial(plain, single)
                cases.append(Case(f"jax svd no vmap [{tag}]", plain_case, threads, False))
        interleaved(cases, repeats, f"K={k} ")
        by = {c.name: c for c in cases}
        base = {tag: by[f"numpy loop [{tag}]"].median for _, tag in settings}
        rows = []
        for c in cases:
            tag = c.name.rsplit("[", 1)[1][:-1]
            speedup = base[tag] / c.median
            rows.append([c.name, f"{c.median:.3f}", f"{min(c.times):.3f}", f"{speedup:.2f}x"])
        print(f"\nK={k} (median of {repeats}; load {loadavg()})")
        header = ["method [BLAS threads]", "median s", "min s", "numpy loop / this (same threads)"]
        print(io.format_table(header, rows))
        ratios: dict[str, float] = {}
        for _, tag in settings:
            svd_t = by[f"jax svd vmap [{tag}]"].median
            ratios[f"numpy loop / jax svd [{tag}]"] = base[tag] / svd_t
            ratios[f"numpy loop / jax gram [{tag}]"] = (
                base[tag] / by[f"jax gram vmap [{tag}]"].median
            )
            ratios[f"gram time / svd time [{tag}]"] = by[f"jax gram vmap [{tag}]"].median / svd_t
            tall_t = by[f"jax svd vmap, tall [{tag}]"].median
            ratios[f"numpy loop / jax svd tall [{tag}]"] = base[tag] / tall_t
            ratios[f"numpy loop tall / jax svd tall [{tag}]"] = (
                by[f"numpy loop, tall [{tag}]"].median / tall_t
            )
        best_svd = min(by[f"jax svd vmap [{tag}]"].median for _, tag in settings)
        ratios["best numpy loop / best jax svd"] = min(base.values()) / best_svd
        for name, v in ratios.items():
            print(f"  {name}: {v:.2f}")
        results[f"K={k}"] = {"median_s": {c.name: c.median for c in cases}, "ratios": ratios}
    return results


def counts(sv: np.ndarray, eps: float = EPSILON) -> np.ndarray:
    """Threshold rank of σ (..., r) after spectral normalization (NumPy, any dtype)."""
    sv = np.asarray(sv, np.float64)
    return np.sum(sv > eps * sv.max(axis=-1, keepdims=True), axis=-1)


def agreement(k: int) -> dict[str, Any]:
    """Threshold-rank counts at ε = 1e-3: SVD (f32) vs Gram (f64) vs NumPy f64 SVD."""
    with blas_threads(1):  # OpenBLAS threads crawl on a loaded machine; 1 is fastest here
        return _agreement(k)


def _agreement(k: int) -> dict[str, Any]:
    shapes = resnet18_param_shapes()
    gaussian = host_matrices(random_params(shapes, k))
    mshapes = {p: m.shape[1:] for p, m in gaussian.items()}
    inputs = {"gaussian (lecun init)": gaussian}
    for name, kind in spectrum_kinds().items():
        inputs[name] = decaying_matrices(mshapes, k, kind)

    def lib(method: str) -> Callable:
        return jax.jit(jax.vmap(lambda ms: rank.spectra_of(ms, method=method).values))

    svd_fn = lib("svd")
    with jax.enable_x64(True):
        gram_fn = lib("gram")
    rows = []
    out: dict[str, Any] = {}
    for name, mats in inputs.items():
        dm = jax.device_put(mats)
        s_svd = jax.device_get(svd_fn(dm))
        with jax.enable_x64(True):
            s_gram = jax.device_get(gram_fn(dm))
        s_ref = {p: np.linalg.svd(m.astype(np.float64), compute_uv=False) for p, m in mats.items()}
        c = {
            meth: np.stack([counts(s[p]) for p in mats])  # (layers, K)
            for meth, s in (("svd", s_svd), ("gram", s_gram), ("ref", s_ref))
        }
        total = c["ref"].size
        row = {
            "pairs": total,
            "svd≠gram": int(np.sum(c["svd"] != c["gram"])),
            "max|svd-gram|": int(np.max(np.abs(c["svd"] - c["gram"]))),
            "svd≠ref": int(np.sum(c["svd"] != c["ref"])),
            "gram≠ref": int(np.sum(c["gram"] != c["ref"])),
            "avg rank ref": float(c["ref"].mean()),
            "avg rank svd": float(c["svd"].mean()),
            "avg rank gram": float(c["gram"].mean()),
        }
        out[name] = row
        rows.append([name, *(f"{v:.2f}" if isinstance(v, float) else v for v in row.values())])
    print(f"\nThreshold rank at ε={EPSILON:g}, K={k}: (layer, member) pairs whose counts differ")
    print(io.format_table(["matrices", *next(iter(out.values())).keys()], rows))
    return out


# ------------------------------------------------------------- subprocess workers


def worker_variants(spec: dict[str, Any]) -> dict[str, Any]:
    """In a subprocess: time the NumPy loop and some JAX variants (interleaved) at K."""
    k, repeats, threads = spec["k"], spec["repeats"], spec["threads"]
    params = random_params(resnet18_param_shapes(), k)
    mats = host_matrices(params)
    dparams = jax.device_put(params)
    decompositions = {
        "gesdd": gesdd,
        "gesdd_tall": gesdd_tall,
        "gesvd": gesvd,
        "gesdd_f64": gesdd_f64,
        "gram": gram_eigvalsh,
    }
    cases = [Case("numpy loop", functools.partial(numpy_loop, mats), threads=threads, f64=False)]
    for v in spec["variants"]:
        if v in ("library svd", "library gram"):
            f64 = v == "library gram"
            with x64(f64):
                fn = jax.jit(jax.vmap(library_fn(v.split()[1])))
        else:  # "<decomposition> chained|unchained"
            dec, how = v.split()
            f64 = dec in ("gesdd_f64", "gram")
            with x64(f64):
                fn = jax.jit(jax.vmap(params_fn(decompositions[dec], chain=how == "chained")))
        cases.append(Case(v, functools.partial(fn, dparams), threads=threads, f64=f64))
    interleaved(cases, repeats)
    return {c.name: c.median for c in cases}


PROBES: dict[str, dict[str, Any]] = {
    # The trial that hung: float64 Gram + eigvalsh over all ResNet-18 groups, unchained.
    "resnet-gram-unchained-k8": {"kind": "resnet", "dec": "gram", "chain": False, "k": 8},
    "resnet-gram-unchained-k1": {"kind": "resnet", "dec": "gram", "chain": False, "k": 1},
    "resnet-gram-chained-k8": {"kind": "resnet", "dec": "gram", "chain": True, "k": 8},
    "resnet-svd-unchained-k8": {"kind": "resnet", "dec": "gesdd", "chain": False, "k": 8},
    "resnet-svd-unchained-k1": {"kind": "resnet", "dec": "gesdd", "chain": False, "k": 1},
    "resnet-svd-chained-k8": {"kind": "resnet", "dec": "gesdd", "chain": True, "k": 8},
    "resnet-gram-unchained-k8-noeigen": {
        "kind": "resnet",
        "dec": "gram",
        "chain": False,
        "k": 8,
        "env": {"XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false"},
    },
    "resnet-gram-unchained-k8-blas-all-cores": {
        "kind": "resnet",
        "dec": "gram",
        "chain": False,
        "k": 8,
        "env": {"OPENBLAS_NUM_THREADS": str(os.cpu_count() or 1)},
    },
    # Minimal programs: n independent batched calls on (batch, d, d) stacks, each call
    # right after a matmul ("gram": x @ xᵀ, so it starts on a pool thread) or not.
    "eigvalsh-f64-2calls-8x512": {
        "kind": "plain",
        "op": "eigvalsh",
        "n": 2,
        "b": 8,
        "d": 512,
        "dtype": "float64",
        "pre": "none",
    },
    "eigvalsh-f64-3calls-8x512": {
        "kind": "plain",
        "op": "eigvalsh",
        "n": 3,
        "b": 8,
        "d": 512,
        "dtype": "float64",
        "pre": "none",
    },
    "gram-eigvalsh-f64-2calls-8x512": {
        "kind": "plain",
        "op": "eigvalsh",
        "n": 2,
        "b": 8,
        "d": 512,
        "dtype": "float64",
        "pre": "gram",
    },
    "gram-eigvalsh-f64-2calls-2x64": {
        "kind": "plain",
        "op": "eigvalsh",
        "n": 2,
        "b": 2,
        "d": 64,
        "dtype": "float64",
        "pre": "gram",
    },
    "gram-eigvalsh-f32-2calls-8x512": {
        "kind": "plain",
        "op": "eigvalsh",
        "n": 2,
        "b": 8,
        "d": 512,
        "dtype": "float32",
        "pre": "gram",
    },
    "eigvalsh-f64-9calls-8x128": {
        "kind": "plain",
        "op": "eigvalsh",
        "n": 9,
        "b": 8,
        "d": 128,
        "dtype": "float64",
        "pre": "none",
    },
    "gram-eigvalsh-f64-4calls-8x256": {
        "kind": "plain",
        "op": "eigvalsh",
        "n": 4,
        "b": 8,
        "d": 256,
        "dtype": "float64",
        "pre": "gram",
    },
    "svd-f32-9calls-8x128": {
        "kind": "plain",
        "op": "svd",
        "n": 9,
        "b": 8,
        "d": 128,
        "dtype": "float32",
        "pre": "none",
    },
    "svd-f32-3calls-8x512": {
        "kind": "plain",
        "op": "svd",
        "n": 3,
        "b": 8,
        "d": 512,
        "dtype": "float32",
        "pre": "none",
    },
    "gram-svd-f32-2calls-8x512": {
        "kind": "plain",
        "op": "svd",
        "n": 2,
        "b": 8,
        "d": 512,
        "dtype": "float32",
        "pre": "gram",
    },
}
QUICK_PROBES = ("resnet-gram-unchained-k8", "resnet-gram-chained-k8", "eigvalsh-f64-9calls-8x128")
DEFAULT_PROBES = (
    "resnet-gram-unchained-k8",
    "resnet-gram-unchained-k1",
    "resnet-gram-chained-k8",
    "resnet-svd-unchained-k8",
    "resnet-svd-chained-k8",
    "resnet-gram-unchained-k8-noeigen",
    "resnet-gram-unchained-k8-blas-all-cores",
    "eigvalsh-f64-2calls-8x512",
    "eigvalsh-f64-9calls-8x128",
    "svd-f32-9calls-8x128",
    "gram-eigvalsh-f64-4calls-8x256",
)


def worker_probe(spec: dict[str, Any]) -> None:
    """In a subprocess: call one jitted program repeatedly, printing a line per call."""
    jax.config.update("jax_enable_x64", True)
    reps = spec.get("reps", 5)
    if spec["kind"] == "resnet":
        decompositions = {"gesdd": gesdd, "gram": gram_eigvalsh}
        params = jax.device_put(random_params(resnet18_param_shapes(), spec["k"]))
        fn = jax.jit(jax.vmap(params_fn(decompositions[spec["dec"]], chain=spec["chain"])))
        args: tuple[Any, ...] = (params,)
    else:
        rng = np.random.default_rng(0)
        b, d, dt = spec["b"], spec["d"], spec["dtype"]
        stacks = [jnp.asarray(rng.standard_normal((b, d, d)), dt) for _ in range(spec["n"])]
        op = (
            jnp.linalg.eigvalsh
            if spec["op"] == "eigvalsh"
            else (lambda x: jnp.linalg.svd(x, compute_uv=False))
        )

        def one(x: jax.Array) -> jax.Array:
            if spec["pre"] == "gram" or spec["op"] == "eigvalsh":
                x = x @ jnp.swapaxes(x, -1, -2)  # symmetric (eigvalsh reads one triangle)
            return op(x)

        if spec["pre"] == "none":
            # Symmetrize on the host so that the program holds only the decompositions.
            stacks = [
                jnp.asarray(np.asarray(x) @ np.swapaxes(np.asarray(x), -1, -2), dt)
                if spec["op"] == "eigvalsh"
                else x
                for x in stacks
            ]
            fn = jax.jit(lambda xs: [op(x) for x in xs])
        else:
            fn = jax.jit(lambda xs: [one(x) for x in xs])
        args = (stacks,)
    start = time.perf_counter()
    for r in range(reps):
        jax.block_until_ready(fn(*args))
        print(f"PROGRESS {r} {time.perf_counter() - start:.3f}", flush=True)
    print("DONE", flush=True)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _gdb_summary(pid: int) -> str:
    """Where the threads of a stuck process wait, from gdb's backtraces (if gdb exists)."""
    if not shutil.which("gdb"):
        return "gdb not installed"
    try:
        bt = subprocess.run(
            ["gdb", "-p", str(pid), "-batch", "-ex", "thread apply all bt"],
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
    except subprocess.TimeoutExpired:
        return "gdb timed out"
    threads = re.split(r"\nThread \d+ ", bt)
    waiting = [t for t in threads if "ParallelBatchMap" in t]
    kernels = sorted({m for t in waiting for m in re.findall(r"jax::(\w+)<", t)})
    blocking = sum("BlockingCounter" in t or "Notification" in t for t in waiting)
    return (
        f"{len(waiting)} thread(s) inside jax::ParallelBatchMap ({', '.join(kernels) or '?'}), "
        f"{blocking} of them blocked waiting (BlockingCounter/Notification)"
    )


def run_subprocess(
    args: list[str],
    env_extra: Mapping[str, str] | None,
    *,
    stall_s: float,
    limit_s: float,
    diagnose: bool = False,
) -> dict[str, Any]:
    """Runs this script in a subprocess under a watchdog.

    A run that prints nothing new for ``stall_s`` seconds and uses no CPU for 5 s is
    called a deadlock (and, with ``diagnose``, gdb is asked where it waits); one that
    keeps using CPU is allowed up to ``limit_s`` in all, then called slow.
    """
    env = {**os.environ, **(env_extra or {})}
    proc = subprocess.Popen(
        [sys.executable, __file__, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    lines: list[str] = []
    last = [time.monotonic()]

    def reader() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            last[0] = time.monotonic()

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    start = time.monotonic()
    status, detail = "ok", ""
    while proc.poll() is None:
        time.sleep(0.5)
        now = time.monotonic()
        if now - last[0] > stall_s:
            try:
                c0 = _cpu_seconds(proc.pid)
                time.sleep(5)
                c1 = _cpu_seconds(proc.pid)
            except (OSError, IndexError):
                continue
            if proc.poll() is None and c1 - c0 < 0.05 and now - last[0] > stall_s:
                status = "DEADLOCK"
                detail = f"no progress for {now - last[0]:.0f}s, {c1 - c0:.2f} CPU-s in 5s"
                if diagnose:
                    detail += "; " + _gdb_summary(proc.pid)
                break
        if now - start > limit_s:
            status, detail = "SLOW", f"still running (busy) after {limit_s:.0f}s"
            break
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    thread.join(timeout=5)
    if status == "ok" and proc.returncode != 0:
        status, detail = "ERROR", f"exit code {proc.returncode}: " + " | ".join(lines[-5:])
    return {"status": status, "detail": detail, "lines": lines, "seconds": time.monotonic() - start}


def variants(k: int, repeats: int, with_default_threads: bool) -> dict[str, Any]:
    """Section: the JAX path under other settings, each run vs a NumPy loop in its process.

    Every run is a fresh process (environment variables), timed against a NumPy loop at
    the same BLAS setting. ``with_default_threads`` adds runs at the default BLAS thread
    count (very slow on a loaded machine).
    """
    # (title, environment, BLAS thread limit via threadpoolctl, variants)
    eigen_off = {"XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false"}
    runs: list[tuple] = [
        (
            "BLAS 1 thread (threadpoolctl)",
            {},
            1,
            [
                "library svd",
                "gesdd chained",
                "gesdd_tall chained",
                "gesvd chained",
                "gesdd_f64 chained",
                "library gram",
            ],
        ),
        ("OPENBLAS_NUM_THREADS=1", {"OPENBLAS_NUM_THREADS": "1"}, None, ["library svd"]),
        ("--xla_cpu_multi_thread_eigen=false, BLAS 1 thread", eigen_off, 1, ["library svd"]),
        (
            "unchained groups, BLAS 1 thread (may hang)",
            {},
            1,
            ["gesdd chained", "gesdd unchained"],
        ),
        # The Gram route without chaining deadlocks at K = 8 (see the deadlock section).
        (
            "unchained Gram route, K=1, BLAS 1 thread (may hang)",
            {},
            1,
            ["gram chained", "gram unchained"],
            1,
        ),
    ]
    if with_default_threads:
        runs += [
            ("BLAS default threads", {}, None, ["library svd", "library gram"]),
            ("--xla_cpu_multi_thread_eigen=false", eigen_off, None, ["library svd"]),
        ]
    out: dict[str, Any] = {}
    for title, env, threads, names, *run_k in runs:
        kk = run_k[0] if run_k else k
        spec = json.dumps({"k": kk, "repeats": repeats, "threads": threads, "variants": names})
        print(f"\nvariants [{title}] K={kk}: load {loadavg()}", flush=True)
        res = run_subprocess(["--worker-variants", spec], env, stall_s=120, limit_s=1800)
        result_lines = [ln for ln in res["lines"] if ln.startswith("RESULT ")]
        if res["status"] != "ok" or not result_lines:
            print(f"  {res['status']}: {res['detail']}")
            out[title] = {"status": res["status"], "detail": res["detail"]}
            continue
        medians = json.loads(result_lines[-1][len("RESULT ") :])
        base = medians["numpy loop"]
        rows = [[name, f"{t:.3f}", f"{base / t:.2f}x"] for name, t in medians.items()]
        print(io.format_table(["method", "median s", "numpy loop / this"], rows))
        out[title] = medians
    return out


def deadlock(names: list[str], reps: int) -> dict[str, Any]:
    """Section: does a program with independent batched LAPACK calls hang here?"""
    out = {}
    rows = []
    for name in names:
        spec = {**PROBES[name], "reps": reps}
        # One BLAS thread unless the probe says otherwise: the hang does not depend on it
        # (see the blas-all-cores probe) and nested OpenBLAS threads crawl under load.
        env = {"OPENBLAS_NUM_THREADS": "1", **spec.pop("env", {})}
        res = run_subprocess(
            ["--worker-probe", json.dumps(spec)], env, stall_s=60, limit_s=400, diagnose=True
        )
        done = [ln for ln in res["lines"] if ln.startswith("PROGRESS")]
        calls = f"{len(done)}/{reps}"
        if res["status"] == "ok" and done:
            t = [float(ln.split()[2]) for ln in done]
            per = np.median(np.diff(t)) if len(t) > 1 else t[0]
            detail = f"{per:.2f}s per call after the first"
        else:
            detail = res["detail"]
        rows.append([name, res["status"], calls, detail])
        print(f"  {name}: {res['status']} ({calls} calls) {detail}  [load {loadavg()}]", flush=True)
        out[name] = {"status": res["status"], "calls": calls, "detail": detail}
    print("\nIndependent batched LAPACK calls in one jitted program (each in a subprocess)")
    print(io.format_table(["program", "status", "calls done", "detail"], rows))
    return out


# ---------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="K=1, 2 repeats, few probes")
    p.add_argument("--ks", default="1,8", help="member counts, comma-separated")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats per method")
    p.add_argument("--sections", default=",".join(SECTIONS), help=f"subset of {SECTIONS}")
    p.add_argument(
        "--blas",
        default="1,default",
        help="BLAS thread settings to time in 'speed': 1 and/or default (slow under load)",
    )
    p.add_argument("--variant-k", type=int, default=8, help="K of the variants section")
    p.add_argument("--agreement-k", type=int, default=2, help="K of the agreement section")
    p.add_argument("--probes", default="", help="probe names (default DEFAULT_PROBES; PROBES)")
    p.add_argument("--probe-reps", type=int, default=5, help="calls per deadlock probe")
    p.add_argument("--json", default="", help="write all results to this JSON file")
    p.add_argument("--worker-variants", default="", help=argparse.SUPPRESS)
    p.add_argument("--worker-probe", default="", help=argparse.SUPPRESS)
    a = p.parse_args(argv)

    if a.worker_variants:
        print("RESULT " + json.dumps(worker_variants(json.loads(a.worker_variants))), flush=True)
        return
    if a.worker_probe:
        worker_probe(json.loads(a.worker_probe))
        return

    ks = [int(x) for x in a.ks.split(",")]
    repeats = a.repeats
    probes = [x for x in a.probes.split(",") if x] or list(DEFAULT_PROBES)
    if a.quick:
        ks, repeats, probes = [1], min(repeats, 2), list(QUICK_PROBES)
        a.variant_k, a.agreement_k = 1, 1
    sections = [s for s in a.sections.split(",") if s]
    unknown = set(sections) - set(SECTIONS) or set(probes) - set(PROBES)
    if unknown:
        p.error(
            f"unknown section/probe {sorted(unknown)}; sections {SECTIONS}, probes {list(PROBES)}"
        )

    results: dict[str, Any] = {"environment": environment()}
    print("== bench_rank: singular values of ResNet-18's 21 weight matrices")
    for key, v in results["environment"].items():
        print(f"  {key}: {v}")
    start = time.perf_counter()
    if "speed" in sections:
        results["speed"] = speed(ks, repeats, [b for b in a.blas.split(",") if b])
    if "agreement" in sections:
        results["agreement"] = agreement(a.agreement_k)
    if "variants" in sections:
        results["variants"] = variants(a.variant_k, repeats, "default" in a.blas.split(","))
    if "deadlock" in sections:
        print(
            "\nDeadlock probes (OPENBLAS_NUM_THREADS=1 unless named otherwise; a hang is no "
            "output for 60 s and no CPU time for 5 s)"
        )
        results["deadlock"] = deadlock(probes, a.probe_reps)
    results["loadavg_end"] = loadavg()
    print(f"\ndone in {time.perf_counter() - start:.0f}s; load average now {loadavg()}")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
