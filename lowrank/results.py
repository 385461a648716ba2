"""The results folder of a run: its layout, what is written when, and resume truncation.

Layout of a workdir::

    config.json       the resolved config (every field, after command-line overrides)
    members.json      one entry per member: id, group, seed, μ, λ, β, B
    metrics.jsonl     one record per member per epoch (epoch 0 = at initialization)
    theory.jsonl      with record.steps: the theory checked on the last epoch's window
    spectra/          group{g}_epoch{e:04d}.npz: {layer path: (members, min(out, in)) σ}
    summary.txt       the table printed at the end
    ranks.png         drawn by lowrank.main (average ε-rank and accuracy per epoch)
    checkpoints/      Orbax checkpoints (lowrank.checkpoint)

Every file is written atomically or appended line by line; on resume the JSON-lines
files are cut back to what the checkpoint had seen.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import ml_collections
import numpy as np

from lowrank import checkpoint, io

LINES = {"metrics": "metrics.jsonl", "theory": "theory.jsonl"}


@dataclasses.dataclass(frozen=True)
class ResultsFolder:
    """One run's results folder. With ``writer`` False (the other processes of a
    multi-host run) every write is skipped: process 0 writes for all."""

    path: Path
    writer: bool = True

    def claim(self, config: ml_collections.ConfigDict, restart: bool, members: list[Any]) -> None:
        """Makes the folder this config's (``checkpoint.claim_workdir``); writes members.json."""
        self.path.mkdir(parents=True, exist_ok=True)
        if not self.writer:
            return
        checkpoint.claim_workdir(self.path, config, restart)
        rows = [dataclasses.asdict(m) for m in members]
        io.atomic_write_text(self.path / "members.json", json.dumps(rows, indent=1) + "\n")

    def start_lines(self, meta: Mapping[str, Any] | None) -> None:
        """Fresh JSON-lines files (no checkpoint), or cut back to a checkpoint's ``meta``."""
        if not self.writer:
            return
        for kind, name in LINES.items():
            path = self.path / name
            if meta is None:
                path.unlink(missing_ok=True)
            elif path.exists():
                with open(path, "r+") as f:
                    f.truncate(meta.get(f"{kind}_bytes", 0))

    def sizes(self) -> dict[str, int]:
        """The JSON-lines files' sizes, for a checkpoint's ``meta``."""
        out = {}
        for kind, name in LINES.items():
            path = self.path / name
            out[f"{kind}_bytes"] = path.stat().st_size if self.writer and path.exists() else 0
        return out

    def append(self, kind: str, records: Iterable[Mapping[str, Any]]) -> None:
        """Appends records to ``metrics.jsonl`` or ``theory.jsonl`` (``kind``)."""
        if self.writer:
            io.append_jsonl(self.path / LINES[kind], records)

    def save_spectra(self, group: int, epoch: int, spectra: Mapping[str, np.ndarray]) -> None:
        if self.writer:
            io.save_npz(self.path / "spectra" / f"group{group}_epoch{epoch:04d}.npz", spectra)

    def records(self) -> list[dict[str, Any]]:
        """Every record of ``metrics.jsonl`` (none on processes that do not write)."""
        return io.read_jsonl(self.path / LINES["metrics"]) if self.writer else []

    def write_summary(self, table: str) -> None:
        if self.writer:
            io.atomic_write_text(self.path / "summary.txt", table + "\n")
