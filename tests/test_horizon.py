"""The forgetting horizon h = 2λΣμ_t (÷(1−β) with coupled momentum): the theory function,
the schedule sum it is fed with, and the engine's per-record value."""

from __future__ import annotations

import dataclasses
import math

import jax.numpy as jnp
import numpy as np
import pytest
from test_train import tiny_config

from lowrank import engine, io, models, optim, theory


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


def _member_horizons(quick, rule):
    """Every member's final horizon as rows of ``final_table``'s form, and the largest
    per-step ratio to the B-aware ceiling, recomputed from the per-step learning rates
    (independently of the rule's code)."""
    from lowrank import figures

    rows, worst = [], 0.0
    for p in figures.validate_figure(quick):
        c, o = p.config, p.config.optim
        for m in engine.members(c):
            per_step = 2 * m.learning_rate * m.weight_decay / (1 - m.momentum)
            # The ceiling grows ∝ B with BatchNorm only.
            scale = m.batch_size / 8 if c.model.name not in models.WITHOUT_BATCHNORM else 1
            worst = max(worst, per_step / (rule.max_decay_step * scale))
            steps = _steps_per_epoch(c) // m.batch_size
            mus = per_step_learning_rates(
                m.learning_rate, o.schedule, o.milestones, o.factor, steps, c.train.epochs
            )
            h = 2 * m.weight_decay * sum(mus) / (1 - m.momentum)
            rows.append({"learning_rate": m.learning_rate, "weight_decay": m.weight_decay,
                         "momentum": m.momentum, "batch_size": m.batch_size, "seed": m.seed,
                         "dataset": c.data.name, "optimizer": c.optim.name,
                         "budget": c.train.budget, "value": h,
                         "panel": p.name})  # fmt: skip
    return rows, worst


def _claim_member_horizons(rows):
    """The claim member's h of each claim row the figure's trends.txt will judge (each
    panel's largest h where the figure has none)."""
    from lowrank.analysis.trends import trends_of_rows

    claims = [max(t.mean_rank) for t in trends_of_rows(rows) if t.predicted in (-1, 1)]
    if claims:
        return claims
    return [max(r["value"] for r in rows if r["panel"] == p) for p in {r["panel"] for r in rows}]


@pytest.mark.parametrize("number", range(1, 19))  # every figure is under the rule
def test_quick_claim_members_land_in_the_window_the_rule_states(number):
    from test_figure_configs import load

    from lowrank.figures import horizon_rule

    full, quick = load(number).get_config(), load(number).get_config("quick")
    rule = horizon_rule.HorizonRule()
    # The grid keeps its ratios and its λ = 0 control.
    factor = quick.sweep.weight_decays[-1] / full.sweep.weight_decays[-1]
    np.testing.assert_allclose(
        quick.sweep.weight_decays, np.asarray(full.sweep.weight_decays) * factor, rtol=1e-5
    )
    assert (0.0 in quick.sweep.weight_decays) == (0.0 in full.sweep.weight_decays)
    # Every μ by one factor too (time compression, 1 unless λ's ceiling binds).
    full_mus = [mu for p in horizon_rule._panel_configs(full) for mu in p.sweep.learning_rates]
    quick_mus = [mu for p in horizon_rule._panel_configs(quick) for mu in p.sweep.learning_rates]
    mu_factor = max(quick_mus) / max(full_mus)  # a quick figure may keep fewer panels
    for mu in quick_mus:
        assert min(abs(mu / mu_factor / f - 1) for f in full_mus) < 1e-5, mu
    if mu_factor > 1 + 1e-6:
        assert max(quick_mus) <= rule.max_learning_rate
        assert f"every μ × {mu_factor:.3g}" in quick.figure.reduced
    rows, worst = _member_horizons(quick, rule)
    assert worst <= 1 + 1e-6  # no member above the ceiling for its B
    ceiling = (
        rule.max_weight_decay_without_batchnorm
        if quick.model.name in models.WITHOUT_BATCHNORM
        else rule.max_weight_decay
    )
    assert max(r["weight_decay"] for r in rows) <= ceiling * (1 + 1e-6)
    # The run stays in the constant-μ phase: no milestone inside it.
    assert quick.train.epochs <= min(quick.optim.milestones)
    # The rows it says it placed are inside the window, by the trends' own grouping.
    ln = math.log(1 / quick.figure.epsilon)
    lo, hi = rule.window[0] * ln, rule.window[1] * ln
    claims = _claim_member_horizons(rows)
    placed = sum(lo * 0.99 <= h <= hi * 1.01 for h in claims)
    assert f"{placed} of {len(claims)} " in quick.figure.reduced
    if placed == 0:  # nothing placed: only where the ceilings and the epoch cap bind
        at_lam_ceiling = max(r["weight_decay"] for r in rows) >= 0.99 * ceiling
        at_epoch_cap = quick.train.epochs == horizon_rule.epoch_cap(quick, rule, None)
        assert at_epoch_cap or worst >= 0.99 or at_lam_ceiling
    assert f"{quick.train.epochs} epochs instead of" in quick.figure.reduced
    if quick.figure.kind in ("norm_ratios", "bound"):  # per-epoch quantities
        assert quick.rank.every == 1
    assert "Horizon rule" in quick.figure.reduced


