"""Orbax checkpoints of a sweep, and the guard that a workdir belongs to one config.

A checkpoint holds the device state of the running compile group (parameters, batch
statistics, optimizer state with μ, λ, β, RNG keys, step) and a JSON ``meta`` record with
everything the host needs to continue exactly: group, epoch, active and diverged members,
the previous epoch's norms (for norm ratios) and the size of ``metrics.jsonl`` at that
moment. Orbax writes each checkpoint into a temporary folder and renames it when complete,
so a crash during a write leaves the previous checkpoint usable; unfinished folders are
removed the next time the manager opens.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import ml_collections
import orbax.checkpoint as ocp

from lowrank import io

# Fields that choose how the run executes, not what it computes: a run may resume with
# other values (e.g. after moving from a GPU to a CPU).
EXECUTION_FIELDS = frozenset(
    {"train.epoch_loop", "sweep.vectorize", "sweep.threads", "train.eval_batch_size"}
)


class WorkdirConfigError(ValueError):
    """The workdir holds results of a different config."""


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """A nested dict as ``{"a.b.c": leaf}`` (a config's fields by their dotted names)."""
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: tree}


def claim_workdir(workdir: Path, config: ml_collections.ConfigDict, restart: bool) -> bool:
    """Makes ``workdir`` this config's: returns True if it holds a run of it to resume.

    Raises:
      WorkdirConfigError: the workdir holds another config's run and ``restart`` is False.
    """
    new_text = config.to_json_best_effort(indent=2, sort_keys=True) + "\n"
    saved = workdir / "config.json"
    if saved.exists() and not restart:
        old = flatten(json.loads(saved.read_text()))
        new = flatten(json.loads(new_text))
        changed = sorted(
            k
            for k in old.keys() | new.keys()
            if old.get(k) != new.get(k) and k not in EXECUTION_FIELDS
        )
        if changed:
            shown = "; ".join(f"{k}: {old.get(k)!r} → {new.get(k)!r}" for k in changed[:8])
            raise WorkdirConfigError(
                f"workdir {workdir} holds a run of a different config ({shown}"
                f"{'; ...' if len(changed) > 8 else ''}). Use another --workdir, or pass "
                "--restart to delete its results and start over."
            )
        io.atomic_write_text(saved, new_text)  # records the execution fields of this run
        return True
    if restart:
        for name in ("metrics.jsonl", "theory.jsonl", "summary.txt", "members.json"):
            (workdir / name).unlink(missing_ok=True)
        for sub in ("checkpoints", "spectra"):
            _remove_tree(workdir / sub)
    io.atomic_write_text(saved, new_text)
    return False


def _remove_tree(path: Path) -> None:
    if not path.exists():
        return
    for child in sorted(path.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        child.rmdir() if child.is_dir() and not child.is_symlink() else child.unlink()
    path.rmdir()


class SweepCheckpoints:
    """A bounded series of checkpoints in ``workdir/checkpoints`` (step = a global counter)."""

    def __init__(self, directory: Path, keep: int) -> None:
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, cleanup_tmp_directories=True, create=True
        )
        self.manager = ocp.CheckpointManager(
            directory.absolute(), options=options, item_names=("state", "meta")
        )

    def save(self, step: int, state: Any, meta: dict[str, Any]) -> None:
        """Starts an asynchronous save (it finishes while training goes on)."""
        self.manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)
            ),
        )

    def latest_meta(self) -> tuple[int, dict[str, Any]] | None:
        step = self.manager.latest_step()
        if step is None:
            return None
        meta = self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
        return step, meta["meta"]

    def restore_state(self, step: int, like: Any) -> Any:
        """The state saved at ``step``, with the shapes, dtypes and shardings of ``like``."""
        abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, like)
        out = self.manager.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract))
        )
        return out["state"]

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()
