"""The forgetting horizon h = 2λΣμ_t (÷(1−β) with coupled momentum): the theory function,
the schedule sum it is fed with, and the engine's per-record value."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pytest
from test_train import tiny_config

from lowrank import engine, io, optim, theory


def per_step_learning_rates(mu, schedule, milestones, factor, steps_per_epoch, epochs):
    """μ_t step by step, from the optimizer's own multiplier function."""
    mult = optim.lr_multiplier(schedule, milestones, factor, steps_per_epoch)
    steps = jnp.arange(steps_per_epoch * epochs)
    return (mu * np.asarray(mult(steps), np.float64)).tolist()


@pytest.mark.parametrize("schedule", ["constant", "piecewise"])
def test_multiplier_sum_is_the_sum_of_the_applied_multipliers(schedule):
    mus = per_step_learning_rates(1.0, schedule, (2, 3), 0.1, 7, 5)
    got = optim.multiplier_sum(schedule, (2, 3), 0.1, 7, 5)
    assert got == pytest.approx(sum(mus), rel=1e-6)  # float32 multipliers in the replay
    assert optim.multiplier_sum(schedule, (2, 3), 0.1, 7, 0) == 0.0


def test_horizon_plain_sgd_momentum_and_decoupled():
    lrs = np.array([0.1] * 50 + [0.01] * 50)
    lam = 5e-3
    h = theory.horizon(lrs.sum(), lam)
    assert h == pytest.approx(2 * lam * 5.5)
    # e^{-h} is the decay product to first order, and never smaller than it.
    product = np.prod(1 - 2 * lrs * lam)
    assert -math.log(product) >= h and -math.log(product) == pytest.approx(h, rel=2e-3)
    # Coupled momentum forgets like SGD at μ/(1−β): the transition's spectral radius.
    beta = 0.9
    rate = theory.horizon(0.01, lam, beta)  # one step at μ = 0.01
    rho = theory.momentum_forgetting_rate(0.01, lam, beta)
    assert rate == pytest.approx(-math.log(rho), rel=1e-2)
    # Decoupled decay: the weight coefficient is Π(1−2μλ) whatever β.
    assert theory.horizon(lrs.sum(), lam, beta, decoupled=True) == pytest.approx(h)
    assert theory.horizon(lrs.sum(), 0.0, beta) == 0.0
    assert theory.horizon_needed(1e-3) == pytest.approx(6.9078, rel=1e-4)
    with pytest.raises(ValueError, match="0 ≤ β < 1"):
        theory.horizon(1.0, lam, 1.0)


def test_every_record_carries_its_horizon(tmp_path):
    c = tiny_config(weight_decays=(0.0, 5e-2), momenta=(0.0, 0.9))
    table = engine.run(c, tmp_path / "w", progress=False)
    records = io.read_jsonl(tmp_path / "w" / "metrics.jsonl")
    steps = 1437 // 32  # tiny_config: digits' training split, B = 32
    for r in records:
        mus = per_step_learning_rates(r["learning_rate"], "piecewise", (1,), 0.5, steps, r["epoch"])
        expected = 2 * r["weight_decay"] * sum(mus) / (1 - r["momentum"])
        assert r["horizon"] == pytest.approx(expected, rel=1e-6, abs=1e-12), r["epoch"]
    last = [r for r in records if r["epoch"] == 2 and r["weight_decay"] == 5e-2]
    assert {round(r["horizon"], 6) for r in last} == {
        round(2 * 5e-2 * 0.1 * steps * 1.5, 6),
        round(2 * 5e-2 * 0.1 * steps * 1.5 / 0.1, 6),
    }
    assert " h " in table.splitlines()[0]


# ------------------------------------------------------------------- the quick-figure rule


def _steps_per_epoch(run_config):
    from lowrank import data

    return data.expected_num_train(run_config.data)


def test_fig06_quick_claim_members_reach_the_target_by_construction():
    from test_figure_configs import load

    from lowrank import figures
    from lowrank.figures import horizon_rule

    full, quick = load(6).get_config(), load(6).get_config("quick")
    rule = horizon_rule.HorizonRule()
    target = rule.target_factor * math.log(1 / quick.figure.epsilon)
    # The grid keeps its ratios and its λ = 0 control.
    factor = quick.sweep.weight_decays[-1] / full.sweep.weight_decays[-1]
    np.testing.assert_allclose(
        quick.sweep.weight_decays, np.asarray(full.sweep.weight_decays) * factor, rtol=1e-5
    )
    assert quick.sweep.weight_decays[0] == 0.0
    for p in figures.validate_figure(quick):
        c = p.config
        o = c.optim
        best = 0.0
        for m in engine.members(c):
            per_step = 2 * m.learning_rate * m.weight_decay / (1 - m.momentum)
            assert per_step <= rule.max_decay_step * (1 + 1e-9)
            steps = _steps_per_epoch(c) // m.batch_size
            mus = per_step_learning_rates(
                m.learning_rate, o.schedule, o.milestones, o.factor, steps, c.train.epochs
            )
            best = max(best, 2 * m.weight_decay * sum(mus) / (1 - m.momentum))
        assert best >= target * (1 - 1e-6), p.label  # the panel's claim member
    assert "Horizon rule" in quick.figure.reduced and "56 epochs instead of 500" in (
        quick.figure.reduced
    )


def test_rule_adds_epochs_where_the_decay_ceiling_binds_and_reports_a_shortfall():
    from test_figure_configs import load

    from lowrank.figures import horizon_rule

    c = load(6).get_config("quick")
    c.optim.schedule = "constant"  # no milestone inside the longer runs asked for below
    # A ceiling 10× lower: λ cannot carry the horizon, so the rule asks for more epochs.
    strict = horizon_rule.HorizonRule(max_decay_step=2e-4, max_epochs=2000)
    choice = horizon_rule.choose(c, strict)
    assert choice.epochs > c.train.epochs and min(choice.claim_horizons) >= choice.target
    # With too few epochs allowed it takes the ceiling and says what was reached.
    short = horizon_rule.choose(c, horizon_rule.HorizonRule(max_decay_step=2e-4, max_epochs=60))
    assert short.epochs == 60 and min(short.claim_horizons) < short.target
    assert "claim members' h per panel" in short.describe()
