"""The beyond-the-paper study configs: each states its horizons, and they hold."""

from __future__ import annotations

import numpy as np
import pytest
from test_adam import _study

from lowrank import engine, theory
from lowrank.figures.horizon_rule import member_horizon


def _horizons(panel) -> dict[tuple, float]:
    c = panel.config
    return {
        (m.batch_size, m.weight_decay): member_horizon(c, m, c.train.epochs)
        for m in engine.members(c)
    }


def test_equal_steps_gives_every_batch_size_the_horizon_of_the_smallest():
    epochs, steps, *controls = _study("equal_steps")
    assert steps.config.train.budget == "steps" and epochs.config.train.budget == "epochs"
    at_steps, at_epochs = _horizons(steps), _horizons(epochs)
    target = 2 * theory.horizon_needed(1e-3)
    assert min(at_steps.values()) == pytest.approx(max(at_steps.values()))  # all equal
    assert max(at_steps.values()) == pytest.approx(target, rel=1e-2)  # 2 ln(1/ε)
    for (b, lam), h in at_epochs.items():  # equal epochs: h ∝ 1/B
        assert h == pytest.approx(at_steps[b, lam] * 4 / b)
    assert all(set(_horizons(p).values()) == {0.0} for p in controls)  # λ = 0


def test_optimizers_batch_panels_match_2_mu_lambda_and_reach_one_horizon():
    panels = _study("optimizers_batch")
    assert [p.config.optim.name for p in panels] == ["sgd", "adamw", "adam"]
    per_step = [{2 * m.learning_rate * m.weight_decay for m in engine.members(p.config)}
                for p in panels]  # fmt: skip
    assert all(len(s) == 1 for s in per_step)
    np.testing.assert_allclose([s.pop() for s in per_step], 1e-3)
    sgd = _horizons(panels[0])
    assert min(sgd.values()) == pytest.approx(max(sgd.values()))


def test_optimizers_conv_places_the_largest_horizon_at_the_windows_centre():
    panels = _study("optimizers_conv")
    ln = theory.horizon_needed(1e-3)
    assert max(_horizons(panels[0]).values()) == pytest.approx(np.sqrt(3) * ln, rel=2e-2)
    sgd = sorted(2 * m.learning_rate * m.weight_decay for m in engine.members(panels[0].config))
    adam = sorted(2 * m.learning_rate * m.weight_decay for m in engine.members(panels[1].config))
    np.testing.assert_allclose(adam, sgd, rtol=1e-5)


def test_representation_study_is_fig06_quick_with_a_probe():
    from test_figure_configs import load

    from lowrank import figures

    panels = _study("representation")
    fig06 = figures.panel_configs(load(6).get_config("quick"))
    for p, q in zip(panels, fig06, strict=True):
        assert p.config.rank.probe_size == 512
        p.config.rank.probe_size = q.config.rank.probe_size
        assert p.config.to_json_best_effort() == q.config.to_json_best_effort()


def test_optimizers_conv_batch_reaches_the_windows_centre_at_every_batch_size():
    panels = _study("optimizers_conv_batch")
    assert [p.config.optim.name for p in panels] == ["sgd", "adamw", "adam"]
    ln = theory.horizon_needed(1e-3)
    for p in panels[:2]:  # SGD and AdamW: the horizon applies
        hs = list(_horizons(p).values())
        assert min(hs) == pytest.approx(max(hs)) == pytest.approx(np.sqrt(3) * ln, rel=2e-2)
    per_step = {
        2 * m.learning_rate * m.weight_decay for p in panels for m in engine.members(p.config)
    }
    assert len({round(x, 12) for x in per_step}) == 1
