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


def _claim_horizons(quick, rule):
    """Each panel's largest horizon and the largest per-step ratio to the B-aware ceiling,
    recomputed from the per-step learning rates (independently of the rule's code)."""
    from lowrank import figures

    claims, worst = [], 0.0
    for p in figures.validate_figure(quick):
        c, o, best = p.config, p.config.optim, 0.0
        for m in engine.members(c):
            per_step = 2 * m.learning_rate * m.weight_decay / (1 - m.momentum)
            worst = max(worst, per_step / (rule.max_decay_step * m.batch_size / 8))
            steps = _steps_per_epoch(c) // m.batch_size
            mus = per_step_learning_rates(
                m.learning_rate, o.schedule, o.milestones, o.factor, steps, c.train.epochs
            )
            best = max(best, 2 * m.weight_decay * sum(mus) / (1 - m.momentum))
        claims.append(best)
    return claims, worst


@pytest.mark.parametrize("number", [2, 5, 6, 7, 8, 11, 13, 14, 15, 16, 17, 18])
def test_quick_claim_members_reach_the_target_or_the_rule_binds(number):
    from test_figure_configs import load

    from lowrank.figures import horizon_rule

    full, quick = load(number).get_config(), load(number).get_config("quick")
    rule = horizon_rule.HorizonRule()
    target = rule.target_factor * math.log(1 / quick.figure.epsilon)
    # The grid keeps its ratios and its λ = 0 control.
    factor = quick.sweep.weight_decays[-1] / full.sweep.weight_decays[-1]
    np.testing.assert_allclose(
        quick.sweep.weight_decays, np.asarray(full.sweep.weight_decays) * factor, rtol=1e-5
    )
    assert (0.0 in quick.sweep.weight_decays) == (0.0 in full.sweep.weight_decays)
    claims, worst = _claim_horizons(quick, rule)
    assert worst <= 1 + 1e-6  # no member above the ceiling for its B
    # The run stays in the constant-μ phase: no milestone inside it.
    assert quick.train.epochs <= min(quick.optim.milestones)
    if min(claims) < target * (1 - 1e-6):  # short: only at the ceiling (and an epoch cap)
        assert worst >= 0.99
        assert "not reached everywhere" in quick.figure.reduced
    assert f"{quick.train.epochs} epochs instead of" in quick.figure.reduced
    if quick.figure.kind in ("norm_ratios", "bound"):  # per-epoch quantities
        assert quick.rank.every == 1
    assert "Horizon rule" in quick.figure.reduced


def test_decay_ceiling_grows_with_the_batch_size():
    from lowrank.figures import horizon_rule

    rule = horizon_rule.HorizonRule()
    assert horizon_rule.decay_step_ceiling(rule, 8) == rule.max_decay_step
    assert horizon_rule.decay_step_ceiling(rule, 32) == pytest.approx(4 * rule.max_decay_step)


def test_budget_and_first_milestone_cap_the_epochs():
    from test_figure_configs import load

    from lowrank.figures import horizon_rule

    c = load(6).get_config("quick")
    rule = horizon_rule.HorizonRule()
    assert horizon_rule.epoch_cap(c, rule, None) == min(c.optim.milestones)
    assert horizon_rule.epoch_cap(c, rule, 20) == 20
    budgeted = horizon_rule.choose(c, rule, max_epochs=20)
    assert budgeted.epochs <= 20
    c.optim.schedule = "constant"
    assert horizon_rule.epoch_cap(c, rule, None) == rule.max_epochs


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
