"""Benchmark: singular values of ResNet-18's 21 weight matrices (issue 2).

What the choices in ``lowrank.rank`` rest on, as ratios measured in one run:

* ``speed``: ``jit(vmap(rank.spectra))`` on K members vs a per-matrix NumPy loop (also
  tall), vs the same grouping on the wide orientation (the transpose in
  ``_svdvals_stack``) and vs the float64 Gram route; at 1 and (``--blas 1,default``) the
  default BLAS threads (``OPENBLAS_NUM_THREADS=1`` in ``lowrank.main``). Interleaved
  repeats, medians: load from other processes falls on every method alike.
* ``agreement``: threshold ranks at ε = 1e-3, ``svd`` (float32) and ``gram`` (float64)
  vs NumPy's float64 SVD, on matrices with prescribed spectra (``svd`` as the default).
* ``deadlock``: the chaining in ``rank.spectra_of``. The library's Gram-route program
  without the dependency between shape groups (hangs with jaxlib 0.10.2) and with it
  (must finish: exit status 1 if not), each in a subprocess under a watchdog (no CPU
  time used for ``--idle-s``: a deadlock; busy past its limit: slow).

Run from the repository root: ``.venv/bin/python benchmarks/bench_rank.py [--quick]``;
``--sections deadlock`` after a jaxlib upgrade, before dropping the chain.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
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
SECTIONS = ("speed", "agreement", "deadlock")


def random_params(k: int, seed: int = 0) -> Any:
    """K members of CIFAR ResNet-18's parameters, float32, stacked: kernels N(0, 1/fan_in),
    1-D leaves 0 (the real shapes without compiling the model's initializer)."""
    model = models.build_model(models.default_model_config("resnet18"), 10)
    x = jnp.zeros((1, 32, 32, 3), jnp.float32)
    shapes = jax.eval_shape(lambda key: model.init(key, x, train=False), jax.random.key(0))
    rng = np.random.default_rng(seed)

    def fill(s: jax.ShapeDtypeStruct) -> np.ndarray:
        scale = 0.0 if len(s.shape) < 2 else 1 / math.sqrt(math.prod(s.shape[:-1]))
        return (scale * rng.standard_normal((k, *s.shape))).astype(np.float32)

    return jax.tree_util.tree_map(fill, shapes["params"])


def host_matrices(params: Any) -> dict[str, np.ndarray]:
    """``{path: (K, out, in)}`` float32 host arrays, C-contiguous (the paper's view)."""
    mats = jax.jit(jax.vmap(rank.weight_matrices))(params)
    return {p: np.ascontiguousarray(np.asarray(m)) for p, m in mats.items()}


def near_threshold(r: int, rng: np.random.Generator) -> np.ndarray:
    """A signal, then half of the σ within ±0.1 % of ε: a precision stress test."""
    close = EPSILON * (1 + rng.uniform(-1e-3, 1e-3, r - r // 2))
    return np.sort(np.concatenate([np.logspace(0, -2, r // 2), close]))[::-1]


SPECTRA = {  # σ of length r = min(out, in) ≥ 10, largest 1, crossing ε
    "geometric 1→1e-6": lambda r, rng: np.logspace(0, -6, r),  # half of σ above ε
    "cliff r/4": lambda r, rng: np.r_[np.logspace(0, -1, r // 4), np.full(r - r // 4, 1e-5)],
    "±0.1% around ε": near_threshold,
}


def spectra_like(gaussian: Mapping[str, np.ndarray], kind: str, seed: int = 1) -> dict:
    """Matrices of the same shapes, ``U diag(σ) Vᵀ`` (random orthonormal U, V, σ of kind)."""
    rng = np.random.default_rng(seed)

    def one(rows: int, cols: int) -> np.ndarray:
        r = min(rows, cols)
        u, _ = np.linalg.qr(rng.standard_normal((rows, r)))
        v, _ = np.linalg.qr(rng.standard_normal((cols, r)))
        return ((u * SPECTRA[kind](r, rng)[None, :]) @ v.T).astype(np.float32)

    return {p: np.stack([one(*m.shape[1:]) for _ in m]) for p, m in gaussian.items()}


def numpy_loop(mats: Mapping[str, np.ndarray], tall: bool = False) -> dict[str, list]:
    """One ``np.linalg.svd(compute_uv=False)`` per matrix per member (``tall``: of ``m.T``
    where wider than tall; σ(M) = σ(Mᵀ))."""
    flip = (lambda m: m.T if m.shape[0] < m.shape[1] else m) if tall else (lambda m: m)
    return {p: [np.linalg.svd(flip(m), compute_uv=False) for m in s] for p, s in mats.items()}


def grouped_svdvals(
    matrices: Mapping[str, jax.Array], decompose: Callable, *, chain: bool
) -> dict[str, jax.Array]:
    """``rank.spectra_of``'s grouping with a pluggable decomposition, chained (the
    library's data dependency between shape groups) or not (XLA may run groups at once)."""
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
        values.update({p: sv[i] for i, p in enumerate(paths)})
    return values


@functools.cache
def _blas_controller() -> threadpoolctl.ThreadpoolController:
    """The loaded BLAS libraries, looked up once jaxlib has loaded its LAPACK (SciPy's
    OpenBLAS; looked up earlier, a limit would reach NumPy's OpenBLAS only)."""
    jax.block_until_ready(jnp.linalg.svd(jnp.eye(2), compute_uv=False))
    return threadpoolctl.ThreadpoolController()


def interleaved(cases: dict[str, tuple], repeats: int) -> dict[str, float]:
    """``{name: (fn, BLAS threads or None, under x64?)}`` → median seconds: every case
    once (compiles; not counted), then once per repeat, in rotating order."""
    times: dict[str, list[float]] = {n: [] for n in cases}

    def run(name: str) -> float:
        fn, threads, f64 = cases[name]
        with contextlib.ExitStack() as ctx:
            if threads is not None:
                ctx.enter_context(_blas_controller().limit(limits=threads, user_api="blas"))
            if f64:
                ctx.enter_context(jax.enable_x64(True))
            start = time.perf_counter()
            jax.block_until_ready(fn())
            return time.perf_counter() - start

    for name in cases:
        print(f"  warm-up {name}: {run(name):.1f}s", flush=True)
    names = list(cases)
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            times[name].append(run(name))
        print(f"  repeat {r + 1}/{repeats} done ({time.strftime('%H:%M:%S')})", flush=True)
    return {n: float(np.median(t)) for n, t in times.items()}


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def environment() -> dict[str, Any]:
    """Versions, the BLAS libraries (jaxlib's LAPACK is SciPy's OpenBLAS), thread settings."""
    _blas_controller()
    blas = [
        (i["internal_api"], i["version"], Path(i["filepath"]).name, i["num_threads"])
        for i in threadpoolctl.threadpool_info()
        if i["user_api"] == "blas"
    ]
    names = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "XLA_FLAGS")
    env = {k: os.environ[k] for k in names if k in os.environ} or "(none set)"
    versions = f"python {sys.version.split()[0]}, jax {jax.__version__}, numpy {np.__version__}"
    return {"versions": versions, "cpus": os.cpu_count(), "blas": blas, "env": env}


RATIOS = (  # (what it tells, numerator, denominator), at each BLAS setting
    ("numpy loop / library svd (issue 2: ≥ 2 at K = 8)", "numpy loop", "library svd"),
    ("numpy loop, tall / library svd", "numpy loop, tall", "library svd"),
    ("wide / library svd (what the transpose saves)", "svd, wide orientation", "library svd"),
    ("library gram / library svd", "library gram, float64", "library svd"),
)


def speed_cases(k: int, settings: list[tuple[int | None, str]]) -> dict[str, tuple]:
    """The methods at K members, for each BLAS setting ``(threads, tag)``."""
    params = random_params(k)
    mats = host_matrices(params)
    print(f"\nK={k}: {sum(m.shape[0] for m in mats.values())} matrices; load {loadavg()}")
    dp = jax.device_put(params)
    svd = jax.jit(jax.vmap(lambda p: rank.spectra(p).values))
    # gesdd on the matrices as they are: the library before commit 2167059 (LQ first).
    gesdd = functools.partial(jax.lax.linalg.svd, full_matrices=False, compute_uv=False)
    wide = jax.jit(jax.vmap(lambda p: grouped_svdvals(rank.weight_matrices(p), gesdd, chain=True)))
    with jax.enable_x64(True):
        gram = jax.jit(jax.vmap(lambda p: rank.spectra(p, method="gram").values))
    methods = {  # name: (function, under x64?)
        "numpy loop": (functools.partial(numpy_loop, mats), False),
        "numpy loop, tall": (functools.partial(numpy_loop, mats, True), False),
        "library svd": (functools.partial(svd, dp), False),
        "svd, wide orientation": (functools.partial(wide, dp), False),
        "library gram, float64": (functools.partial(gram, dp), True),
    }
    return {
        f"{m} [{tag}]": (fn, threads, f64)
        for threads, tag in settings
        for m, (fn, f64) in methods.items()
    }


def speed(ks: list[int], repeats: int, blas: list[str]) -> dict[str, Any]:
    """The speed table and its ratios, per K; ``blas``: "1" and/or "default"."""
    settings = [(None if b == "default" else int(b), b) for b in blas]
    results: dict[str, Any] = {}
    for k in ks:
        t = interleaved(speed_cases(k, settings), repeats)
        base = {n: t["numpy loop [" + n.split("[")[1]] for n in t}
        rows = [[n, f"{v:.3f}", f"{base[n] / v:.2f}x"] for n, v in t.items()]
        print(f"\nK={k} (median of {repeats}; load {loadavg()})")
        print(io.format_table(["method [BLAS threads]", "median s", "numpy loop / this"], rows))
        ratios = {
            f"{what} [{g}]": t[f"{a} [{g}]"] / t[f"{b} [{g}]"]
            for _, g in settings
            for what, a, b in RATIOS
        }
        if {"1", "default"} <= set(blas):
            for m in ("library svd", "numpy loop"):
                ratios[f"{m}: BLAS default / 1 thread"] = t[f"{m} [default]"] / t[f"{m} [1]"]
        print("\n".join(f"  {name}: {v:.2f}" for name, v in ratios.items()))
        results[f"K={k}"] = {"median_s": t, "ratios": ratios}
    return results


def differences(mats: dict[str, np.ndarray], svd_fn: Callable, gram_fn: Callable) -> dict:
    """How many (layer, member) threshold ranks differ between the routes and NumPy's
    float64 SVD (the reference); ranks after spectral normalization."""
    counts = lambda sv: np.sum(sv > EPSILON * sv.max(axis=-1, keepdims=True), axis=-1)
    s_svd = jax.device_get(svd_fn(mats))
    with jax.enable_x64(True):
        s_gram = jax.device_get(gram_fn(mats))
    s_ref = numpy_loop({p: m.astype(np.float64) for p, m in mats.items()})
    pairs = (("ref", s_ref), ("svd", s_svd), ("gram", s_gram))
    c = {m: np.stack([counts(np.asarray(s[p], np.float64)) for p in mats]) for m, s in pairs}
    return {
        "svd≠gram": int(np.sum(c["svd"] != c["gram"])),
        "max|svd-gram|": int(np.max(np.abs(c["svd"] - c["gram"]))),
        "svd≠ref": int(np.sum(c["svd"] != c["ref"])),
        "gram≠ref": int(np.sum(c["gram"] != c["ref"])),
        "avg rank ref/svd/gram": "/".join(f"{c[m].mean():.2f}" for m in c),
    }


def agreement(k: int) -> dict[str, Any]:
    """Threshold-rank counts at ε: svd (float32) vs gram (float64) vs NumPy float64 SVD."""
    svd_fn = jax.jit(jax.vmap(lambda ms: rank.spectra_of(ms).values))
    with jax.enable_x64(True):
        gram_fn = jax.jit(jax.vmap(lambda ms: rank.spectra_of(ms, method="gram").values))
    # One BLAS thread for the QRs and SVDs on the host too: two crawl on a loaded machine.
    with _blas_controller().limit(limits=1, user_api="blas"):
        gaussian = host_matrices(random_params(k))
        inputs = {"gaussian (lecun init)": gaussian}
        inputs |= {kind: spectra_like(gaussian, kind) for kind in SPECTRA}
        out = {name: differences(mats, svd_fn, gram_fn) for name, mats in inputs.items()}
    n = sum(m.shape[0] for m in gaussian.values())
    print(f"\nThreshold rank at ε={EPSILON:g}, K={k}: how many of {n} (layer, member) differ")
    rows = [[name, *row.values()] for name, row in out.items()]
    print(io.format_table(["matrices", *next(iter(out.values()))], rows))
    return out


def worker_probe(spec: dict[str, Any]) -> None:
    """In a subprocess: the ResNet-18 Gram-route spectra, chained (the library) or not,
    called ``reps`` times. The Gram route's unchained program hangs on its first call in
    every run so far; the ``svd`` route's hangs too, but less reliably (1 run in 6 on
    2026-12-01), and the chaining serves both alike."""
    jax.config.update("jax_enable_x64", True)
    params = jax.device_put(random_params(spec["k"]))
    gram = functools.partial(rank._svdvals_stack, method="gram")  # the library's, per group
    unchained = lambda p: grouped_svdvals(rank.weight_matrices(p), gram, chain=False)
    chained = lambda p: rank.spectra(p, method="gram").values
    fn = jax.jit(jax.vmap(chained if spec["chained"] else unchained))
    for r in range(spec["reps"]):
        jax.block_until_ready(fn(params))
        print(f"PROGRESS {r}", flush=True)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def watch(args: list[str], env: Mapping[str, str], idle_s: float, limit_s: float) -> dict:
    """Runs this script with ``args`` under a watchdog: a DEADLOCK is under 0.05 CPU-s used
    in ``idle_s`` (a hung program waits, a slow one computes); SLOW is busy past
    ``limit_s``."""
    with tempfile.TemporaryFile("w+") as log:
        cmd = [sys.executable, __file__, *args]
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env}
        )
        start = busy = time.monotonic()
        status, cpu = "ok", 0.0
        while proc.poll() is None:
            time.sleep(1)
            used = _cpu_seconds(proc.pid)  # a zombie's /proc entry stays until wait()
            if used - cpu > 0.05:
                cpu, busy = used, time.monotonic()
            if time.monotonic() - busy > idle_s:
                status = "DEADLOCK"
            elif time.monotonic() - start > limit_s:
                status = "SLOW"
            if status != "ok":
                proc.kill()
                break
        proc.wait()
        log.seek(0)
        lines = log.read().splitlines()
    detail = f"{time.monotonic() - start:.0f}s, {cpu:.0f} CPU-s"
    if status == "ok" and proc.returncode != 0:
        status, detail = "ERROR", f"exit code {proc.returncode}: " + " | ".join(lines[-3:])
    return {"status": status, "detail": detail, "calls": sum("PROGRESS" in x for x in lines)}


def deadlock(k: int, reps: int, idle_s: float, limit_s: float) -> dict[str, Any]:
    """The unchained and the chained (library) program, each in a subprocess with
    ``OPENBLAS_NUM_THREADS=1`` (the hang does not depend on it; it keeps runs short)."""
    print(f"\nDeadlock probes: K={k}, {reps} calls each, a hang = no CPU time for {idle_s:.0f}s")
    out, rows = {}, []
    for name, chained in (("unchained (bench copy)", False), ("chained (rank.spectra)", True)):
        spec = json.dumps({"k": k, "chained": chained, "reps": reps})
        out[name] = watch(["--worker-probe", spec], {"OPENBLAS_NUM_THREADS": "1"}, idle_s, limit_s)
        r = out[name]
        rows.append([name, r["status"], f"{r['calls']}/{reps}", r["detail"]])
        print(f"  {name}: {r['status']} [load {loadavg()}]", flush=True)
    print(io.format_table(["ResNet-18 gram program", "status", "calls done", "time"], rows))
    hung = out["unchained (bench copy)"]["status"] == "DEADLOCK"
    print(
        "  => the chaining in rank.spectra_of is needed with this jaxlib"
        if hung
        else "  => unchained did not hang this time (it is timing-dependent); keep the chain"
    )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="K=1, BLAS 1, 2 repeats, 2 probe calls")
    p.add_argument("--sections", default=",".join(SECTIONS), help=f"subset of {SECTIONS}")
    p.add_argument("--ks", default="1,8", help="member counts of the speed section")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats per method")
    p.add_argument("--blas", default="1,default", help="BLAS thread settings: 1 and/or default")
    p.add_argument("--agreement-k", type=int, default=2, help="K of the agreement section")
    p.add_argument("--probe-k", type=int, default=8, help="K of the deadlock probes")
    p.add_argument("--probe-reps", type=int, default=5, help="calls per deadlock probe")
    p.add_argument("--idle-s", type=float, default=15.0, help="no CPU time this long: a hang")
    p.add_argument("--json", default="", help="write all results to this JSON file")
    p.add_argument("--worker-probe", default="", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker_probe:
        worker_probe(json.loads(a.worker_probe))
        return 0
    ks, blas = [int(x) for x in a.ks.split(",")], [b for b in a.blas.split(",") if b]
    if a.quick:
        ks, blas, a.repeats, a.agreement_k, a.probe_reps = [1], ["1"], 2, 1, 2
    sections = [s for s in a.sections.split(",") if s]
    if set(sections) - set(SECTIONS) or set(blas) - {"1", "default"}:
        p.error(f"sections are {SECTIONS}; --blas takes 1 and/or default")

    results: dict[str, Any] = {"environment": environment()}
    print("== bench_rank: singular values of ResNet-18's 21 weight matrices")
    print("\n".join(f"  {key}: {v}" for key, v in results["environment"].items()))
    print(f"  load average: {loadavg()}")
    start = time.perf_counter()
    if "speed" in sections:
        results["speed"] = speed(ks, a.repeats, blas)
    if "agreement" in sections:
        results["agreement"] = agreement(a.agreement_k)
    if "deadlock" in sections:
        limit = 120.0 + 15.0 * a.probe_k * a.probe_reps
        results["deadlock"] = deadlock(a.probe_k, a.probe_reps, a.idle_s, limit)
    print(f"\ndone in {time.perf_counter() - start:.0f}s; load average now {loadavg()}")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1, default=str) + "\n")
    chained = results.get("deadlock", {}).get("chained (rank.spectra)", {"status": "ok"})
    if chained["status"] != "ok":
        print("FAILED: the chained (library) program did not finish", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
