"""Runs a tiny sweep in a child process, optionally dying at a chosen point.

Usage: python tests/sweep_child.py WORKDIR FAULT [JSON_OVERRIDES]
FAULT: "none"; "after_metrics:N" (os._exit right after the N-th epoch's metrics are
written, before its checkpoint); "in_save:N" (os._exit while the N-th checkpoint is being
written asynchronously).
"""

from __future__ import annotations

import json
import os
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
    print(engine.run(config, workdir, progress=False))


if __name__ == "__main__":
    main()
