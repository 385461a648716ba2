"""lowrank.io: atomic writes that keep the old file on failure and respect the umask."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
from test_train import tiny_config

from lowrank import engine, io


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_writes_are_readable_by_others(tmp_path, umask_022):
    io.atomic_write_text(tmp_path / "a.txt", "x\n")
    io.save_npz(tmp_path / "s.npz", {"dense/kernel": np.ones((2, 3))})
    assert mode(tmp_path / "a.txt") == mode(tmp_path / "s.npz") == 0o644
    os.umask(0o077)  # a private umask is respected too
    io.atomic_write_text(tmp_path / "b.txt", "y\n")
    assert mode(tmp_path / "b.txt") == 0o600


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "s.npz"
    io.save_npz(target, {"a": np.zeros(2)})

    def disk_full(file, **arrays):
        with open(file, "wb") as f:
            f.write(b"PK half an archive")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(io.np, "savez", disk_full)
    with pytest.raises(OSError, match="No space"):
        io.save_npz(target, {"a": np.ones(2)})
    monkeypatch.undo()
    with np.load(target) as z:
        np.testing.assert_array_equal(z["a"], np.zeros(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.npz"]


def test_a_sweeps_results_are_0644_under_umask_022(tmp_path, umask_022):
    c = tiny_config()
    c.train.epochs = 1
    engine.run(c, tmp_path / "w", progress=False)
    w = tmp_path / "w"
    files = [w / "config.json", w / "members.json", w / "summary.txt", w / "metrics.jsonl"]
    files += sorted((w / "spectra").iterdir())
    assert len(files) == 6
    for f in files:
        assert mode(f) == 0o644, f.name
