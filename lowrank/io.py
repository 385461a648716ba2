"""Files: atomic writes (with the umask's permissions), JSON lines, fixed-width tables.

The layout of a results folder lives in ``lowrank.results``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


@contextlib.contextmanager
def _replaced_atomically(path: Path, suffix: str = "") -> Iterator[Path]:
    """Yields a fresh temporary path beside ``path``; renames it onto ``path`` on success.

    The file is created with mode 0666 less the umask, as ``open`` creates files (a
    ``tempfile.mkstemp`` file would stay 0600, unreadable to collaborators).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}{suffix}"
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Writes ``text`` to ``path`` through a temporary file and a rename (never half-written)."""
    with _replaced_atomically(path) as tmp, open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def save_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Atomically writes a ``.npz`` (keys are layer paths)."""
    with _replaced_atomically(path, suffix=".npz") as tmp:
        np.savez(tmp, **dict(arrays))


def _clean(value: Any) -> Any:
    """JSON-safe: NumPy scalars to Python, non-finite floats to strings JSON can hold."""
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return _clean(value.tolist())
    if isinstance(value, (np.floating, float)):
        f = float(value)
        if math.isnan(f):
            return None
        if math.isinf(f):
            return "inf" if f > 0 else "-inf"
        return f
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    return value


def append_jsonl(path: Path, records: Iterable[Mapping[str, Any]]) -> None:
    """Appends records, one JSON object per line, flushed to disk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        for r in records:
            f.write(json.dumps(_clean(r), sort_keys=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """All records of a metrics file (``None`` stands for NaN, ``"inf"`` for infinity)."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def format_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain fixed-width text table."""

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return "nan" if v is None else str(v)

    cells = [[fmt(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(header)]
    line = "  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))
    body = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join([line, "-" * len(line), *body])
