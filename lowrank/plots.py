"""Figures from a results folder, laid out as in the paper; nothing is retrained.

:func:`draw` reads a figure's results folder (or a plain sweep results folder) with
:func:`lowrank.figures.load_results` and draws, by ``figure.kind``:

* ``curves``: a top row of average rank at ε against epoch, one line per value of the
  varied hyperparameter; a bottom row of train (solid) and test (dashed) accuracy; one
  column per panel (Figs. 2–13);
* ``heatmap``: the final average rank over a pair of hyperparameters, one map per panel
  (Fig. 1);
* ``norm_ratios``: ‖W_{t−1}‖/‖W_t‖ per layer against epoch, one plot per panel
  (Figs. 14–15);
* ``spectra``: the singular values of each layer at the last saved epoch, one line per
  batch size (Figs. 16–17);
* ``bound``: Theorem 3.3's bound against ε beside the measured average rank (Fig. 18).

Curves and heat maps can show another rank measure than the ε-rank (``measure``: the
stable, entropy or numerical rank; :data:`RANK_MEASURES`). Lines are the mean over seeds
with ± one standard deviation shaded. Matplotlib is used through its object API (no
pyplot state), so drawing is safe in tests and scripts.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from lowrank import figures
from lowrank.figures import FigureResults, PanelResults

_CMAP = "viridis"
_FIRST_LAYER = re.compile(r"^(stem|patch_embed|embed|input)", re.IGNORECASE)
_LAST_LAYER = re.compile(r"^(classifier|head|logits|output)", re.IGNORECASE)

# The rank measures a curves or heatmap figure can show: name -> (metrics key, what it is
# in plain text, axis label in matplotlib's mathtext). "epsilon" is the paper's (its key
# depends on the figure's ε); the others are recorded every epoch too (lowrank.rank) and
# move long before any σ_i falls below ε·σ_max.
RANK_MEASURES: dict[str, tuple[str, str, str]] = {
    "epsilon": ("avg_rank@{eps:g}", "average rank (ε={eps:g})", "average rank (ε={eps:g})"),
    "stable": (
        "avg_stable_rank",
        "average stable rank ‖W‖_F²/‖W‖₂²",
        r"average stable rank $\|W\|_F^2/\|W\|_2^2$",
    ),
    "entropy": ("avg_entropy_rank", "average entropy rank", "average entropy rank"),
    "numerical": ("avg_numerical_rank", "average numerical rank", "average numerical rank"),
}


def rank_measure(measure: str, epsilon: float, *, axis: bool = False) -> tuple[str, str]:
    """The metrics key and the name of a rank measure (see :data:`RANK_MEASURES`).

    Args:
      measure: a name in :data:`RANK_MEASURES`.
      epsilon: the ε of the ε-rank.
      axis: the name as an axis label (mathtext) instead of plain text.

    Raises:
      ValueError: ``measure`` is not one of :data:`RANK_MEASURES`.
    """
    if measure not in RANK_MEASURES:
        raise ValueError(
            f"plots: unknown rank measure {measure!r}; use one of {tuple(RANK_MEASURES)}."
        )
    key, text, label = RANK_MEASURES[measure]
    return key.format(eps=epsilon), (label if axis else text).format(eps=epsilon)


def layer_order(paths: Iterable[str]) -> list[str]:
    """Paths from input to output: stem/embedding first, classifier last, numbers numeric.

    Results files keep layers in sorted key order (JAX sorts dict keys), so the depth
    order is restored from the names.
    """

    def key(path: str) -> tuple:
        top = path.split("/")[0]
        group = 0 if _FIRST_LAYER.match(top) else 2 if _LAST_LAYER.match(top) else 1
        parts = re.split(r"(\d+)", path)
        return (group, tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in parts))

    return sorted(paths, key=key)


def _colors(n: int, cmap: str = _CMAP) -> list[Any]:
    import matplotlib

    cm = matplotlib.colormaps[cmap]
    return [cm(x) for x in (np.linspace(0.0, 0.9, n) if n > 1 else [0.0])]


def _band(ax: Axes, s: figures.Series, color: Any, label: str | None, style: str = "-") -> None:
    """A mean line with ± std shaded (over seeds); epochs on an integer axis."""
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.plot(s.epochs, s.mean, style, color=color, label=label, lw=1.4)
    if s.seeds > 1 and np.isfinite(s.std).any():
        ax.fill_between(s.epochs, s.mean - s.std, s.mean + s.std, color=color, alpha=0.2, lw=0)


def _title(results: FigureResults) -> str:
    f = results.figure
    number = f"Fig. {f['number']}" if f.get("number") else ""
    scale = f" ({f['scale']} scale)" if f.get("scale") else ""
    return f"{number}{scale}: {f.get('title', '')}".strip(": ")


def _suptitle(fig: Figure, text: str) -> None:
    """The figure's title, wrapped to its width (about 12 characters per inch at 10 pt)."""
    import textwrap

    width = max(30, int(fig.get_figwidth() * 12))
    fig.suptitle("\n".join(textwrap.wrap(text, width)), fontsize=10)


