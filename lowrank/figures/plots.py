"""Figures from a results folder, laid out as in the paper; nothing is retrained.

:func:`draw` reads a figure's results folder (or a plain sweep results folder) with
:func:`lowrank.results.load_results` and draws, by ``figure.kind``:

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
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from lowrank.analysis.series import series
from lowrank.figures.layer_plots import plot_bound, plot_norm_ratios, plot_spectra
from lowrank.figures.spec import KINDS
from lowrank.figures.style import (
    CMAP,
    band,
    colors,
    rank_measure,
    save_png,
    suptitle,
    title_of,
)
from lowrank.results import SYMBOLS, FigureResults, PanelResults, load_results, setting_label


def plot_curves(
    results: FigureResults, epsilon: float | None = None, measure: str = "epsilon"
) -> Figure:
    """Average rank (top row) and train/test accuracy (bottom row), one column per panel;
    where the runs recorded representation ranks (``rank.probe_size``), a middle row of
    the same measure on the layers' outputs.

    ``measure`` picks the rank of the top row (:data:`RANK_MEASURES`; the ε-rank at
    ``epsilon``, default the figure's ε).
    """
    eps = results.epsilon if epsilon is None else epsilon
    key, label = rank_measure(measure, eps, axis=True)
    n = len(results.panels)
    features = any(f"repr_{key}" in r for p in results.panels for r in p.records)
    rows = 3 if features else 2
    fig = Figure(figsize=(3.4 * n + 0.6, 2.8 * rows), layout="constrained")
    axes = fig.subplots(rows, n, squeeze=False, sharex="col")
    for j, p in enumerate(results.panels):
        # Under train.budget="steps" the batch sizes run different epochs: plot steps.
        x = "step" if p.budget() == "steps" else "epoch"
        ranks = series(p, key, x=x)
        line_colors = colors(len(ranks))
        top, bottom = axes[0, j], axes[-1, j]
        for s, c in zip(ranks, line_colors, strict=True):
            band(top, s, c, setting_label(p.vary, s.setting))
        if features:  # the layers' outputs on the probe batch, same measure and colours
            for s, c in zip(series(p, f"repr_{key}", x=x), line_colors, strict=False):
                band(axes[1, j], s, c, None)
            axes[1, j].set_ylabel(f"{label}\nof layer outputs" if j == 0 else "")
        for split, style in (("train_accuracy", "-"), ("test_accuracy", "--")):
            for s, c in zip(series(p, split, x=x), line_colors, strict=False):
                band(bottom, s, c, None, style)
        top.set_title(p.label, fontsize=10)
        top.set_ylabel(label if j == 0 else "")
        bottom.set_ylabel("accuracy (train —, test - -)" if j == 0 else "")
        bottom.set_xlabel("SGD steps" if x == "step" else "epoch")
        top.legend(fontsize=7, loc="best")
        for ax in axes[:, j]:
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=8)
    suptitle(fig, title_of(results))
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
    grids = [_final_grid(p, key) for p in results.panels]
    # One colour scale for every panel: the maps share cells (Fig. 1's (a) and (d) hold the
    # same B = 8, λ = 6e-3 row), and a map whose cells are all equal must not look mid-scale.
    finite = np.concatenate([g[2][np.isfinite(g[2])] for g in grids])
    vmin, vmax = (finite.min(), finite.max()) if finite.size else (None, None)
    # One decimal below 100 (a whole number hides a 13.4 → 11.9 fall), whole numbers above.
    digits = 1 if finite.size and np.abs(finite).max() < 100 else 0
    for ax, p, (xs, ys, mean, std) in zip(axes, results.panels, grids, strict=True):
        hx, hy = p.vary
        im = ax.imshow(mean, origin="lower", cmap=CMAP, aspect="auto", vmin=vmin, vmax=vmax)
        ax.set_xticks(range(len(xs)), [f"{x:g}" for x in xs], fontsize=7)
        ax.set_yticks(range(len(ys)), [f"{y:g}" for y in ys], fontsize=7)
        ax.set_xlabel(SYMBOLS[hx])
        ax.set_ylabel(SYMBOLS[hy])
        for (i, k), v in np.ndenumerate(mean):
            if math.isfinite(v):
                text = (
                    f"{v:.{digits}f}"
                    if not math.isfinite(std[i, k]) or std[i, k] < 0.5 * 10**-digits
                    else (f"{v:.{digits}f}\n±{std[i, k]:.{digits}f}")
                )
                bright = im.norm(v) > 0.6  # the colour map's light end: dark text
                colour = "k" if bright else "w"
                ax.text(k, i, text, ha="center", va="center", fontsize=6, color=colour)
        ax.set_title(p.label, fontsize=10)
        fig.colorbar(im, ax=ax, shrink=0.8, label=f"final {label}")
    suptitle(fig, title_of(results))
    return fig


def plot_rank_vs_horizon(results: FigureResults, measure: str = "epsilon") -> Figure:
    """Every member's average rank (top) and test accuracy (bottom) against its forgetting
    horizon h = 2λΣμ_t (``lowrank.theory.horizon``), one column per panel, coloured by the
    panel's first varied hyperparameter; the dotted line is h = ln(1/ε).

    If the paper's mechanism is the whole story, the members of a panel (fixed B) fall
    onto one curve whatever their μ and λ; B shifts it (Lemma 3.1's B·m_l). λ = 0 members
    stay at h = 0 (the symmetric-log axis shows them).
    """
    if not any("horizon" in r for p in results.panels for r in p.records):
        raise ValueError(
            f"plots: the records in {results.folder} have no 'horizon' (they predate it); "
            "rerun the sweep to get it."
        )
    eps = results.epsilon
    key, label = rank_measure(measure, eps, axis=True)
    n = len(results.panels)
    fig = Figure(figsize=(3.6 * n + 0.6, 5.6), layout="constrained")
    axes = fig.subplots(2, n, squeeze=False, sharex="col")
    for j, p in enumerate(results.panels):
        hue = p.vary[0]
        values = sorted({r[hue] for r in p.records})
        shade = dict(zip(values, colors(len(values)), strict=True))
        labelled: set = set()
        for rs in p.member_records().values():
            rs = [r for r in rs if "horizon" in r and key in r and not r.get("diverged")]
            if not rs:
                continue
            v = rs[0][hue]
            name = None if v in labelled else setting_label((hue,), (v,))
            labelled.add(v)
            h = [r["horizon"] for r in rs]
            axes[0, j].plot(h, [r[key] for r in rs], "-o", ms=2, lw=1, color=shade[v], label=name)
            acc = [r.get("test_accuracy", math.nan) for r in rs]
            axes[1, j].plot(h, acc, "-o", ms=2, lw=1, color=shade[v])
        for ax in axes[:, j]:
            ax.set_xscale("symlog", linthresh=0.1)
            ax.axvline(math.log(1 / eps), color="k", ls=":", lw=1)
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=8)
        axes[0, j].set_title(p.label, fontsize=10)
        axes[0, j].set_ylabel(label if j == 0 else "")
        axes[1, j].set_ylabel("test accuracy" if j == 0 else "")
        axes[1, j].set_xlabel("forgetting horizon h = 2λΣμ_t")
        axes[0, j].legend(fontsize=7, loc="best")
    suptitle(fig, f"{title_of(results)}: rank against the forgetting horizon (dotted: h = ln 1/ε)")
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
    raise ValueError(f"plots: unknown figure kind {kind!r}; one of {KINDS}.")


def draw(
    folder: str | Path,
    out: str | Path | None = None,
    *,
    dpi: int = 90,
    measure: str = "epsilon",
    against: str = "epoch",
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
      against: ``"epoch"`` (the figure of the folder's kind) or ``"horizon"``
        (:func:`plot_rank_vs_horizon`, any folder; ``_horizon`` before ``.png``).

    Returns:
      The path written.
    """
    rank_measure(measure, 0.0)  # an unknown measure fails before the results are read
    if against not in ("epoch", "horizon"):
        raise ValueError(f"plots: against={against!r}; use 'epoch' or 'horizon'.")
    results = load_results(folder)
    if out is None:
        number = results.figure.get("number")
        stem = f"fig{number:02d}" if number else "figure"
        suffix = "" if measure == "epsilon" else f"_{measure}"
        suffix += "_horizon" if against == "horizon" else ""
        out = Path(folder) / f"{stem}{suffix}.png"
    if against == "horizon":
        if not results.panels:
            raise FileNotFoundError(f"plots: no panel of {folder} has results yet.")
        fig = plot_rank_vs_horizon(results, measure)
    else:
        fig = figure_for(results, measure)
    save_png(fig, out, dpi=dpi)
    return Path(out)
