"""The results folder of a run: its layout, what is written when, and resume truncation.

Layout of a workdir::

    config.json       the resolved config (every field, after command-line overrides)
    members.json      one entry per member: id, group, seed, μ, λ, β, B
    metrics.jsonl     one record per member per epoch (epoch 0 = at initialization)
    theory.jsonl      with record.steps: the theory checked on the last epoch's window
    spectra/          group{g}_epoch{e:04d}.npz: {layer path: (members, min(out, in)) σ}
    structure.json    what the model's structure gives the theory: m_l per weight matrix
    summary.txt       the table printed at the end
    ranks.png         drawn by lowrank.main (average ε-rank and accuracy per epoch)
    checkpoints/      Orbax checkpoints (lowrank.checkpoint)

Every file is written atomically or appended line by line; on resume the JSON-lines
files are cut back to what the checkpoint had seen.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import ml_collections
import numpy as np

from lowrank import checkpoint, io
from lowrank.budget import budget_of

LINES = {"metrics": "metrics.jsonl", "theory": "theory.jsonl"}
# The member fields that are hyperparameters (traced, and the compile group's batch size).
HPARAMS = ("learning_rate", "weight_decay", "momentum", "batch_size")
SYMBOLS = {"learning_rate": "μ", "weight_decay": "λ", "momentum": "β", "batch_size": "B"}


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

    def write_structure(self, m_l: Mapping[str, int]) -> None:
        """``structure.json``: m_l (Lemma 3.1's patch count) of each measured matrix."""
        if self.writer:
            text = json.dumps({"m_l": dict(m_l)}, indent=1) + "\n"
            io.atomic_write_text(self.path / "structure.json", text)

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


# ------------------------------------------------------------------- reading back


def number(v: Any) -> float:
    """A metrics value as a float: None (NaN in the file) → nan, "inf" → inf."""
    if v is None:
        return math.nan
    if isinstance(v, str):
        return float(v)
    return float(v)


def diverged_epochs(records: Iterable[Mapping[str, Any]]) -> dict[int, int]:
    """``{member: the epoch it diverged at}`` from a run's records."""
    out: dict[int, int] = {}
    for r in records:
        if r.get("diverged"):
            out[r["member"]] = min(out.get(r["member"], r["epoch"]), r["epoch"])
    return out


def spectra_rows(group_ids: Iterable[int], diverged: Mapping[int, int], epoch: int) -> list[int]:
    """The members (ids, in id order) whose rows a compile group's spectra file of
    ``epoch`` holds: those on the device that epoch (one that diverged in an earlier epoch
    has left it; one that diverges in this epoch is still measured)."""
    return [i for i in sorted(group_ids) if diverged.get(i, epoch) >= epoch]


@dataclasses.dataclass
class PanelResults:
    """One panel's sweep results folder, read back."""

    name: str
    label: str
    vary: tuple[str, ...]
    workdir: Path
    config: dict[str, Any]
    members: list[dict[str, Any]]
    records: list[dict[str, Any]]
    structure: dict[str, Any] = dataclasses.field(default_factory=dict)  # structure.json

    def member_records(self) -> dict[int, list[dict[str, Any]]]:
        """Each member's records in epoch order."""
        out: dict[int, list[dict[str, Any]]] = {}
        for r in self.records:
            out.setdefault(r["member"], []).append(r)
        for rs in out.values():
            rs.sort(key=lambda r: r["epoch"])
        return out

    def final(self, key: str) -> dict[int, float]:
        """Each member's value of ``key`` at its last epoch that has it (nan if it diverged
        at any epoch: with ``train.eval_every`` > 1 its last measured value may predate the
        divergence)."""
        out: dict[int, float] = {}
        for mid, rs in self.member_records().items():
            have = [r for r in rs if key in r]
            if not have:
                continue
            diverged = any(r.get("diverged") or r.get("nonfinite") for r in rs)
            out[mid] = math.nan if diverged else number(have[-1][key])
        return out

    def member(self, mid: int) -> dict[str, Any]:
        """The member entry (id, group, seed, μ, λ, β, B) of ``members.json``."""
        return next(m for m in self.members if m["id"] == mid)

    def _spectra_files(self) -> dict[int, dict[int, Path]]:
        """``{group: {epoch: path}}`` of the saved singular values."""
        pattern = re.compile(r"group(\d+)_epoch(\d+)\.npz$")
        found: dict[int, dict[int, Path]] = {}
        for p in sorted((self.workdir / "spectra").glob("group*_epoch*.npz")):
            m = pattern.search(p.name)
            if m:
                found.setdefault(int(m.group(1)), {})[int(m.group(2))] = p
        return found

    def spectra(self, epoch: int | None = None) -> dict[int, tuple[int, dict[str, np.ndarray]]]:
        """Saved singular values per compile group: ``{group: (epoch, {path: (members, k)})}``.

        Takes ``epoch`` when saved, else each group's latest saved epoch.
        """
        out: dict[int, tuple[int, dict[str, np.ndarray]]] = {}
        for g, files in self._spectra_files().items():
            e = epoch if epoch in files else max(files)
            with np.load(files[e]) as z:
                out[g] = (e, {k: z[k] for k in z.files})
        return out

    def member_spectra(self, mid: int) -> dict[int, dict[str, np.ndarray]]:
        """Member ``mid``'s saved singular values at every saved epoch it ran: ``{epoch:
        {path: σ}}`` (its row of its compile group's files: :func:`spectra_rows`)."""
        group = self.member(mid)["group"]
        ids = [m["id"] for m in self.members if m["group"] == group]
        diverged = diverged_epochs(self.records)
        out: dict[int, dict[str, np.ndarray]] = {}
        for e, path in sorted(self._spectra_files().get(group, {}).items()):
            rows = spectra_rows(ids, diverged, e)
            if mid in rows:
                with np.load(path) as z:
                    out[e] = {k: np.asarray(z[k][rows.index(mid)]) for k in z.files}
        return out

    def dataset(self) -> str:
        return str(self.config.get("data", {}).get("name", ""))

    def budget(self) -> str:
        """``train.budget`` of the panel's run: "epochs" or "steps" (``lowrank.budget``)."""
        return budget_of(self.config)

    def optimizer(self) -> str:
        """``optim.name`` of the panel's run ("sgd" where the config predates the field)."""
        return str(self.config.get("optim", {}).get("name", "sgd"))


@dataclasses.dataclass
class FigureResults:
    """A figure's results folder: its manifest and one :class:`PanelResults` per panel."""

    folder: Path
    figure: dict[str, Any]
    panels: list[PanelResults]

    @property
    def kind(self) -> str:
        return self.figure["kind"]

    @property
    def epsilon(self) -> float:
        return float(self.figure.get("epsilon", 1e-3))


def _read_json(path: Path, default: Any) -> Any:
    return json.loads(path.read_text()) if path.exists() else default


def _read_panel(workdir: Path, name: str, label: str, vary: Sequence[str]) -> PanelResults:
    metrics = workdir / "metrics.jsonl"
    if not metrics.exists():
        raise FileNotFoundError(f"figures: no results in {workdir} (metrics.jsonl is missing).")
    return PanelResults(
        name=name,
        label=label,
        vary=tuple(vary),
        workdir=workdir,
        config=_read_json(workdir / "config.json", {}),
        members=_read_json(workdir / "members.json", []),
        records=io.read_jsonl(metrics),
        structure=_read_json(workdir / "structure.json", {}),
    )


def _inferred_vary(records: list[dict[str, Any]]) -> tuple[str, ...]:
    """The hyperparameters that take more than one value in a sweep (for plain folders)."""
    vary = tuple(h for h in HPARAMS if len({r.get(h) for r in records}) > 1)
    return vary or ("weight_decay",)


def load_results(folder: str | Path) -> FigureResults:
    """Reads a figure's results folder, or a plain sweep results folder as one panel.

    Panels whose sweep has not written results yet are left out.

    Raises:
      FileNotFoundError: neither ``figure.json`` nor ``metrics.jsonl`` is in ``folder``.
    """
    folder = Path(folder)
    fig_file = folder / "figure.json"
    if fig_file.exists():
        figure = json.loads(fig_file.read_text())
        panels = [
            _read_panel(folder / p["name"], p["name"], p["label"], p["vary"])
            for p in figure["panels"]
            if (folder / p["name"] / "metrics.jsonl").exists()
        ]
        return FigureResults(folder, figure, panels)
    if (folder / "metrics.jsonl").exists():
        records = io.read_jsonl(folder / "metrics.jsonl")
        vary = _inferred_vary(records)
        fixed = [h for h in HPARAMS if h not in vary and records and h in records[0]]
        label = setting_label(fixed, [records[0][h] for h in fixed]) if fixed else folder.name
        panel_ = _read_panel(folder, ".", label, vary)
        cfg = panel_.config
        eps = cfg.get("rank", {}).get("epsilons", [1e-3])
        model, dataset = cfg.get("model", {}).get("name"), cfg.get("data", {}).get("name")
        title = f"{folder.name}: {model} on {dataset}" if model and dataset else folder.name
        figure = {"number": None, "kind": "curves", "vary": list(vary), "epsilon": eps[0],
                  "scale": "", "title": title, "reduced": "",
                  "panels": [{"name": ".", "label": label, "vary": list(vary)}]}  # fmt: skip
        return FigureResults(folder, figure, [panel_])
    raise FileNotFoundError(
        f"figures: {folder} is not a results folder (no figure.json, no metrics.jsonl)."
    )


def setting_label(vary: Sequence[str], setting: Sequence[Any]) -> str:
    """``"λ=0.001"`` / ``"B=8, μ=0.1"``."""
    return ", ".join(f"{SYMBOLS.get(h, h)}={v:g}" for h, v in zip(vary, setting, strict=True))
