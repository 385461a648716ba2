"""The main command end to end: the default config, reduced, through the CLI."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
FASHION = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")


@pytest.mark.timeout(600)
@pytest.mark.skipif(not FASHION.exists(), reason="needs Debian's dataset-fashion-mnist")
def test_default_config_through_the_cli(tmp_path):
    workdir = tmp_path / "default"
    cmd = [
        sys.executable, "-m", "lowrank.main",
        f"--config={ROOT / 'configs' / 'default.py'}:quick",
        f"--workdir={workdir}",
        "--config.train.epochs=1",
        "--config.data.train_subset=512",
        "--config.sweep.weight_decays=(0.0, 0.01)",
        "--noprogress",
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=540, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "rank@0.001" in out.stdout and f"results: {workdir}" in out.stdout
    config = json.loads((workdir / "config.json").read_text())
    assert config["train"]["epochs"] == 1 and config["data"]["train_subset"] == 512
    records = [json.loads(x) for x in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 2 * 2 * 2  # seeds × λ × (epoch 0, epoch 1)
    assert {r["weight_decay"] for r in records} == {0.0, 0.01}
    assert all("avg_rank@0.001" in r and "test_accuracy" in r for r in records)
    assert sorted(p.name for p in (workdir / "spectra").iterdir()) == [
        "group0_epoch0000.npz",
        "group0_epoch0001.npz",
    ]
    assert (workdir / "summary.txt").exists()
    # The terminal: no library INFO lines (absl's "I1201 ..." from Orbax), and a plot.
    assert not re.search(r"^I\d{4} ", out.stdout + out.stderr, re.MULTILINE), out.stderr[-2000:]
    assert "INFO lowrank.data.load: Loaded fashion_mnist" in out.stderr
    assert out.stdout.rstrip().splitlines()[-1] == f"plot: {workdir / 'ranks.png'}"
    assert (workdir / "ranks.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_log_level_shows_the_libraries_info_lines(tmp_path):
    cmd = [
        sys.executable, "-m", "lowrank.main",
        f"--config={ROOT / 'configs' / 'default.py'}:quick",
        f"--workdir={tmp_path / 'w'}",
        "--config.data.name=digits", "--config.data.source=sklearn", "--config.data.train_subset=0",
        "--config.train.epochs=1", "--config.sweep.weight_decays=(0.0,)",
        "--config.sweep.seeds=(0,)", "--noprogress", "--noplot", "--log_level=info",
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "INFO absl:" in out.stderr  # Orbax's checkpoint messages, through absl
    assert not (tmp_path / "w" / "ranks.png").exists()


def test_bad_override_is_refused_with_the_field_named(tmp_path):
    cmd = [
        sys.executable, "-m", "lowrank.main",
        f"--config={ROOT / 'configs' / 'default.py'}",
        f"--workdir={tmp_path / 'w'}",
        "--config.sweep.learning_rates=(-0.1,)",
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 2
    assert "error: bad config" in out.stderr and "μ=-0.1: μ must be > 0" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "w").exists()