def plot_curves(
    results: FigureResults, epsilon: float | None = None, measure: str = "epsilon"
) -> Figure:
    """Average rank (top row) and train/test accuracy (bottom row), one column per panel.

    ``measure`` picks the rank of the top row (:data:`RANK_MEASURES`; the ε-rank at
    ``epsilon``, default the figure's ε).
    """
    eps = results.epsilon if epsilon is None else epsilon
    key, label = rank_measure(measure, eps, axis=True)
    n = len(results.panels)
    fig = Figure(figsize=(3.4 * n + 0.6, 5.6), layout="constrained")
    axes = fig.subplots(2, n, squeeze=False, sharex="col")
    for j, p in enumerate(results.panels):
        ranks = figures.series(p, key)
        colors = _colors(len(ranks))
        top, bottom = axes[0, j], axes[1, j]
        for s, c in zip(ranks, colors, strict=True):
            _band(top, s, c, figures.setting_label(p.vary, s.setting))
        for split, style in (("train_accuracy", "-"), ("test_accuracy", "--")):
            for s, c in zip(figures.series(p, split), colors, strict=False):
                _band(bottom, s, c, None, style)
        top.set_title(p.label, fontsize=10)
        top.set_ylabel(label if j == 0 else "")
        bottom.set_ylabel("accuracy (train —, test - -)" if j == 0 else "")
        bottom.set_xlabel("epoch")
        top.legend(fontsize=7, loc="best")
        for ax in (top, bottom):
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=8)
    _suptitle(fig, _title(results))
    return fig


def _final_grid(p: PanelResults, key: str) -> tuple[list[Any], list[Any], np.ndarray, np.ndarray]:
    """Final ``key`` over the panel's two varied fields: x values, y values, mean, std."""
    hx, hy = p.vary
    finals = p.final(key)
    cells: dict[tuple[Any, Any], list[float]] = {}
    for mid, v in finals.items():
        m = p.member(mid)
        cells.setdefault((m[hx], m[hy]), []).append(v)
    xs = sorted({k[0] for k in cells})
    ys = sorted({k[1] for k in cells})
    mean = np.full((len(ys), len(xs)), np.nan)
    std = np.full_like(mean, np.nan)
    for (x, y), vals in cells.items():
        a = np.asarray(vals, float)
        if np.isfinite(a).any():
            mean[ys.index(y), xs.index(x)] = np.nanmean(a)
            std[ys.index(y), xs.index(x)] = np.nanstd(a)
    return xs, ys, mean, std


