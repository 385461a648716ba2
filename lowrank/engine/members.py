"""The members of a sweep, its compile groups, and which members a group still runs.

Members are the Cartesian product of ``config.sweep``'s lists; each batch size is a compile
group. A group's device state holds one *row* per running member, padded with copies of
the first running member to a multiple of the device count: :class:`Roster` is that one
map (rows → members), with the diverged members beside it.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import ml_collections


@dataclasses.dataclass(frozen=True)
class Member:
    """One training run of the sweep."""

    id: int
    group: int
    seed: int
    learning_rate: float
    weight_decay: float
    momentum: float
    batch_size: int

    def hparams(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "learning_rate": self.learning_rate,
            "weight_decay": self.weight_decay,
            "momentum": self.momentum,
            "batch_size": self.batch_size,
        }


def members(config: ml_collections.ConfigDict) -> list[Member]:
    """All members, grouped by batch size (the compile groups), in grid order."""
    s = config.sweep
    out: list[Member] = []
    for g, b in enumerate(s.batch_sizes):
        for seed, mu, lam, beta in itertools.product(
            s.seeds, s.learning_rates, s.weight_decays, s.momenta
        ):
            out.append(Member(len(out), g, int(seed), float(mu), float(lam), float(beta), int(b)))
    return out


@dataclasses.dataclass
class Roster:
    """Which of a group's members its device state holds, row by row.

    ``rows[r]`` is the position (in ``members``) of the member in row ``r``; rows after
    the running members repeat the first one (padding to ``n_devices``), and never reach
    the results. ``diverged`` maps member ids to the reason they stopped.
    """

    members: list[Member]
    n_devices: int
    rows: list[int] = dataclasses.field(default_factory=list)
    diverged: dict[int, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.rows:
            self.rows = self._padded(self.running())

    def running(self) -> list[int]:
        """Positions of the members not diverged, in grid order."""
        return [i for i, m in enumerate(self.members) if m.id not in self.diverged]

    def _padded(self, positions: list[int]) -> list[int]:
        return positions + [positions[0]] * (-len(positions) % self.n_devices) if positions else []

    def row_of(self, position: int) -> int:
        """The (first) row of the member at ``position``."""
        return self.rows.index(position)

    def drop(self, reasons: dict[int, str]) -> list[int]:
        """Marks members (by id) diverged; returns the rows the state keeps, in new order."""
        self.diverged.update(reasons)
        kept = self._padded(self.running())
        where = [self.row_of(i) for i in kept]
        self.rows = kept
        return where
