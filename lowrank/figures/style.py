"""Shared pieces of the figures: colours, mean ± std bands, titles, layer order, PNGs."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from lowrank.analysis.series import Series
from lowrank.results import FigureResults

CMAP = "viridis"
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


def colors(n: int, cmap: str = CMAP) -> list[Any]:
    import matplotlib

    cm = matplotlib.colormaps[cmap]
    return [cm(x) for x in (np.linspace(0.0, 0.9, n) if n > 1 else [0.0])]


def band(ax: Axes, s: Series, color: Any, label: str | None, style: str = "-") -> None:
    """A mean line with ± std shaded (over seeds); epochs on an integer axis."""
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.plot(s.epochs, s.mean, style, color=color, label=label, lw=1.4)
    if s.seeds > 1 and np.isfinite(s.std).any():
        ax.fill_between(s.epochs, s.mean - s.std, s.mean + s.std, color=color, alpha=0.2, lw=0)


def title_of(results: FigureResults) -> str:
    f = results.figure
    number = f"Fig. {f['number']}" if f.get("number") else ""
    scale = f"{f['scale']} scale" if f.get("scale") else ""
    head = f"{number} ({scale})" if number and scale else number or scale.capitalize()
    return f"{head}: {f.get('title', '')}".strip(": ")


def suptitle(fig: Figure, text: str) -> None:
    """The figure's title, wrapped to its width (about 12 characters per inch at 10 pt)."""
    import textwrap

    width = max(30, int(fig.get_figwidth() * 12))
    fig.suptitle("\n".join(textwrap.wrap(text, width)), fontsize=10)


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