def plot_heatmaps(
    results: FigureResults, epsilon: float | None = None, measure: str = "epsilon"
) -> Figure:
    """Final average rank over two hyperparameters, one heat map per panel (Fig. 1).

    ``measure`` as in :func:`plot_curves`.
    """
    eps = results.epsilon if epsilon is None else epsilon
    key, label = rank_measure(measure, eps, axis=True)
    n = len(results.panels)
    fig = Figure(figsize=(3.6 * n + 0.4, 3.6), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, p in zip(axes, results.panels, strict=True):
        hx, hy = p.vary
        xs, ys, mean, std = _final_grid(p, key)
        im = ax.imshow(mean, origin="lower", cmap=_CMAP, aspect="auto")
        ax.set_xticks(range(len(xs)), [f"{x:g}" for x in xs], fontsize=7)
        ax.set_yticks(range(len(ys)), [f"{y:g}" for y in ys], fontsize=7)
        ax.set_xlabel(figures.SYMBOLS[hx])
        ax.set_ylabel(figures.SYMBOLS[hy])
        # Whole numbers for ranks in the tens and more; one decimal for small ones (the
        # stable rank is often 1–10, where a whole number hides the trend).
        digits = 1 if np.isfinite(mean).any() and np.nanmax(np.abs(mean)) < 10 else 0
        for (i, k), v in np.ndenumerate(mean):
            if math.isfinite(v):
                text = (
                    f"{v:.{digits}f}"
                    if not math.isfinite(std[i, k]) or std[i, k] < 0.5 * 10**-digits
                    else (f"{v:.{digits}f}\n±{std[i, k]:.{digits}f}")
                )
                ax.text(k, i, text, ha="center", va="center", fontsize=6, color="w")
        ax.set_title(p.label, fontsize=10)
        fig.colorbar(im, ax=ax, shrink=0.8, label=f"final {label}")
    _suptitle(fig, _title(results))
    return fig


def _layer_series(p: PanelResults, field: str) -> dict[str, figures.Series]:
    """Per-layer ``record[field][path]`` against epoch, mean ± std over the panel's members."""
    per: dict[str, dict[int, list[float]]] = {}
    for r in p.records:
        values = r.get(field)
        if not values:
            continue
        for path, v in values.items():
            per.setdefault(path, {}).setdefault(r["epoch"], []).append(figures._number(v))
    out = {}
    for path, by_epoch in per.items():
        epochs = np.asarray(sorted(by_epoch))
        vals = [np.asarray(by_epoch[e], float) for e in epochs]
        out[path] = figures.Series(
            setting=(path,),
            epochs=epochs,
            mean=np.asarray([figures._nanstat(np.nanmean, v) for v in vals]),
            std=np.asarray([figures._nanstat(np.nanstd, v) for v in vals]),
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
        colors = _colors(len(layers), "plasma")
        for path, c in zip(layer_order(layers), colors, strict=True):
            _band(ax, layers[path], c, _short(path))
        ax.axhline(1.0, color="k", lw=0.8, ls=":")
        ax.set_title(p.label, fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel("‖W(t−1)‖ / ‖W(t)‖")
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
    if results.panels:
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside right center", fontsize=6, title="layer")
    _suptitle(fig, _title(results))
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
        for (setting, (mean, std)), c in zip(settings.items(), _colors(len(settings)), strict=True):
            idx = np.arange(1, len(mean) + 1)
            ax.plot(idx, mean, color=c, lw=1.2, label=figures.setting_label(p.vary, setting))
            ax.fill_between(idx, np.maximum(mean - std, 1e-12), mean + std, color=c, alpha=0.2)
        ax.set_yscale("log")
        ax.set_title(f"layer {i + 1}: {_short(path)}", fontsize=7)
        ax.tick_params(which="both", labelsize=6)
        ax.grid(alpha=0.3)
    if paths:
        axes[0].legend(fontsize=6)
        axes[0].set_ylabel("σ_i")
    _suptitle(fig, f"{_title(results)} (epoch {epoch})")
    return fig


def bound_curve(p: PanelResults, epsilons: np.ndarray) -> dict[str, np.ndarray]:
    """Theorem 3.3's bound averaged over layers, at the configured μ and at the final μ_t.

    m_l is read back from the records' ``bound`` field (``m_l·B·log(2/ε)/(2μ_tλ)``), so
    this needs no model. Returns ``{"initial": ..., "final": ...}`` over ``epsilons``.
    """
    eps_cfg = p.config.get("rank", {}).get("epsilons", [])
    last = p.member_records()[min(m["id"] for m in p.members)]
    last = [r for r in last if r.get("bound")][-1]
    lam, batch = last["weight_decay"], last["batch_size"]
    k = next(i for i, e in enumerate(eps_cfg) if e < 0.5)
    if lam == 0:
        inf = np.full_like(epsilons, np.inf, dtype=float)
        return {"initial": inf, "final": inf}
    m_l = [
        figures._number(v[k]) * 2 * last["lr_now"] * lam / (batch * math.log(2 / eps_cfg[k]))
        for v in last["bound"].values()
    ]
    per_eps = np.log(2 / epsilons) * batch / (2 * lam)
    m = float(np.mean(m_l))
    return {
        "initial": m * per_eps / last["learning_rate"],
        "final": m * per_eps / last["lr_now"],
    }


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
    for e, c in zip(eps_cfg, _colors(len(eps_cfg), "plasma"), strict=True):
        for s in figures.series(p, f"avg_rank@{e:g}", vary=("batch_size",)):
            _band(ax_r, s, c, f"ε={e:g}")
    ax_r.set_xlabel("epoch")
    ax_r.set_ylabel("average rank")
    ax_r.legend(fontsize=7)
    ax_r.grid(alpha=0.3)
    ax_r.set_title("average rank during training", fontsize=9)
    for split, style in (("train_accuracy", "-"), ("test_accuracy", "--")):
        for s in figures.series(p, split, vary=("batch_size",)):
            _band(ax_a, s, "C0", split.replace("_", " "), style)
    ax_a.set_xlabel("epoch")
    ax_a.set_ylabel("accuracy")
    ax_a.legend(fontsize=7)
    ax_a.grid(alpha=0.3)
    ax_a.set_title("train and test accuracy", fontsize=9)
    _suptitle(fig, _title(results))
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
    for lam, c in zip(lams, _colors(len(lams)), strict=True):
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
    for lam, c in zip(lams, _colors(len(lams)), strict=True):
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
    _suptitle(fig, title or "Compression by truncated SVD (dotted: uncompressed)")
    return fig


def figure_for(results: FigureResults, measure: str = "epsilon") -> Figure:
    """The figure of a results folder's kind; ``measure``: the rank of curves and heat maps.

    Raises:
      ValueError: an unknown kind or measure, or a measure other than ``"epsilon"`` for a
        kind that plots no average rank.
    """
    kind = results.kind
    if not results.panels:
        raise FileNotFoundError(f"plots: no panel of {results.folder} has results yet.")
    if kind == "curves":
        return plot_curves(results, measure=measure)
    if kind == "heatmap":
        return plot_heatmaps(results, measure=measure)
    if measure != "epsilon":
        raise ValueError(
            f"plots: a {kind!r} figure plots no average rank, so measure={measure!r} does "
            "not apply; draw it with the default measure 'epsilon'."
        )
    if kind == "norm_ratios":
        return plot_norm_ratios(results)
    if kind == "spectra":
        return plot_spectra(results)
    if kind == "bound":
        return plot_bound(results)
    raise ValueError(f"plots: unknown figure kind {kind!r}; one of {figures.KINDS}.")


def draw(
    folder: str | Path,
    out: str | Path | None = None,
    *,
    dpi: int = 90,
    measure: str = "epsilon",
) -> Path:
    """Draws the figure of a results folder into a PNG.

    Args:
      folder: a figure's results folder (``figure.json`` + panel folders) or a plain sweep
        results folder (drawn as one ``curves`` panel).
      out: the PNG path; default ``folder/figNN.png`` (``folder/figure.png`` without a
        figure number), with ``_{measure}`` before ``.png`` for a measure other than
        ``"epsilon"``.
      dpi: resolution (90 keeps committed PNGs small; see :func:`save_png`).
      measure: the rank measure of curves and heat maps (:data:`RANK_MEASURES`).

    Returns:
      The path written.
    """
    rank_measure(measure, 0.0)  # an unknown measure fails before the results are read
    results = figures.load_results(folder)
    if out is None:
        number = results.figure.get("number")
        stem = f"fig{number:02d}" if number else "figure"
        out = Path(folder) / (f"{stem}.png" if measure == "epsilon" else f"{stem}_{measure}.png")
    save_png(figure_for(results, measure), out, dpi=dpi)
    return Path(out)


def save_png(fig: Figure, path: str | Path, *, dpi: int = 90) -> None:
    """Saves a figure as a small 8-bit palette PNG (about a third of the RGBA size)."""
    import io as _io

    from PIL import Image

    buffer = _io.BytesIO()
    fig.savefig(buffer, dpi=dpi, format="png")
    buffer.seek(0)
    with Image.open(buffer) as im:
        small = im.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    small.save(path, optimize=True)
