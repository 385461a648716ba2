"""Terminal logging for the command-line programs (``lowrank.main``, ``experiments/*.py``).

By default only this project's own messages (``lowrank`` and ``experiments`` loggers, at
INFO) and every library's warnings and errors reach the terminal; the libraries' INFO
lines (Orbax's checkpoint bookkeeping above all, through absl) stay off. ``--log_level``
lowers the threshold for the libraries too.
"""

from __future__ import annotations

import logging

from absl import flags
from absl import logging as absl_logging

LEVELS = ("debug", "info", "warning", "error")
OWN_LOGGERS = ("lowrank", "experiments")
FORMAT = "%(levelname)s %(name)s: %(message)s"


def define_flag() -> flags.FlagHolder:
    """Defines ``--log_level`` (call once, in a program's main module)."""
    return flags.DEFINE_enum(
        "log_level",
        "warning",
        LEVELS,
        "Threshold for the libraries' log messages (Orbax, JAX, absl); the project's own "
        "progress messages are always shown. 'info' shows the libraries' INFO lines too.",
    )


def configure(level: str = "warning") -> None:
    """Libraries log at ``level`` and above; the project's own loggers at INFO and above."""
    if level not in LEVELS:
        raise ValueError(f"log level {level!r}: choose one of {LEVELS}.")
    threshold = getattr(logging, level.upper())
    root = logging.getLogger()
    if not root.handlers:  # absl's app.run installs its own handler; otherwise add one
        logging.basicConfig(format=FORMAT)
    for handler in root.handlers:  # plain lines, not absl's "I1201 12:00:00.1 file.py:12]"
        handler.setFormatter(logging.Formatter(FORMAT))
    root.setLevel(threshold)
    absl_logging.set_verbosity(level)  # the absl logger (Orbax logs through it)
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(min(threshold, logging.INFO))
