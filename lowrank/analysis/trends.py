"""Prediction 4.1 measured on results: Spearman trends of the final rank (or any metric)
against each hyperparameter, per seed, the others held fixed; decay ratios (a run's final
value over the same run's at λ = 0), which separate what weight decay does from what
training does alone; and their tables."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from lowrank import io
from lowrank.analysis.series import nanstat
from lowrank.results import HPARAMS, SYMBOLS, FigureResults

# Prediction 4.1: the sign of the correlation between a hyperparameter and the rank.
# What else tells panels apart (held fixed within a trend, shown where it varies).
CONTEXT = ("dataset", "optimizer", "budget")
PREDICTED_SIGN = {"learning_rate": -1, "weight_decay": -1, "batch_size": +1}


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation (ties get average ranks); nan if either is constant."""
    from scipy.stats import rankdata

    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) < 2:
        return math.nan
    rx, ry = rankdata(x), rankdata(y)
    if np.ptp(rx) == 0 or np.ptp(ry) == 0:
        return math.nan
    return float(np.corrcoef(rx, ry)[0, 1])


@dataclasses.dataclass(frozen=True)
class Trend:
    """Spearman correlation of one hyperparameter with the final rank, others held fixed.

    Attributes:
      hparam: the varied member field.
      fixed: the other fields' values (only those that vary somewhere in the figure) and
        the dataset, where it varies.
      values: the distinct values of ``hparam``, increasing.
      mean_rank: the final rank at each value, mean over seeds.
      rhos: one Spearman ρ per seed (nan where the rank did not vary).
      pooled: ρ over all (value, rank) pairs of all seeds.
      predicted: Prediction 4.1's sign (−1, +1), 0 for "small effect" (λ = 0), None: none.
    """

    hparam: str
    fixed: dict[str, Any]
    values: tuple[float, ...]
    mean_rank: tuple[float, ...]
    rhos: tuple[float, ...]
    pooled: float
    predicted: int | None

    @property
    def rho_mean(self) -> float:
        return nanstat(np.nanmean, np.asarray(self.rhos, float))

    @property
    def rho_std(self) -> float:
        return nanstat(np.nanstd, np.asarray(self.rhos, float))

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.update(rho_mean=self.rho_mean, rho_std=self.rho_std)
        return d


def final_table(results: FigureResults, key: str) -> list[dict[str, Any]]:
    """One row per member of every panel: its hyperparameters, dataset and final ``key``."""
    rows = []
    for p in results.panels:
        finals = p.final(key)
        for mid, value in finals.items():
            m = p.member(mid)
            row = {h: m[h] for h in HPARAMS}
            rows.append({**row, "seed": m["seed"], "dataset": p.dataset(),
                         "optimizer": p.optimizer(), "budget": p.budget(),
                         "value": value})  # fmt: skip
    return rows


def _group_order(item: tuple[tuple, Any]) -> tuple:
    """Numbers in numeric order, everything else by its text."""
    return tuple((0, v, "") if isinstance(v, (int, float)) else (1, 0, str(v)) for v in item[0])


def trends(results: FigureResults, key: str | None = None, min_values: int = 3) -> list[Trend]:
    """Prediction 4.1 measured: for each hyperparameter, ρ(value, final rank) per seed.

    Members of all panels are pooled; for each hyperparameter h with at least
    ``min_values`` values, members are grouped by every other hyperparameter (and the
    dataset), and within each group one Spearman ρ between h and the final ``key`` is
    computed per seed.

    Args:
      results: a figure's results.
      key: the metric; default ``avg_rank@ε`` with the figure's ε.
      min_values: fewest distinct values of h for a trend.
    """
    key = key or f"avg_rank@{results.epsilon:g}"
    return trends_of_rows(final_table(results, key), min_values)


def decay_ratio_table(results: FigureResults, key: str) -> list[dict[str, Any]]:
    """Each decayed member's final ``key`` divided by that of its run without decay.

    The control of a member with λ > 0 is the member with λ = 0 and the same seed, μ, β,
    B and dataset (from any panel); members without a control are left out. The ratio is
    the part of the change that weight decay adds to what training alone does, which is
    what Prediction 4.1's B and μ claims are about: measures like the stable rank also
    fall with smaller B or larger μ without decay.

    Returns:
      Rows as :func:`final_table`'s, ``value`` being the ratio (nan where the control's
      value is 0 or not finite); empty when the figure has no λ = 0 member.
    """
    rows = final_table(results, key)
    others = ("seed", *CONTEXT, *(h for h in HPARAMS if h != "weight_decay"))
    controls = {tuple(r[k] for k in others): r["value"] for r in rows if r["weight_decay"] == 0}
    out = []
    for r in rows:
        base = controls.get(tuple(r[k] for k in others))
        if r["weight_decay"] == 0 or base is None:
            continue
        ok = math.isfinite(base) and base != 0 and math.isfinite(r["value"])
        out.append({**r, "value": r["value"] / base if ok else math.nan})
    return out


