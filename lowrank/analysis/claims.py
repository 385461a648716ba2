"""Does a figure show Prediction 4.1 on the ε-rank? Row by row, by one stated criterion.

A *claim row* is a trend of :func:`lowrank.analysis.trends.trends` with a predicted sign
(λ always; μ and B where λ > 0). It is **shown** when

* every seed of the row ran to the end at every value of the row (none diverged),
* every seed's ρ has the predicted sign,
* the mean final rank moves by at least ``min_change`` (5 %) of its largest value across
  the row, and
* the setting with the lowest mean rank still reaches a mean test accuracy of at least
  ``min_accuracy`` (0.3: 3× chance with 10 classes) — a network that stopped learning
  has not shown the paper's mechanism.

Rows without decay (λ = 0: the prediction is "B and μ barely matter") are *controls*:
their change is reported beside the claims.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from lowrank.analysis.trends import Trend, final_table, trends
from lowrank.results import SYMBOLS, FigureResults


@dataclasses.dataclass(frozen=True)
class ClaimRow:
    """One trend judged by the criterion (see the module docstring)."""

    trend: Trend
    change: float  # (max − min) / max of the mean final rank across the row
    lowest_accuracy: float  # mean test accuracy at the row's lowest-rank value
    horizons: tuple[float, ...]  # mean final forgetting horizon h at each value of the row
    all_seeds: bool
    signs: bool
    shown: bool
    why: str  # what failed, or "" when shown


def _matches(row: dict[str, Any], trend: Trend, value: float) -> bool:
    return row[trend.hparam] == value and all(row[k] == v for k, v in trend.fixed.items())


def judge(
    trend: Trend,
    ranks: list[dict[str, Any]],
    accuracies: list[dict[str, Any]],
    horizons: list[dict[str, Any]] = (),
    *,
    min_change: float = 0.05,
    min_accuracy: float = 0.3,
) -> ClaimRow:
    """Judges one trend from the figure's final-rank and final-accuracy rows."""
    # The row's own seeds (a panel may run fewer seeds than the figure).
    seeds = {r["seed"] for r in ranks if all(r[k] == v for k, v in trend.fixed.items())}
    mean = np.asarray(trend.mean_rank, float)
    change = float((np.nanmax(mean) - np.nanmin(mean)) / np.nanmax(mean)) if mean.size else 0.0
    all_seeds = all(
        {r["seed"] for r in ranks if _matches(r, trend, v) and math.isfinite(r["value"])} == seeds
        for v in trend.values
    )
    lowest = trend.values[int(np.nanargmin(mean))]
    accs = [r["value"] for r in accuracies if _matches(r, trend, lowest)]
    accs = [a for a in accs if math.isfinite(a)]  # of the seeds that did not diverge
    accuracy = float(np.mean(accs)) if accs else math.nan
    signs = len(trend.rhos) == len(seeds) and all(
        math.isfinite(rho) and np.sign(rho) == trend.predicted for rho in trend.rhos
    )
    undefined = any(not math.isfinite(rho) for rho in trend.rhos)
    fails = [
        (not all_seeds, "a seed diverged"),
        (not signs and undefined, "ρ undefined in a seed (its rank did not vary)"),
        (not signs and not undefined, "a seed's ρ has the wrong sign"),
        (change < min_change, f"rank moves {100 * change:.1f}% < {100 * min_change:g}%"),
        (not accuracy >= min_accuracy, f"test accuracy {accuracy:.2f} < {min_accuracy:g}"),
    ]
    why = "; ".join(text for failed, text in fails if failed)
    h = tuple(
        float(np.mean(hs))
        if (
            hs := [
                r["value"] for r in horizons if _matches(r, trend, v) and math.isfinite(r["value"])
            ]
        )
        else math.nan
        for v in trend.values
    )  # fmt: skip  (a diverged member's h is its schedule's: the others' mean)
    return ClaimRow(trend, change, accuracy, h, all_seeds, signs, not why, why)


def claim_rows(results: FigureResults, key: str | None = None, **criterion: float):
    """(claims, controls): every claim row and every λ = 0 row of the figure, judged."""
    key = key or f"avg_rank@{results.epsilon:g}"
    ranks = final_table(results, key)
    accuracies = final_table(results, "test_accuracy")
    horizons = final_table(results, "horizon")
    judged = [judge(t, ranks, accuracies, horizons, **criterion) for t in trends(results, key)]
    claims = [j for j in judged if j.trend.predicted in (-1, 1)]
    controls = [j for j in judged if j.trend.predicted == 0]
    return claims, controls


def claims_table(claims: list[ClaimRow], controls: list[ClaimRow]) -> str:
    """The rows as text: the count first, then one line per row."""
    shown = sum(c.shown for c in claims)
    lines = [f"Claim rows shown: {shown} of {len(claims)}"]
    header = (
        f"{'varied':>6}  {'fixed':<20} {'change':>7} {'acc@lowest':>10}  {'verdict':<44}  "
        "h (low → high value)"
    )
    lines += [header, "-" * len(header)]
    for c in claims + controls:
        fixed = " ".join(f"{SYMBOLS.get(k, k)}={v:g}" if isinstance(v, float | int) else
                         f"{k}={v}" for k, v in c.trend.fixed.items())  # fmt: skip
        verdict = "control (λ = 0)" if c in controls else ("shown" if c.shown else c.why)
        h = " → ".join(f"{x:.3g}" for x in c.horizons)
        lines.append(
            f"{SYMBOLS.get(c.trend.hparam, c.trend.hparam):>6}  {fixed:<20} "
            f"{100 * c.change:6.1f}% {c.lowest_accuracy:10.2f}  {verdict:<44}  {h}"
        )
    return "\n".join(lines)
