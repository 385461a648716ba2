"""``train.budget = "steps"``: every batch size takes the same SGD steps (lowrank.budget)."""

from __future__ import annotations

import pytest
from test_train import run, tiny_config

from lowrank import budget, engine
from lowrank.config import ConfigError, validate


def steps_config(**changes):
    """B = 32 and 64 on 1024 digits: 32 and 16 steps per epoch, a milestone at epoch 1."""
    c = tiny_config(batch_sizes=(32, 64), seeds=(0, 1))
    c.data.train_subset = 1024
    c.train.budget = "steps"
    c.checkpoint.every = 1
    for k, v in changes.items():
        c[k.split(".")[0]][k.split(".")[1]] = v
    return c


def _by_group(records):
    out = {}
    for r in records:
        out.setdefault(r["group"], []).append(r)
    return out


def test_every_batch_size_takes_the_same_steps_schedule_and_horizon(tmp_path):
    config = steps_config()
    _, records = run(tmp_path, "steps", config)
    groups = _by_group(records)
    # B = 64 runs twice the epochs of B = 32: the same 64 steps.
    assert max(r["epoch"] for r in groups[0]) == 2 and max(r["epoch"] for r in groups[1]) == 4
    measured = {g: sorted({r["step"] for r in rs if "rank" in r}) for g, rs in groups.items()}
    assert measured[0] == measured[1] == [0, 32, 64]  # recorded at the same step counts
    at = {(r["group"], r["step"], r["seed"]): r for r in records if "rank" in r}
    for step in (0, 32, 64):  # the milestone (epoch 1 of B = 32) moved with the steps
        assert at[0, step, 0]["lr_now"] == pytest.approx(at[1, step, 0]["lr_now"])
        assert at[0, step, 0]["horizon"] == pytest.approx(at[1, step, 0]["horizon"], rel=1e-9)
    # The horizon rule's accounting agrees with the records.
    from lowrank.figures.horizon_rule import member_horizon

    for m in engine.members(config):
        final = at[m.group, 64, m.seed]["horizon"]
        assert member_horizon(config, m, config.train.epochs) == pytest.approx(final, rel=1e-9)


def test_the_smallest_batch_size_runs_exactly_as_under_the_epochs_budget(tmp_path):
    _, steps = run(tmp_path, "steps", steps_config())
    _, epochs = run(tmp_path, "epochs", steps_config(**{"train.budget": "epochs"}))
    same = [(r["epoch"], r["seed"], r["test_accuracy"], r["avg_rank@0.001"])
            for r in steps if r["group"] == 0 and "rank" in r]  # fmt: skip
    assert same == [
        (r["epoch"], r["seed"], r["test_accuracy"], r["avg_rank@0.001"])
        for r in epochs
        if r["group"] == 0 and "rank" in r
    ]
    # Under the epochs budget B = 64 stops at half the steps.
    assert max(r["step"] for r in epochs if r["group"] == 1) == 32


def test_checkpoint_ids_grow_across_groups_of_different_lengths():
    from importlib import import_module

    ids = import_module("lowrank.engine.run")._CheckpointIds  # the package's run is the function
    config = steps_config()
    first, second = ids(config, 0), ids(config, 1)
    assert first(budget.group_epochs(config, 32)) < second(0)
    assert second(budget.group_epochs(config, 64)) == 2 * first.span - 1


def test_group_config_scales_every_epoch_count_and_nothing_else():
    config = steps_config(**{"checkpoint.every": 3})
    config.optim.milestones = (1, 2)
    gc = budget.group_config(config, 64)
    assert (gc.train.epochs, gc.train.eval_every, gc.rank.every) == (4, 2, 2)
    assert (gc.rank.spectra_every, gc.checkpoint.every) == (2, 6)
    assert tuple(gc.optim.milestones) == (2, 4)
    assert gc.sweep.to_dict() == config.sweep.to_dict() and gc.optim.factor == config.optim.factor
    assert budget.group_config(config, 32) is config
    config.train.budget = "epochs"
    assert budget.group_config(config, 64) is config


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"train.budget": "samples"}, r"train.budget='samples': choose 'epochs'"),
        ({"sweep.batch_sizes": (32, 48)}, r"B=\[48\] is not a multiple of the smallest"),
        ({"data.train_subset": 1000}, r"use a training set of a multiple of 64 .*train_subset=960"),
    ],
)
def test_a_bad_budget_is_refused_with_the_fix(changes, message, tmp_path):
    config = steps_config(**changes)
    with pytest.raises(ConfigError, match=message):
        validate(config)
    with pytest.raises(ConfigError, match=message):  # before anything is written
        engine.run(config, tmp_path / "w", progress=False)
    assert not (tmp_path / "w").exists()
