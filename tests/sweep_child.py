"""Runs a tiny sweep in a child process, optionally dying at a chosen point.

Usage: python tests/sweep_child.py WORKDIR FAULT [JSON_OVERRIDES]
FAULT: "none"; "after_metrics:N" (os._exit right after the N-th epoch's metrics are
written, before its checkpoint); "in_save:N" (os._exit while the N-th checkpoint is being
written asynchronously); "sigterm:N" (SIGTERM to itself during the N-th training epoch);
"sigterm_twice:N" (that, and a second SIGTERM while the checkpoint is being written).
A preempted run exits with ``engine.EXIT_PREEMPTED``, as ``lowrank.main`` does.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from test_train import tiny_config

from lowrank import checkpoint, engine, io


def main() -> None:
    workdir, fault = sys.argv[1], sys.argv[2]
    if "LOWRANK_TEST_PROCESS_ID" in os.environ:  # one of several processes
        engine.initialize_hosts(
            os.environ["LOWRANK_TEST_COORDINATOR"],
            int(os.environ["LOWRANK_TEST_NUM_PROCESSES"]),
            int(os.environ["LOWRANK_TEST_PROCESS_ID"]),
        )
    overrides = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    config = tiny_config()
    config.train.epochs = 3
    config.checkpoint.every = 1
    for dotted, value in overrides.items():
        section, field = dotted.split(".")
        config[section][field] = tuple(value) if isinstance(value, list) else value
    kind, _, n = fault.partition(":")
    calls = {"n": 0}
    if kind == "after_metrics":
        original = io.append_jsonl

        def append_then_die(path, records):
            original(path, records)
            calls["n"] += 1
            if calls["n"] == int(n):
                os._exit(17)

        io.append_jsonl = append_then_die
    elif kind == "in_save":
        original_save = checkpoint.SweepCheckpoints.save

        def save_then_die(self, step, state, meta):
            calls["n"] += 1
            original_save(self, step, state, meta)
            if calls["n"] == int(n):
                os._exit(17)  # the asynchronous write is still in flight

        checkpoint.SweepCheckpoints.save = save_then_die
    elif kind in ("sigterm", "sigterm_twice"):
        _signal_at(int(n), twice=kind == "sigterm_twice")
    try:
        print(engine.run(config, workdir, progress=False))
    except engine.Preempted as e:
        print(f"preempted: {e}", file=sys.stderr)
        sys.exit(engine.EXIT_PREEMPTED)


def _signal_at(n: int, *, twice: bool) -> None:
    """Sends SIGTERM to this process from inside the n-th training epoch (the epoch's
    work is then still to do), and with ``twice`` again in the save that follows."""
    from lowrank.engine.group import Group

    calls = {"train": 0}
    train = Group.train

    def train_with_signal(self, *args, **kwargs):
        calls["train"] += 1
        if calls["train"] == n:
            os.kill(os.getpid(), signal.SIGTERM)
        return train(self, *args, **kwargs)

    Group.train = train_with_signal
    if twice:
        save = checkpoint.SweepCheckpoints.save

        def save_with_signal(self, step, state, meta):
            save(self, step, state, meta)  # the write is in flight
            if calls["train"] >= n:
                os.kill(os.getpid(), signal.SIGTERM)

        checkpoint.SweepCheckpoints.save = save_with_signal


if __name__ == "__main__":
    main()
