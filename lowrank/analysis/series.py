"""Per-epoch curves of a results panel: mean ± std over the seeds of each setting."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from lowrank.results import PanelResults, number


@dataclasses.dataclass(frozen=True)
class Series:
    """One line of a figure: a key against epoch (or step), mean and spread over seeds."""

    setting: tuple[Any, ...]  # the values of the varied fields
    epochs: np.ndarray  # the x values: epochs, or SGD steps with x="step"
    mean: np.ndarray
    std: np.ndarray
    seeds: int


def series(
    panel_: PanelResults, key: str, vary: Sequence[str] | None = None, x: str = "epoch"
) -> list[Series]:
    """``key`` against ``x`` (the record's "epoch" or "step"), one line per setting of
    ``vary``, mean ± std over members.

    Members with the same values of ``vary`` (normally: different seeds) are averaged;
    NaN values (diverged members) are left out of the mean.
    """
    vary = tuple(vary or panel_.vary)
    by_setting: dict[tuple, dict[int, list[float]]] = {}
    for r in panel_.records:
        if key not in r:
            continue
        setting = tuple(r[h] for h in vary)
        by_setting.setdefault(setting, {}).setdefault(r[x], []).append(number(r[key]))
    out = []
    for setting in sorted(by_setting):
        per_epoch = by_setting[setting]
        epochs = np.asarray(sorted(per_epoch))
        values = [np.asarray(per_epoch[e], float) for e in epochs]
        out.append(
            Series(
                setting=setting,
                epochs=epochs,
                mean=np.asarray([nanstat(np.nanmean, v) for v in values]),
                std=np.asarray([nanstat(np.nanstd, v) for v in values]),
                seeds=max(len(v) for v in values),
            )
        )
    return out


def nanstat(fn: Any, values: np.ndarray) -> float:
    return float(fn(values)) if np.isfinite(values).any() else math.nan
