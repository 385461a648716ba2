"""When each layer's ε-rank falls, against the earliest horizon forgetting alone allows.

A direction of W that the gradients stop feeding shrinks by exactly ``e^{−h}`` (h =
2λΣμ_t, ``lowrank.theory.horizon``). The ε-rank counts singular values above ε·σ_max(t),
and σ_max(t) moves too: training grows it by a factor ``e^{g}``. So the k-th smallest
singular value counted at initialization, ``σ_k(0)``, can leave the count by forgetting no
earlier than

    h* = ln(1/ε) + ln(σ_k(0)/σ_max(0)) − g,        g = ln(σ_max(t)/σ_max(0)),

which is below ln(1/ε) where σ_max grew or the initial spectrum is spread. For a layer
whose ε-rank falls by ``d`` (a fraction of its initial count, at least one), this module
finds the first saved epoch where it has, and that epoch's h*, with ``σ_k(0)`` the d-th
smallest counted value: a fall before h* is not forgetting (gradient noise can push a value
lying near the threshold across it; λ = 0 runs show how much). The check needs spectra
saved often (``rank.spectra_every``): a fall is placed between two saved epochs.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping

import numpy as np


@dataclasses.dataclass(frozen=True)
class LayerFall:
    """One layer's fall of its ε-rank by ``drop`` (``epoch`` None: it never fell so far)."""

    path: str
    initial_rank: int
    drop: int
    final_rank: int
    epoch: int | None = None  # first saved epoch with rank ≤ initial_rank − drop
    horizon_before: float | None = None  # h at the saved epoch before it
    horizon: float | None = None  # h at that epoch
    growth: float | None = None  # g = ln(σ_max(t)/σ_max(0)) at that epoch
    spread: float | None = None  # ln(σ_k(0)/σ_max(0)) of the d-th smallest counted value
    earliest: float | None = None  # h*, the earliest horizon forgetting alone allows

    @property
    def before_forgetting_allows(self) -> bool:
        """True where the fall was seen at an epoch whose h is below that epoch's h*."""
        return self.epoch is not None and self.horizon < self.earliest


def eps_rank(sv: np.ndarray, epsilon: float) -> int:
    """The paper's ε-rank of one matrix from its descending singular values."""
    return int(np.sum(sv > epsilon * sv[0])) if sv.size and sv[0] > 0 else 0


def layer_falls(
    spectra: Mapping[int, Mapping[str, np.ndarray]],
    horizons: Mapping[int, float],
    epsilon: float = 1e-3,
    fraction: float = 0.05,
) -> list[LayerFall]:
    """Each layer's first fall by ``max(1, ⌈fraction·initial rank⌉)``, beside its h*.

    Args:
      spectra: one member's ``{epoch: {path: σ (descending)}}``, epoch 0 included.
      horizons: the member's ``{epoch: h}`` (every saved epoch of ``spectra``).
      epsilon: the ε of the ε-rank.
      fraction: how large a fall counts, as a fraction of the layer's initial ε-rank.

    Raises:
      ValueError: no spectra at epoch 0, or a saved epoch without a horizon.
    """
    if 0 not in spectra:
        raise ValueError(
            "layer_falls: no singular values saved at epoch 0; the initial spectrum is the "
            "reference (a run saves it when rank.spectra_every > 0)."
        )
    missing = sorted(set(spectra) - set(horizons))
    if missing:
        raise ValueError(
            f"layer_falls: no horizon recorded at saved epochs {missing[:5]}; set "
            "rank.every to divide rank.spectra_every, so every saved epoch has a record."
        )
    epochs = sorted(spectra)
    out = []
    for path, s0 in spectra[0].items():
        r0 = eps_rank(s0, epsilon)
        drop = max(1, math.ceil(fraction * r0))
        final = eps_rank(spectra[epochs[-1]][path], epsilon)
        fall = LayerFall(path, r0, drop, final)
        for before, e in itertools.pairwise(epochs):
            sv = spectra[e][path]
            if r0 >= drop and eps_rank(sv, epsilon) <= r0 - drop:
                growth = math.log(sv[0] / s0[0])
                spread = math.log(s0[r0 - drop] / s0[0])
                fall = dataclasses.replace(
                    fall,
                    epoch=e,
                    horizon_before=horizons[before],
                    horizon=horizons[e],
                    growth=growth,
                    spread=spread,
                    earliest=math.log(1 / epsilon) + spread - growth,
                )
                break
        out.append(fall)
    return out


def table(falls: list[LayerFall]) -> str:
    """The falls as a Markdown table, and how many came before forgetting allows them."""
    lines = [
        "| layer | initial ε-rank | fall | seen at h | earliest h by forgetting (h*) "
        "| ln σ_max growth | final ε-rank |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in falls:
        if f.epoch is None:
            seen = earliest = growth = "—"
        else:
            mark = " **before h***" if f.before_forgetting_allows else ""
            seen = f"{f.horizon_before:.2f}–{f.horizon:.2f}{mark}"
            earliest, growth = f"{f.earliest:.2f}", f"{f.growth:+.2f}"
        lines.append(
            f"| {f.path} | {f.initial_rank} | −{f.drop} | {seen} | {earliest} | {growth} "
            f"| {f.final_rank} |"
        )
    fell = [f for f in falls if f.epoch is not None]
    early = sum(f.before_forgetting_allows for f in fell)
    lines += ["", f"{len(fell)} of {len(falls)} layers fell; {early} of them before h*."]
    return "\n".join(lines)