def test_one_factor_places_the_most_rows_with_the_widest_margin():
    from lowrank.figures.horizon_rule import _best_factor

    window = (7.0, 21.0)  # 3× wide
    # Rows 2× apart: the best factor holds two of them, centred (geometric mean 12.12).
    (count, margin), factor = _best_factor([1.0, 2.0, 4.0, 8.0], window, math.inf)
    assert count == 2 and margin > 0
    placed = sorted(u * factor for u in (1.0, 2.0, 4.0, 8.0) if 7 <= u * factor <= 21)
    assert math.sqrt(placed[0] * placed[1]) == pytest.approx(math.sqrt(7 * 21), rel=1e-6)
    # Three rows spanning exactly the window fit only at its edges.
    (count, margin), factor = _best_factor([1.0, 2.0, 3.0], window, math.inf)
    assert count == 3 and margin == 0 and factor == pytest.approx(7.0)
    # A ceiling below every placing factor: the ceiling, as close as it gets.
    (count, margin), factor = _best_factor([1.0, 2.0], window, 2.0)
    assert count == 0 and margin < 0 and factor == pytest.approx(2.0)


def test_decay_ceiling_grows_with_the_batch_size():
    from lowrank.figures import horizon_rule

    rule = horizon_rule.HorizonRule()
    assert horizon_rule.decay_step_ceiling(rule, 8) == rule.max_decay_step
    assert horizon_rule.decay_step_ceiling(rule, 32) == pytest.approx(4 * rule.max_decay_step)
    # Without BatchNorm (the ViT) it does not grow with B.
    assert horizon_rule.decay_step_ceiling(rule, 128, batchnorm=False) == rule.max_decay_step


def test_budget_and_first_milestone_cap_the_epochs():
    from test_figure_configs import load

    from lowrank.figures import horizon_rule

    c = load(6).get_config("quick")
    rule = horizon_rule.HorizonRule()
    # Fig. 6 quick's first milestone is the paper's in steps (60 CIFAR-10 epochs = 1500
    # epochs of its 2000 images), past the rule's own cap.
    assert horizon_rule.epoch_cap(c, rule, None) == rule.max_epochs < min(c.optim.milestones)
    c.optim.milestones = (60, 100)
    assert horizon_rule.epoch_cap(c, rule, None) == 60
    assert horizon_rule.epoch_cap(c, rule, 20) == 20
    budgeted = horizon_rule.choose(c, rule, max_epochs=20)
    assert budgeted.epochs <= 20
    c.optim.schedule = "constant"
    assert horizon_rule.epoch_cap(c, rule, None) == rule.max_epochs


def test_rule_spends_the_epoch_budget_and_reports_what_the_ceilings_leave():
    from test_figure_configs import load

    from lowrank.figures import horizon_rule

    c = load(6).get_config("quick")
    c.optim.schedule = "constant"  # no milestone inside the longer runs asked for below
    base = horizon_rule.choose(c, horizon_rule.HorizonRule(max_epochs=120))
    # The horizon comes from steps: every epoch allowed, and half the λ factor of 60 epochs.
    assert base.epochs == 120 and base.placed > 0
    half = horizon_rule.choose(c, horizon_rule.HorizonRule(max_epochs=60))
    assert base.factor == pytest.approx(half.factor / 2, rel=2e-2)
    assert base.placed == half.placed
    # A ceiling that leaves too little decay: the ceiling, and the count it reaches.
    short = horizon_rule.choose(c, horizon_rule.HorizonRule(max_decay_step=2e-5, max_epochs=60))
    worst = max(
        2 * m.learning_rate * m.weight_decay * short.factor / (2e-5 * m.batch_size / 8)
        for p in horizon_rule._panel_configs(c)
        for m in engine.members(p)
    )
    assert short.placed < base.placed and worst == pytest.approx(1, rel=1e-2)
    assert f"{short.placed} of {len(short.claim_horizons)} claim rows" in short.describe()


def _quick_at_paper_values(number):
    """Fig. ``number``'s quick config with the paper's μ and λ back (the rule undone)."""
    from test_figure_configs import load

    full, quick = load(number).get_config(), load(number).get_config("quick")
    for key in ("learning_rates", "weight_decays"):
        quick.sweep[key] = full.sweep[key]
    keys = ("sweep.learning_rates", "sweep.weight_decays")
    paper = {
        p["label"]: {k: v for k, v in p["set"].items() if k in keys} for p in full.figure.panels
    }
    quick.figure.panels = tuple(
        dict(p, set={**p["set"], **paper[p["label"]]}) for p in quick.figure.panels
    )
    return quick


