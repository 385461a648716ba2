"""Test-session setup: one persistent XLA compilation cache for the whole session.

Many tests compile the same small programs again: every ``sweep.run`` builds fresh
functions, and the resilience tests start child processes that each compile the sweep
they resume. A cache shared by the session (and inherited by the children through the
environment) compiles each program once. It lives in a fresh temporary folder, so every
session still compiles everything at least once, and it is deleted at the end. Set
``JAX_COMPILATION_CACHE_DIR`` yourself to use another folder (it is then kept).

This runs before any test module imports JAX, which reads these variables at import.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="lowrank-tests-xla-cache-")
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
    # Cache every program, however small or quick to compile: the tests' are both.
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
