"""Each layer's ε-rank fall against h* = ln(1/ε) + ln(σ_k(0)/σ_max(0)) − ln(σ_max(t)/σ_max(0))."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_train import run, tiny_config

from lowrank.analysis.layer_thresholds import eps_rank, layer_falls
from lowrank.results import load_results

ROOT = Path(__file__).resolve().parent.parent
EPS = 1e-3


def _forgetting_run(rng, unfed: int, epochs: int = 40, rate: float = 0.5):
    """Spectra of a layer whose ``unfed`` smallest directions shrink by exactly e^{−h} while
    the fed ones, σ_max among them, are scaled together by a random walk that grows on
    average (training growing the learned directions)."""
    s0 = np.sort(rng.uniform(0.05, 1.0, 12))[::-1]
    s0[0] = 1.0
    horizons = {e: rate * e for e in range(epochs + 1)}
    fed = s0[: 12 - unfed].copy()
    spectra = {}
    for e, h in horizons.items():
        if e:
            fed = fed * math.exp(rng.normal(0.05, 0.1))
        values = np.concatenate([fed, s0[12 - unfed :] * math.exp(-h)])
        spectra[e] = {"layer/kernel": np.sort(values)[::-1]}
    return spectra, horizons


@pytest.mark.parametrize("seed", range(6))
def test_forgetting_alone_never_falls_before_h_star(seed):
    rng = np.random.default_rng(seed)
    spectra, horizons = _forgetting_run(rng, unfed=int(rng.integers(1, 6)))
    (fall,) = layer_falls(spectra, horizons, EPS, fraction=0.05)
    assert fall.epoch is not None  # h reaches 20: every unfed direction has left the count
    assert not fall.before_forgetting_allows
    s0, s = spectra[0]["layer/kernel"], spectra[fall.epoch]["layer/kernel"]
    assert fall.growth == pytest.approx(math.log(s[0] / s0[0]))
    assert (
        eps_rank(s, EPS)
        <= fall.initial_rank - fall.drop
        < eps_rank(spectra[fall.epoch - 1]["layer/kernel"], EPS)
    )


def test_a_direction_pushed_below_the_threshold_is_not_forgetting():
    """A value near the threshold that noise pushes across at λ = 0 (h = 0) is flagged."""
    s0 = np.array([1.0, 0.5, 0.2, 1.2e-3])
    s1 = np.array([1.0, 0.5, 0.2, 0.8e-3])
    (fall,) = layer_falls({0: {"w": s0}, 1: {"w": s1}}, {0: 0.0, 1: 0.0}, EPS)
    assert (fall.epoch, fall.drop, fall.final_rank) == (1, 1, 3)
    assert fall.earliest == pytest.approx(math.log(1 / EPS) + math.log(1.2e-3))
    assert fall.before_forgetting_allows


def test_refusals_name_what_is_missing_and_the_fix():
    one = {"w": np.array([1.0, 0.1])}
    with pytest.raises(ValueError, match=r"epoch 0.*spectra_every"):
        layer_falls({5: one}, {5: 1.0})
    with pytest.raises(ValueError, match=r"saved epochs \[5\].*rank.every"):
        layer_falls({0: one, 5: one}, {0: 0.0})


def test_a_real_runs_member_spectra_are_its_own_and_the_script_reads_them(tmp_path):
    """Two members in one compiled group: each one's saved spectra give its recorded ranks."""
    config = tiny_config(weight_decays=(0.0, 5e-2), learning_rates=(0.3,))
    config.train.epochs = 3
    _, records = run(tmp_path, "sweep", config)
    panel = load_results(tmp_path / "sweep").panels[0]
    assert len({m["group"] for m in panel.members}) == 1
    for mid in (0, 1):
        spectra = panel.member_spectra(mid)
        assert sorted(spectra) == [0, 1, 2, 3]
        last = next(r for r in records if r["member"] == mid and r["epoch"] == 3)
        for path, sv in spectra[3].items():
            assert eps_rank(sv, EPS) == last["rank"][path][0]  # ε = 1e-3, the first
    assert not np.allclose(
        panel.member_spectra(0)[3]["dense_0/kernel"], panel.member_spectra(1)[3]["dense_0/kernel"]
    )
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "layer_thresholds.py"), str(tmp_path / "sweep"),
         "--member", "1"],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "| dense_0/kernel |" in done.stdout and "layers fell" in done.stdout
    wrong = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "layer_thresholds.py"), str(tmp_path / "sweep"),
         "--member", "7"],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert wrong.returncode == 2 and "holds members [0, 1]" in wrong.stderr
