"""scripts/claim_horizons.py: the paper's own horizons, against the paper's arithmetic."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lowrank.config_files import load_config_file

ROOT = Path(__file__).resolve().parent.parent

# The paper's protocol (§4): CIFAR-10's 50 000 training images, 500 epochs with μ × 0.1 at
# epochs 60, 100 and 200, so Σμ_t = μ₀ · (steps per epoch) · (60 + 40·0.1 + 100·0.01 +
# 300·0.001) = μ₀ · (50 000 // B) · 65.3.
PAPER_MU_EPOCHS = 60 + 40 * 0.1 + 100 * 0.01 + 300 * 0.001


def test_fig2_claim_horizons_are_the_papers_schedule_summed():
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "claim_horizons.py"), "--figs", "2"],
        capture_output=True, text=True, check=True, cwd=ROOT,
    ).stdout  # fmt: skip
    row = next(line for line in out.splitlines() if line.startswith("| fig02 "))
    cells = [c.strip() for c in row.strip("|").split("|")]
    measured = [float(h) for h in cells[5].split(",")]
    # Fig. 2: λ = 5e-4, lines μ, panels B ∈ {4, 8, 16}. Its μ rows (one per B) peak at the
    # largest μ, its B rows (one per μ) at the smallest B.
    lam, mus, batches = 5e-4, (0.01, 0.05, 0.1, 0.5, 1.0), (4, 8, 16)

    def h(mu: float, b: int) -> float:
        return 2 * lam * mu * (50_000 // b) * PAPER_MU_EPOCHS

    expected = sorted([h(max(mus), b) for b in batches] + [h(mu, min(batches)) for mu in mus])
    assert len(measured) == len(expected) == 8
    for got, want in zip(measured, expected, strict=True):
        assert abs(got - want) <= 0.005 * want  # the table prints 3 significant digits
    # Rows reaching ln(1/ε) and 2 ln(1/ε) = 6.91, 13.8 at ε = 1e-3, within the rule's 1 % edge.
    reached = [sum(x >= k * 6.9078 * 0.99 for x in expected) for k in (1, 2)]
    assert [int(cells[2]), int(cells[3])] == reached == [8, 7]


def test_figures_without_claim_rows_are_refused_with_the_reason():
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "claim_horizons.py"), "--figs", "2,15"],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 2
    assert "14–18 do not" in done.stderr


def test_an_open_window_leaves_the_factor_to_the_ceilings(monkeypatch):
    """Fig. 11 quick with the window open above: the λ factor rises until the 2μλ ceiling
    (2e-3·B/8 with BatchNorm) stops it, past the default window's upper edge."""
    import dataclasses
    import math

    from lowrank.engine.members import members
    from lowrank.figures import horizon_rule, panel_configs

    def fig11():
        return load_config_file(ROOT / "configs" / "fig11.py", "quick")

    default = fig11()
    monkeypatch.setattr(
        horizon_rule,
        "DEFAULT_RULE",
        dataclasses.replace(horizon_rule.DEFAULT_RULE, window=(1.0, 1e6)),
    )
    opened = fig11()
    steps = [
        2 * m.learning_rate * m.weight_decay / (2e-3 * m.batch_size / 8)
        for p in panel_configs(opened)
        for m in members(p.config)
    ]
    assert max(steps) <= 1 + 1e-9 and max(steps) > 0.9  # at the ceiling, not past it
    factor = opened.sweep.weight_decays[-1] / default.sweep.weight_decays[-1]
    assert factor > 1
    top = 3 * math.log(1e3) * (1 + horizon_rule.EDGE)
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "claim_horizons.py"), "--scale", "quick",
         "--figs", "11", "--window", "1,inf"],
        capture_output=True, text=True, check=True, cwd=ROOT,
    ).stdout  # fmt: skip
    row = next(line for line in out.splitlines() if line.startswith("| fig11 "))
    assert max(float(h) for h in row.strip("|").split("|")[5].split(",")) > top
    bad = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "claim_horizons.py"), "--window", "3,1"],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert bad.returncode == 2 and "need 0 < LO < HI" in bad.stderr


def test_needed_is_the_smallest_budget_that_brings_half_the_rows_past_the_threshold(
    monkeypatch,
):
    """`--needed` for Fig. 12, checked against quick configs built with another budget by
    the figure's own path (its ``budget`` call), not the script's (the rule's cap)."""
    import math

    from lowrank.figures import horizon_rule, panel_configs
    from lowrank.figures.horizon_rule import claim_rows, member_horizon

    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "claim_horizons.py"), "--needed", "--figs", "12"],
        capture_output=True, text=True, check=True, cwd=ROOT,
    ).stdout  # fmt: skip
    row = next(line for line in out.splitlines() if line.startswith("| fig12 "))
    cells = [c.strip() for c in row.strip("|").split("|")]
    need = int(cells[3])

    def rows_past(epochs: int) -> tuple[int, int]:
        monkeypatch.setattr(horizon_rule, "budget", lambda arg, cpu_epochs: epochs)
        config = load_config_file(ROOT / "configs" / "fig12.py", "quick")
        assert int(config.train.epochs) <= epochs
        threshold = math.log(1e3) * (1 - horizon_rule.EDGE)
        panels = [p.config for p in panel_configs(config)]
        rows = claim_rows(panels)
        past = sum(
            max(member_horizon(p, m, int(p.train.epochs)) for p, m in r) >= threshold for r in rows
        )
        return past, len(rows)

    past, total = rows_past(need)
    before, _ = rows_past(need - 1)
    assert 2 * past >= total > 2 * before
    # The committed run's minutes, scaled by the epochs: the last two cells agree.
    minutes = float(cells[2].split(",")[2])
    assert float(cells[4]) == pytest.approx(minutes * need / int(cells[2].split(",")[0]), abs=0.5)
