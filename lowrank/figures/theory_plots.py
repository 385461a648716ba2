"""The plots of ``experiments/theory_check.py``: Theorem 3.3 against ε (the paper's Fig.
18), Lemma 3.2's distance beside its bound, and the momentum run's forgetting coefficients.

Each takes one run (anything with ``name``, ``batch_size``, ``mu``, ``lam``, ``beta``) and
its analysed numbers (``res``, as ``numbers.json`` holds them) and writes one small PNG.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from lowrank import theory


def plot_fig18(run: Any, res: dict, epsilons: np.ndarray, path: Path) -> None:
    """Theorem 3.3's bound m_l·B·log(2/ε)/(2μλ) and the measured ε-rank, per layer and averaged."""
    layers = res["layers"]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), dpi=80)
    for i, (p, ly) in enumerate(layers.items()):
        c = f"C{i}"
        axes[0].plot(epsilons, ly["theorem33"], "-", color=c, label=f"{p} bound")
        axes[0].plot(epsilons, ly["eps_rank_spectral"], "o", ms=3, color=c, label=f"{p} rank")
        axes[0].axhline(min(ly["shape"]), color=c, ls=":", lw=0.8)
    avg_bound = np.mean([ly["theorem33"] for ly in layers.values()], axis=0)
    axes[1].plot(epsilons, avg_bound, "-", label="Theorem 3.3 bound (mean)")
    axes[1].plot(epsilons, res["average_eps_rank"], "o-", ms=3, label="measured average rank")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("ε")
    axes[0].set_ylabel("rank")
    axes[0].set_title("per layer (dotted: min(out, in))", fontsize=9)
    axes[1].set_title(f"{run.name}: B={run.batch_size}, μ={run.mu}, λ={run.lam}", fontsize=9)
    axes[0].legend(fontsize=6)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_lemma32(run: Any, res: dict, path: Path) -> None:
    """Lemma 3.2: distance to rank ≤ m_l·B·n beside its bound, against n (both norms)."""
    layers = res["layers"]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), dpi=80)
    for ax, norm in zip(axes, theory.NORMS, strict=True):
        for i, (p, ly) in enumerate(layers.items()):
            ns = list(ly["n"])
            ax.plot(ns, [ly["n"][n][norm]["bound"] for n in ns], "-", color=f"C{i}", label=p)
            ax.plot(ns, [ly["n"][n][norm]["distance"] for n in ns], "o--", ms=3, color=f"C{i}")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("n (steps)")
        ax.set_title(f"{run.name}, {norm}: bound (line) ≥ distance (dots)", fontsize=9)
    axes[0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_momentum(run: Any, res: dict, path: Path) -> None:
    """What replaces (1−2μλ)^n with momentum: a_n and b_n over a long constant-μ horizon."""
    rho = res["momentum"]["rho"]
    horizon = int(min(20000, 5 / (1 - rho)))
    with jax.enable_x64(True):
        lrs = jnp.full((horizon,), run.mu, jnp.float64)
        a, b, _ = theory.coefficient_table(lrs, run.lam, run.beta)
    n = np.arange(1, horizon + 1)
    a, b = np.asarray(a)[::-1], np.asarray(b)[::-1]  # a[n-1] = a_n
    fig, ax = plt.subplots(figsize=(5.2, 3.2), dpi=80)
    ax.plot(n, a, label="a_n (momentum, weight coefficient)")
    ax.plot(n, np.abs(b), label="|b_n| (velocity coefficient)")
    ax.plot(n, rho**n, ":", label=f"ρⁿ, ρ = {rho:.5f}")
    ax.plot(n, (1 - 2 * run.mu * run.lam) ** n, "--", label="(1−2μλ)ⁿ (SGD, same μ)")
    ax.set_yscale("log")
    ax.set_xlabel("n (steps)")
    ax.set_title(f"{run.name}: β={run.beta}, μ={run.mu}, λ={run.lam}, constant μ", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