def decay_trends(results: FigureResults, key: str, min_values: int = 3) -> list[Trend]:
    """Trends of the decay ratio: ρ(value, final ``key`` / its λ = 0 control's) per seed.

    As :func:`trends`, on :func:`decay_ratio_table`'s rows (members with λ > 0 that have a
    control). Prediction 4.1's signs carry over: decay should lower the ratio more at
    larger λ, larger μ and smaller B.
    """
    return trends_of_rows(decay_ratio_table(results, key), min_values)


@dataclasses.dataclass(frozen=True)
class Group:
    """The rows of one trend: ``hparam`` varies, every other field is ``held``."""

    hparam: str
    held: dict[str, Any]
    rows: list[dict[str, Any]]

    @property
    def predicted(self) -> int | None:
        """Prediction 4.1's sign: λ always; B and μ where λ > 0 ("≈ 0", 0, without decay)."""
        if self.hparam == "weight_decay":
            return PREDICTED_SIGN[self.hparam]
        if self.hparam in PREDICTED_SIGN:
            return 0 if self.held["weight_decay"] == 0 else PREDICTED_SIGN[self.hparam]
        return None


def groups_of_rows(rows: Sequence[dict[str, Any]], min_values: int = 3) -> list[Group]:
    """For each hyperparameter with at least ``min_values`` values in a group, the groups
    of rows that hold every other hyperparameter (and the context) fixed."""
    out = []
    for h in HPARAMS:
        others = [k for k in (*HPARAMS, *CONTEXT) if k != h]
        groups: dict[tuple, list[dict[str, Any]]] = {}
        for r in rows:
            groups.setdefault(tuple(r[k] for k in others), []).append(r)
        for gkey, members in sorted(groups.items(), key=_group_order):
            if len({r[h] for r in members}) >= min_values:
                out.append(Group(h, dict(zip(others, gkey, strict=True)), members))
    return out


def trends_of_rows(rows: Sequence[dict[str, Any]], min_values: int = 3) -> list[Trend]:
    """The trends of :func:`trends` from rows of :func:`final_table`'s form."""
    if not rows:
        return []
    context = [h for h in (*HPARAMS, *CONTEXT) if len({r[h] for r in rows}) > 1]
    out = []
    for g in groups_of_rows(rows, min_values):
        h, members = g.hparam, g.rows
        values = sorted({r[h] for r in members})
        seeds = sorted({r["seed"] for r in members})
        rhos = []
        for s in seeds:
            mine = [r for r in members if r["seed"] == s]
            rhos.append(spearman([r[h] for r in mine], [r["value"] for r in mine]))
        mean_rank = tuple(
            nanstat(np.nanmean, np.asarray([r["value"] for r in members if r[h] == v]))
            for v in values
        )
        out.append(
            Trend(
                hparam=h,
                fixed={k: v for k, v in g.held.items() if k in context},
                values=tuple(float(v) for v in values),
                mean_rank=mean_rank,
                rhos=tuple(rhos),
                pooled=spearman([r[h] for r in members], [r["value"] for r in members]),
                predicted=g.predicted,
            )
        )
    return out


def _fmt(x: float, spec: str = ".2f") -> str:
    return "nan" if not math.isfinite(x) else format(x, spec)


def trend_table(
    trend_list: Sequence[Trend], value_name: str = "final rank", value_format: str = ".1f"
) -> str:
    """A text table of trends: ρ mean ± std over seeds, its range, pooled ρ, rank range.

    ``seeds`` reads ``k/n`` when only k of the n seeds have a ρ (the others' ranks did not
    vary, so ρ is undefined); the mean, spread and range are over those k. ``value_name``
    and ``value_format`` head and format the column of mean values (e.g. "decay ratio",
    ".2f" for :func:`decay_trends`).
    """
    header = ["varied", "fixed", "values", "seeds", "rho mean ± std", "rho min..max",
              "pooled rho", f"{value_name} (low → high value)", "predicted"]  # fmt: skip
    rows = []
    for t in trend_list:
        finite = [r for r in t.rhos if math.isfinite(r)]
        rng = f"{min(finite):+.2f}..{max(finite):+.2f}" if finite else "nan"
        fixed = ", ".join(
            f"{SYMBOLS.get(k, k)}={v:g}" if isinstance(v, (int, float)) else f"{v}"
            for k, v in t.fixed.items()
        )
        predicted = {-1: "negative", 1: "positive", 0: "≈ 0 (λ = 0)", None: "-"}[t.predicted]
        ranks = " → ".join(_fmt(v, value_format) for v in t.mean_rank)
        rows.append(
            [
                SYMBOLS.get(t.hparam, t.hparam),
                fixed or "-",
                " ".join(f"{v:g}" for v in t.values),
                len(t.rhos) if len(finite) == len(t.rhos) else f"{len(finite)}/{len(t.rhos)}",
                f"{_fmt(t.rho_mean, '+.2f')} ± {_fmt(t.rho_std)}",
                rng,
                _fmt(t.pooled, "+.2f"),
                ranks,
                predicted,
            ]
        )
    return io.format_table(header, rows) if rows else "(no hyperparameter takes 3 values)"
