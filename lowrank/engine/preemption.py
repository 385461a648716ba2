"""Stopping cleanly when a cluster preempts the job (SIGTERM, or SLURM's ``--signal=USR1``).

A preempted job gets a signal and, some seconds later, SIGKILL. On the first SIGTERM or
SIGUSR1 the run finishes the epoch in flight (an epoch is the unit a run resumes from
exactly: its data order, its records and its checkpoint belong to it), writes that
epoch's metrics and a checkpoint, waits for the write to finish, and raises
:class:`Preempted`; ``lowrank.main`` turns it into exit status :data:`EXIT_PREEMPTED`.
Running the same command again resumes and ends with exactly the metrics of an
uninterrupted run. Further signals while stopping are logged and ignored, so a second
SIGTERM during the checkpoint write cannot cut it short (a SIGKILL still can: the
previous checkpoint then stays usable, see ``lowrank.checkpoint``).

With several processes every process asks at the end of each epoch whether *any* of them
was signalled (one tiny all-gather), so all stop after the same epoch.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Any

import jax
import numpy as np

log = logging.getLogger(__name__)

# sysexits.h EX_TEMPFAIL: "a temporary failure; the user is invited to retry".
EXIT_PREEMPTED = 75
SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class Preempted(Exception):
    """The run stopped on a signal after writing a checkpoint; rerun it to resume."""

    def __init__(self, signal_name: str, group: int, epoch: int) -> None:
        super().__init__(
            f"stopped on {signal_name} after group {group} epoch {epoch}: metrics and a "
            "checkpoint are written; run the same command again to resume."
        )
        self.group, self.epoch = group, epoch


class StopRequest:
    """A context that catches SIGTERM and SIGUSR1 and remembers that one came.

    Handlers are installed only in the main thread (Python allows no others) and the
    previous ones are restored on exit.
    """

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for s in SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        del frame
        name = signal.Signals(signum).name
        if self.signal_name is None:
            self.signal_name = name
            log.warning("%s: finishing the epoch in flight, then checkpointing", name)
        else:
            log.warning("%s again: already stopping (the checkpoint is being written)", name)

    def agreed(self) -> bool:
        """Whether any process was signalled (all processes must call it together)."""
        local = self.signal_name is not None
        if jax.process_count() == 1:
            return local
        from jax.experimental import multihost_utils

        flags = multihost_utils.process_allgather(np.asarray(local, np.int32))
        if np.any(flags) and self.signal_name is None:
            self.signal_name = "a signal to another process"
        return bool(np.any(flags))
