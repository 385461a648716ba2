"""Per-layer figures: norm ratios (Figs. 14–15), spectra (16–17), Theorem 3.3's bound
against the measured rank (18), and the compression study's accuracy curves."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from lowrank import theory
from lowrank.analysis.series import Series, nanstat, series
from lowrank.figures.style import band, colors, layer_order, suptitle, title_of
from lowrank.results import FigureResults, PanelResults, number, setting_label


def _layer_series(p: PanelResults, field: str) -> dict[str, Series]:
    """Per-layer ``record[field][path]`` against epoch, mean ± std over the panel's members."""
    per: dict[str, dict[int, list[float]]] = {}
    for r in p.records:
        values = r.get(field)
        if not values:
            continue
        for path, v in values.items():
            per.setdefault(path, {}).setdefault(r["epoch"], []).append(number(v))
    out = {}
    for path, by_epoch in per.items():
        epochs = np.asarray(sorted(by_epoch))
        vals = [np.asarray(by_epoch[e], float) for e in epochs]
        out[path] = Series(
            setting=(path,),
            epochs=epochs,
            mean=np.asarray([nanstat(np.nanmean, v) for v in vals]),
            std=np.asarray([nanstat(np.nanstd, v) for v in vals]),
            seeds=max(len(v) for v in vals),
        )
    return out


def _short(path: str) -> str:
    """``layer2_0/conv1/kernel`` → ``layer2_0/conv1``."""
    parts = path.split("/")
    return "/".join(parts[:-1]) if len(parts) > 1 else path


