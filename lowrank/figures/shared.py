"""Members a figure's panels share, trained once.

Fig. 1's four heat maps repeat cells: panel (c) (μ = 0.5 over B × λ) holds at B = 8 and
16 the μ = 0.5 columns of panels (a) and (b), and panel (d) (λ = 6e-3 over B × μ) their
λ = 6e-3 rows — 48 of its 192 members, a third of its SGD steps. A compile group of a
panel (its members of one batch size) whose every member is a member of the same batch
size's group of a finished panel, under the same run config, is copied from there
instead of trained; the panel's other groups are trained in ``<panel>/own``. Then the
panel's folder is assembled from the parts, renumbered to the member ids and groups a
full run of the panel gives, so every reader sees the folder a full run writes (the
copied records keep their ``seconds``: what they cost where they were trained).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import ml_collections
import numpy as np

from lowrank import budget, checkpoint, io
from lowrank.engine import records as records_lib
from lowrank.engine.members import members as sweep_members
from lowrank.figures.spec import Panel
from lowrank.results import LINES, ResultsFolder, diverged_epochs, spectra_rows

MemberKey = tuple[int, float, float, float, int]  # seed, μ, λ, β, B


def _key(m: Mapping[str, Any]) -> MemberKey:
    return (
        int(m["seed"]),
        float(m["learning_rate"]),
        float(m["weight_decay"]),
        float(m["momentum"]),
        int(m["batch_size"]),
    )


def _group_run(config: ml_collections.ConfigDict, batch_size: int) -> dict[str, Any]:
    """What decides a group's training besides its members: the group's run config
    without the sweep's lists and the fields that change only how it executes."""
    flat = checkpoint.flatten(budget.group_config(config, batch_size).to_dict())
    return {
        k: v
        for k, v in flat.items()
        if not k.startswith("sweep.") and k not in checkpoint.EXECUTION_FIELDS
    }


def _group_keys(config: ml_collections.ConfigDict, batch_size: int) -> set[MemberKey]:
    return {_key(m.hparams()) for m in sweep_members(config) if m.batch_size == batch_size}


def _with_batch_sizes(config: ml_collections.ConfigDict, sizes: Sequence[int]):
    out = ml_collections.ConfigDict(config.to_dict())
    out.sweep.batch_sizes = tuple(sizes)
    return out


def shared_groups(panel: Panel, finished: Sequence[tuple[Panel, Path]]) -> dict[int, Path]:
    """``{B: folder}``: the groups of ``panel`` that a finished panel's folder already
    holds (the first such panel, in figure order). Empty where training the panel's other
    groups on their own would change them (``train.budget = "steps"`` scales a group's
    epochs by the smallest B of the sweep)."""
    found: dict[int, Path] = {}
    for b in panel.config.sweep.batch_sizes:
        holders = [f for other, f in finished if _holds(other.config, panel.config, b)]
        if holders:
            found[b] = holders[0]
    own = own_config(panel.config, found)
    if own is not None and any(
        _group_run(own, b) != _group_run(panel.config, b) for b in own.sweep.batch_sizes
    ):
        return {}
    return found


def _holds(
    other: ml_collections.ConfigDict, config: ml_collections.ConfigDict, batch_size: int
) -> bool:
    """Whether ``other``'s group of B has every member of ``config``'s, trained alike."""
    return (
        batch_size in other.sweep.batch_sizes
        and _group_run(other, batch_size) == _group_run(config, batch_size)
        and _group_keys(config, batch_size) <= _group_keys(other, batch_size)
    )


def own_config(
    config: ml_collections.ConfigDict, shared: Mapping[int, Path]
) -> ml_collections.ConfigDict | None:
    """The panel's config with only the groups it trains itself (None: it trains none)."""
    own = [b for b in config.sweep.batch_sizes if b not in shared]
    return _with_batch_sizes(config, own) if own else None


def assemble(config: ml_collections.ConfigDict, workdir: Path, parts: Mapping[int, Path]) -> str:
    """Writes the results folder of ``config``'s sweep into ``workdir`` from finished
    folders, ``parts[B]`` holding the group of batch size B; returns the summary table
    (written last: a folder with ``summary.txt`` is complete)."""
    full = sweep_members(config)
    wanted = {_key(m.hparams()): m for m in full}
    folder = ResultsFolder(workdir)
    folder.claim(config, True, full)  # a fresh folder: config.json, members.json
    shutil.copy2(next(iter(parts.values())) / "structure.json", workdir / "structure.json")
    lines: dict[str, list[dict[str, Any]]] = {kind: [] for kind in LINES}
    for b, source in parts.items():
        source_members = json.loads((source / "members.json").read_text())
        ids = _id_map(source_members, b, wanted)
        source_lines = {
            k: io.read_jsonl(source / n) for k, n in LINES.items() if (source / n).exists()
        }
        for kind, records in source_lines.items():
            lines[kind] += _renumbered(records, ids)
        diverged = diverged_epochs(source_lines["metrics"])
        _copy_spectra(source, source_members, workdir, ids, diverged)
    for kind in LINES:
        if lines[kind]:
            folder.append(kind, sorted(lines[kind], key=_run_order))
    table = records_lib.summary(folder.records(), float(config.rank.epsilons[0]))
    folder.write_summary(table)
    return table


def _run_order(record: Mapping[str, Any]) -> tuple[int, int, int]:
    """The order a full run writes records in: group by group, epoch by epoch."""
    return record.get("group", 0), record.get("epoch", 0), record["member"]


def _id_map(
    rows: list[dict[str, Any]], batch_size: int, wanted: Mapping[MemberKey, Any]
) -> dict[int, Any]:
    """``{id in source: member of the full sweep}`` for the source's members (its
    ``members.json`` rows) of B that the sweep has."""
    return {
        r["id"]: wanted[_key(r)]
        for r in rows
        if r["batch_size"] == batch_size and _key(r) in wanted
    }


def _renumbered(records: list[dict[str, Any]], ids: Mapping[int, Any]) -> list[dict[str, Any]]:
    """The records of the mapped members, with their ids (and groups) in the full sweep."""
    out = []
    for r in records:
        if r.get("member") in ids:
            m = ids[r["member"]]
            out.append(r | {"member": m.id} | ({"group": m.group} if "group" in r else {}))
    return out


def _copy_spectra(
    source: Path,
    rows: list[dict[str, Any]],
    workdir: Path,
    ids: Mapping[int, Any],
    diverged: Mapping[int, int],
) -> None:
    """The copied members' rows of the source group's saved spectra, in the full sweep's
    member order, as a full run saves them (:func:`lowrank.results.spectra_rows`)."""
    if not ids:
        return
    group = next(r["group"] for r in rows if r["id"] in ids)
    in_group = [r["id"] for r in rows if r["group"] == group]
    picked = sorted(ids, key=lambda i: ids[i].id)  # the full sweep's row order
    new_group = ids[picked[0]].group
    for path in sorted((source / "spectra").glob(f"group{group}_epoch*.npz")):
        epoch = path.stem.split("_epoch")[1]
        saved = spectra_rows(in_group, diverged, int(epoch))
        take = np.array([saved.index(i) for i in picked if i in saved], dtype=int)
        with np.load(path) as z:
            arrays = {k: z[k][take] for k in z.files}
        io.save_npz(workdir / "spectra" / f"group{new_group}_epoch{epoch}.npz", arrays)