def test_time_compression_brings_every_learning_rate_under_its_ceiling():
    from lowrank.figures import horizon_rule

    rule = horizon_rule.HorizonRule()
    # Fig. 3: μ = 1.5 at B = 8 is above the ceiling (1): every μ × 2/3, λ carries the rest.
    paper = _quick_at_paper_values(3)
    got = horizon_rule.choose(paper, rule, max_epochs=paper.train.epochs)
    uncompressed = horizon_rule.choose(
        paper, dataclasses.replace(rule, max_learning_rate=math.inf), max_epochs=paper.train.epochs
    )
    assert uncompressed.lr_factor == 1 and got.lr_factor == pytest.approx(1 / 1.5, rel=1e-2)
    assert got.lr_factor * 1.5 <= rule.max_learning_rate
    # The same horizons (to the rounding of the factors) and so the same 2μλ.
    np.testing.assert_allclose(got.claim_horizons, uncompressed.claim_horizons, rtol=1e-2)
    assert got.placed == uncompressed.placed
    # Below B = 8 the ceiling shrinks with B: Fig. 2's μ = 1 at B = 4 becomes 0.5.
    two = _quick_at_paper_values(2)
    assert horizon_rule.choose(two, rule, max_epochs=two.train.epochs).lr_factor == 0.5
    # The applied configs: every member's μ within its ceiling.
    for number in (2, 3, 7, 8, 11):
        for p in horizon_rule._panel_configs(_load(number).get_config("quick")):
            for m in engine.members(p):
                top = horizon_rule.learning_rate_ceiling(rule, p.model.name, m.batch_size)
                assert m.learning_rate <= top * (1 + 1e-6), number
    # A family with its own ceiling: RES-BN's μ = 0.1 at B = 4 becomes 0.025 (× 0.25).
    assert horizon_rule.learning_rate_ceiling(rule, "resnet18", 4) == 0.5
    assert horizon_rule.learning_rate_ceiling(rule, "res_bn", 8) == 0.05
    assert horizon_rule.learning_rate_ceiling(rule, "res_bn", 64) == 0.1
    eight = horizon_rule._panel_configs(_load(8).get_config("quick"))
    assert [p.sweep.learning_rates for p in eight] == [(0.00625,), (0.0125,), (0.025,)]
    # MLP-BN's: Fig. 7's μ = 0.3 at B = 4 becomes 0.15 (× 0.5); Fig. 6's μ = 0.1 stays.
    assert horizon_rule.learning_rate_ceiling(rule, "mlp_bn", 4) == pytest.approx(0.15)
    seven = horizon_rule._panel_configs(_load(7).get_config("quick"))
    assert [p.sweep.learning_rates for p in seven] == [(0.015,), (0.05,), (0.15,)]
    assert _load(6).get_config("quick").sweep.learning_rates == (0.1,)


def test_time_compression_past_the_weight_decay_ceiling_only_where_it_places_more():
    from lowrank.figures import horizon_rule

    rule = horizon_rule.HorizonRule()
    # Fig. 12: λ alone stops at its ceiling with no row placed; every μ × k places all three.
    paper = _quick_at_paper_values(12)
    got = horizon_rule.choose(paper, rule, max_epochs=paper.train.epochs)
    largest = max(max(p.sweep.weight_decays) for p in horizon_rule._panel_configs(paper))
    assert got.factor * largest <= rule.max_weight_decay
    assert got.factor * largest == pytest.approx(rule.max_weight_decay, rel=1e-2)
    assert got.lr_factor > 1 and got.placed == 3
    without = horizon_rule.choose(
        paper, dataclasses.replace(rule, max_learning_rate=0.01), max_epochs=paper.train.epochs
    )
    assert without.lr_factor == 1 and without.placed == 0
    # Fig. 4: λ at its ceiling too, but the 2μλ ceiling leaves μ no room to place another
    # row, so the paper's μ stay.
    four = _load(4).get_config("quick")
    assert horizon_rule.choose(four, rule, max_epochs=four.train.epochs).lr_factor == 1
    four = _load(4)
    assert [
        p.sweep.learning_rates for p in horizon_rule._panel_configs(four.get_config("quick"))
    ] == [p.sweep.learning_rates for p in horizon_rule._panel_configs(four.get_config())]
    # Adaptive optimizers' steps are not μ × gradient: no compression there.
    adam = _load(12).get_config("quick")
    adam.optim.name = "adamw"
    assert horizon_rule._learning_rate_room(horizon_rule._panel_configs(adam), rule) == 1.0


def _load(number):
    from test_figure_configs import load

    return load(number)


def test_most_placeable_is_the_largest_run_of_rows_within_the_windows_ratio():
    from lowrank.figures.horizon_rule import most_placeable

    # A 30× λ grid at B = 4, 8, 16: rows 1, 1/3, 1/10, 1/30 and 1/2, 1/4 of the top.
    rows = [1.0, 1 / 3, 0.1, 1 / 30, 0.5, 0.25]
    assert most_placeable(rows) == 3  # 1, 1/2, 1/3: no 3× span holds four
    assert most_placeable(rows, (1.0, 4.0)) == 4  # 1 … 1/4
    assert most_placeable([0.0, 0.0]) == 0  # λ = 0 members never reach any window
    # Only the ratio matters.
    assert most_placeable([h * 7 for h in rows], (2.0, 6.0)) == most_placeable(rows)
