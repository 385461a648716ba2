"""Command line: ``python -m lowrank.main --config=configs/default.py --workdir=DIR``.

Overrides use ml-collections syntax, e.g. ``--config.train.epochs=5`` or
``--config.sweep.weight_decays='(0.0, 1e-3)'``; a config file's ``get_config(arg)`` takes
the text after a colon: ``--config=configs/default.py:quick``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# jaxlib's batched LAPACK kernels (the rank SVDs) already spread a batch over XLA's
# threads; OpenBLAS threads nested in them run much slower on a busy CPU
# (benchmarks/README.md). Set before NumPy, SciPy or JAX load OpenBLAS; a user's value wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jax
from absl import app, flags
from ml_collections import config_flags

from lowrank import engine, logs
from lowrank.checkpoint import WorkdirConfigError
from lowrank.config import ConfigError
from lowrank.data import DataError

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (get_config).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Results folder (created).")
_PROGRESS = flags.DEFINE_bool("progress", True, "Show a progress bar.")
_RESTART = flags.DEFINE_bool(
    "restart", False, "Delete the workdir's results and checkpoints and start over."
)
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "Join a multi-host run (jax.distributed.initialize())."
)
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "host:port of process 0 (multi-host without a cluster manager)."
)
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Number of processes.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index (0 writes).")
_PLOT = flags.DEFINE_bool(
    "plot", True, "Draw workdir/ranks.png (average ε-rank and accuracy against epoch)."
)
_LOG_LEVEL = logs.define_flag()
flags.mark_flags_as_required(["config", "workdir"])


def main(argv: list[str]) -> None:
    del argv
    logs.configure(_LOG_LEVEL.value)
    if _DISTRIBUTED.value:
        engine.initialize_hosts(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    try:
        table = engine.run(
            _CONFIG.value, _WORKDIR.value, progress=_PROGRESS.value, restart=_RESTART.value
        )
    except (ConfigError, DataError, WorkdirConfigError) as e:
        # A user error, not a bug: the message says what is wrong and how to fix it.
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except engine.Preempted as e:
        # Not a failure: a scheduler asked the job to stop; a requeue resumes it.
        print(f"preempted: {e}", file=sys.stderr)
        sys.exit(engine.EXIT_PREEMPTED)
    if jax.process_index() == 0:
        print(table)
        print(f"results: {_WORKDIR.value}")
        if _PLOT.value:
            from lowrank.figures import plots  # matplotlib only when drawing

            print(f"plot: {plots.draw(_WORKDIR.value, Path(_WORKDIR.value) / 'ranks.png')}")


def cli() -> None:
    """Console-script entry point (``lowrank --config=... --workdir=...``)."""
    app.run(main, argv=sys.argv)


if __name__ == "__main__":
    cli()