def plot_norm_ratios(results: FigureResults) -> Figure:
    """‖W_{t−1}‖/‖W_t‖ of every layer against epoch, one plot per panel (Figs. 14–15)."""
    n = len(results.panels)
    cols = min(n, 2)
    rows = -(-n // cols)
    per_panel = [_layer_series(p, "norm_ratio") for p in results.panels]
    n_layers = max((len(layers) for layers in per_panel), default=1)
    height = max(3.2 * rows, 0.16 * n_layers + 1.2)  # room for the legend of all layers
    fig = Figure(figsize=(4.6 * cols + 1.8, height), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    for ax, p, layers in zip(axes, results.panels, per_panel, strict=False):
        layer_colors = colors(len(layers), "plasma")
        for path, c in zip(layer_order(layers), layer_colors, strict=True):
            band(ax, layers[path], c, _short(path))
        ax.axhline(1.0, color="k", lw=0.8, ls=":")
        ax.set_title(p.label, fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel("‖W(t−1)‖ / ‖W(t)‖")
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
    if results.panels:
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside right center", fontsize=6, title="layer")
    suptitle(fig, title_of(results))
    return fig


def spectra_by_setting(
    p: PanelResults, vary: Sequence[str] | None = None
) -> tuple[dict[str, dict[tuple, tuple[np.ndarray, np.ndarray]]], int]:
    """Last saved singular values: ``{path: {setting: (mean σ, std σ)}}`` and the epoch."""
    vary = tuple(vary or p.vary)
    members = sorted(p.members, key=lambda m: m["id"])
    out: dict[str, dict[tuple, list[np.ndarray]]] = {}
    epoch = -1
    for g, (e, values) in sorted(p.spectra().items()):
        epoch = max(epoch, e)
        in_group = [m for m in members if m["group"] == g]
        for path, sv in values.items():
            for k, m in enumerate(in_group):
                setting = tuple(m[h] for h in vary)
                out.setdefault(path, {}).setdefault(setting, []).append(np.asarray(sv[k]))
    stats = {
        path: {
            s: (np.nanmean(np.stack(v), 0), np.nanstd(np.stack(v), 0)) for s, v in sorted(d.items())
        }
        for path, d in out.items()
    }
    return stats, epoch


def plot_spectra(results: FigureResults, max_layers: int = 24) -> Figure:
    """Singular values of each layer, one line per setting (batch size) (Figs. 16–17)."""
    p = results.panels[0]
    stats, epoch = spectra_by_setting(p)
    paths = layer_order(stats)[:max_layers]
    cols = min(5, max(1, len(paths)))
    rows = max(1, -(-len(paths) // cols))
    fig = Figure(figsize=(2.9 * cols, 2.4 * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[len(paths) :]:
        ax.set_visible(False)
    for i, (ax, path) in enumerate(zip(axes, paths, strict=False)):
        settings = stats[path]
        for (setting, (mean, std)), c in zip(settings.items(), colors(len(settings)), strict=True):
            idx = np.arange(1, len(mean) + 1)
            ax.plot(idx, mean, color=c, lw=1.2, label=setting_label(p.vary, setting))
            ax.fill_between(idx, np.maximum(mean - std, 1e-12), mean + std, color=c, alpha=0.2)
        ax.set_yscale("log")
        ax.set_title(f"layer {i + 1}: {_short(path)}", fontsize=7)
        ax.tick_params(which="both", labelsize=6)
        ax.grid(alpha=0.3)
    if paths:
        axes[0].legend(fontsize=6)
        axes[0].set_ylabel("σ_i")
    suptitle(fig, f"{title_of(results)} (epoch {epoch})")
    return fig


def bound_curve(p: PanelResults, epsilons: np.ndarray) -> dict[str, np.ndarray]:
    """Theorem 3.3's bound (``lowrank.theory.theorem33_rank_bound``) averaged over layers,
    with the panel's m_l (``structure.json``), at the configured μ and at the final μ_t.

    Returns ``{"initial": ..., "final": ...}`` over ``epsilons``.

    Raises:
      FileNotFoundError: the results folder has no ``structure.json`` (written by runs
        since it was introduced; rerun the panel to get it).
    """
    m_l = p.structure.get("m_l")
    if not m_l:
        raise FileNotFoundError(
            f"plots: {p.workdir} has no structure.json (m_l per layer); rerun the panel."
        )
    last = p.member_records()[min(m["id"] for m in p.members)]
    last = [r for r in last if "lr_now" in r][-1]
    lam, batch = last["weight_decay"], last["batch_size"]

    def mean_bound(mu: float) -> np.ndarray:
        per_layer = [theory.theorem33_rank_bound(m, batch, mu, lam, epsilons) for m in m_l.values()]
        return np.mean(per_layer, axis=0)

    return {"initial": mean_bound(last["learning_rate"]), "final": mean_bound(last["lr_now"])}


def plot_bound(results: FigureResults) -> Figure:
    """Theorem 3.3's bound against ε beside the measured average rank (Fig. 18)."""
    p = results.panels[0]
    eps_cfg = [e for e in p.config.get("rank", {}).get("epsilons", []) if e < 0.5]
    fig = Figure(figsize=(13, 3.8), layout="constrained")
    ax_b, ax_r, ax_a = fig.subplots(1, 3)
    grid = np.geomspace(min([*eps_cfg, 1e-3]), 0.49, 60)
    curves = bound_curve(p, grid)
    ax_b.plot(grid, curves["initial"], "k-", label="bound m_l·B·log(2/ε)/(2μλ), initial μ")
    if not np.allclose(curves["final"], curves["initial"]):
        ax_b.plot(grid, curves["final"], "k--", label="bound at the final μ_t")
    finals, stds = [], []
    for e in eps_cfg:
        v = np.asarray(list(p.final(f"avg_rank@{e:g}").values()), float)
        finals.append(np.nanmean(v))
        stds.append(np.nanstd(v))
    ax_b.errorbar(eps_cfg, finals, yerr=stds, fmt="o-", color="C1", label="measured average rank")
    spectra, _ = spectra_by_setting(p, vary=("batch_size",))
    if spectra:
        full = np.mean([len(next(iter(d.values()))[0]) for d in spectra.values()])
        ax_b.axhline(full, color="C2", ls=":", label=f"full rank (mean min(out, in) = {full:g})")
    ax_b.set_xscale("log")
    ax_b.set_yscale("log")
    ax_b.set_xlabel("ε")
    ax_b.set_ylabel("rank")
    ax_b.legend(fontsize=7)
    ax_b.grid(alpha=0.3, which="both")
    ax_b.set_title("Theorem 3.3 bound vs measured rank (final epoch)", fontsize=9)
    for e, c in zip(eps_cfg, colors(len(eps_cfg), "plasma"), strict=True):
        for s in series(p, f"avg_rank@{e:g}", vary=("batch_size",)):
            band(ax_r, s, c, f"ε={e:g}")
    ax_r.set_xlabel("epoch")
    ax_r.set_ylabel("average rank")
    ax_r.legend(fontsize=7)
    ax_r.grid(alpha=0.3)
    ax_r.set_title("average rank during training", fontsize=9)
    for split, style in (("train_accuracy", "-"), ("test_accuracy", "--")):
        for s in series(p, split, vary=("batch_size",)):
            band(ax_a, s, "C0", split.replace("_", " "), style)
    ax_a.set_xlabel("epoch")
    ax_a.set_ylabel("accuracy")
    ax_a.legend(fontsize=7)
    ax_a.grid(alpha=0.3)
    ax_a.set_title("train and test accuracy", fontsize=9)
    suptitle(fig, title_of(results))
    return fig


def plot_compression(rows: Sequence[dict[str, Any]], title: str = "") -> Figure:
    """Test accuracy against the fraction of parameters kept, one line per λ.

    ``rows`` are :func:`lowrank.compress.compression_curve` rows with ``weight_decay``
    and ``seed`` added. Truncation to a fixed fraction of each matrix's full rank gives
    the lines; truncation to the effective rank at each ε gives the markers.
    """
    fig = Figure(figsize=(9.5, 3.8), layout="constrained")
    ax, ax_e = fig.subplots(1, 2)
    lams = sorted({r["weight_decay"] for r in rows})
    for lam, c in zip(lams, colors(len(lams)), strict=True):
        mine = [r for r in rows if r["weight_decay"] == lam]
        for ax_, method in ((ax, "fraction"), (ax_e, "epsilon")):
            levels = sorted({r["level"] for r in mine if r["method"] == method})
            x, y, yerr = [], [], []
            for level in levels:
                pts = [r for r in mine if r["method"] == method and r["level"] == level]
                x.append(np.mean([r["param_fraction"] for r in pts]))
                acc = np.asarray([r["accuracy"] for r in pts], float)
                y.append(acc.mean())
                yerr.append(acc.std())
            style = "o-" if method == "fraction" else "s--"
            ax_.errorbar(x, y, yerr=yerr, fmt=style, color=c, ms=3, lw=1.2, label=f"λ={lam:g}")
            if method == "epsilon":
                for xi, yi, level in zip(x, y, levels, strict=True):
                    ax_.annotate(f"{level:g}", (xi, yi), fontsize=5, color=c,
                                 xytext=(2, 2), textcoords="offset points")  # fmt: skip
    base = [r for r in rows if r["method"] == "none"]
    for lam, c in zip(lams, colors(len(lams)), strict=True):
        acc = [r["accuracy"] for r in base if r["weight_decay"] == lam]
        if acc:
            for ax_ in (ax, ax_e):
                ax_.axhline(np.mean(acc), color=c, lw=0.6, ls=":")
    ax.set_title("each matrix truncated to a fraction of its full rank", fontsize=9)
    ax_e.set_title("each matrix truncated to its effective rank at ε (labels)", fontsize=9)
    for ax_ in (ax, ax_e):
        ax_.set_xscale("log")
        ax_.set_xlabel("fraction of parameters kept")
        ax_.set_ylabel("test accuracy")
        ax_.grid(alpha=0.3, which="both")
        ax_.legend(fontsize=7)
    suptitle(fig, title or "Compression by truncated SVD (dotted: uncompressed)")
    return fig
