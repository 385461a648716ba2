"""experiments/gpu_long.sh, the one command for the long figures on a GPU machine, run here
on the CPU with one epoch, so that it cannot rot."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.mark.slow
def test_every_panel_runs_as_its_own_process_and_the_figure_is_packed(tmp_path):
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHON": sys.executable,
        "JAX_PLATFORMS": "cpu",
        "LONG_WORK": str(tmp_path / "work"),
        "LONG_ARGS": "--config.train.epochs=1",
    }
    done = subprocess.run(
        ["bash", "experiments/gpu_long.sh", str(tmp_path / "out"), "18"],
        capture_output=True, text=True, timeout=600, cwd=ROOT, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "fig18 panel 0: started" in done.stdout and "fig18: drawn and packed" in done.stdout
    with tarfile.open(tmp_path / "out" / "fig18_long.tar.gz") as tar:
        names = set(tar.getnames())
        manifest = json.load(tar.extractfile("fig18/figure.json"))
    assert {"fig18/fig18.png", "fig18/summary.txt", "fig18/timing.json"} <= names
    assert manifest["scale"] == "long"
    # Run again: every panel has finished, so nothing is retrained and it is packed again.
    metrics = tmp_path / "work" / "fig18" / "panel0" / "metrics.jsonl"
    before = metrics.stat().st_mtime
    again = subprocess.run(
        ["bash", "experiments/gpu_long.sh", str(tmp_path / "out2"), "18"],
        capture_output=True, text=True, timeout=600, cwd=ROOT, env=env,
    )  # fmt: skip
    assert again.returncode == 0 and metrics.stat().st_mtime == before
    assert (tmp_path / "out2" / "fig18_long.tar.gz").exists()
