"""Every figure config (1–18) validates at full and quick scale; quick variants are offline."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from lowrank import figures
from lowrank.config import ConfigError, base_config
from lowrank.config_files import load_config_file, load_module
from lowrank.figures import horizon_rule

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
NUMBERS = range(1, 19)

# The paper's panels per figure (the paper's figures) and what the lines vary.
PANELS = {1: 4, 2: 3, 3: 3, 4: 3, 5: 3, 6: 3, 7: 3, 8: 3, 9: 3, 10: 3, 11: 3, 12: 3,
          13: 3, 14: 4, 15: 4, 16: 1, 17: 1, 18: 1}  # fmt: skip
MODELS = {1: "resnet18", 2: "resnet18", 3: "resnet18", 4: "resnet18", 5: "mlp_bn",
          6: "mlp_bn", 7: "mlp_bn", 8: "res_bn", 9: "vit", 10: "vit", 11: "resnet18",
          12: "vgg16", 13: "resnet18", 14: "resnet18", 15: "vgg16", 16: "resnet18",
          17: "vgg16", 18: "mlp_bn"}  # fmt: skip


def load(number: int):
    return load_module(CONFIGS / f"fig{number:02d}.py")


@pytest.mark.parametrize("number", NUMBERS)
def test_full_scale_is_the_paper_setting(number):
    module = load(number)
    c = module.get_config()
    panels = figures.validate_figure(c)
    assert c.figure.number == number and c.figure.scale == "full"
    assert len(panels) == PANELS[number]
    assert c.model.name == MODELS[number]
    datasets = {p.config.data.name for p in panels}
    if number == 13:
        assert datasets == {"mnist", "fashion_mnist", "svhn_cropped"}
    else:
        assert datasets == {"cifar10"}
    for p in panels:
        assert p.config.train.epochs == (200 if c.model.name == "vit" else 500)
        assert p.config.augment.crop and p.config.augment.flip and p.config.augment.rotate
        assert len(p.config.sweep.seeds) >= 3
    doc = module.__doc__
    assert f"--fig {number} --out" in doc and f"--fig {number} --quick" in doc
    assert "GPU-hours" in doc and "{full}" not in doc


@pytest.mark.parametrize("number", NUMBERS)
def test_quick_variant_is_offline_and_keeps_the_grid(number):
    module = load(number)
    full = figures.validate_figure(module.get_config())
    quick_config = module.get_config("quick")
    quick = figures.validate_figure(quick_config)
    assert quick_config.figure.scale == "quick"
    assert quick_config.figure.reduced  # says what was reduced and why
    # Under the horizon rule (figures.horizon_rule) every λ is scaled by one factor, every μ
    # by another (time compression), and the run may be longer; otherwise the quick variant
    # keeps λ and μ and runs at most 15 epochs.
    ruled = "Horizon rule" in quick_config.figure.reduced
    for p in quick:
        assert p.config.data.name in figures.OFFLINE_DATASETS
        assert p.config.train.epochs <= (horizon_rule.HorizonRule().max_epochs if ruled else 15)
    if number != 13:  # Fig. 13's panels are the datasets, which change offline
        assert len(quick) == len(full)
        for f, q in zip(full, quick, strict=True):
            assert f.vary == q.vary and f.label == q.label
            for field in ("momenta", "batch_sizes"):
                assert tuple(f.config.sweep[field]) == tuple(q.config.sweep[field]), field
            for field in ("learning_rates", "weight_decays"):  # the grid's ratios stay
                on_full = np.asarray(f.config.sweep[field])
                on_quick = np.asarray(q.config.sweep[field])
                factor = on_quick.max() / on_full.max() if ruled else 1.0
                np.testing.assert_allclose(on_quick, on_full * factor, rtol=1e-5)


@pytest.mark.parametrize("number", NUMBERS)
def test_quick_variant_keeps_the_schedule_in_steps(number):
    """A quick epoch is a fraction of a paper epoch: its milestones scale by the ratio of
    training-set sizes, so that μ drops after as many SGD steps of the same B as in the
    paper (and a quick run shorter than that stays in the constant-μ phase)."""
    from lowrank.data import spec as data_spec

    module = load(number)
    full, quick = module.get_config(), module.get_config("quick")
    ratio = data_spec.expected_num_train(full.data) / data_spec.expected_num_train(quick.data)
    assert ratio > 1  # every quick variant trains on fewer examples than the paper
    assert len(quick.optim.milestones) == len(full.optim.milestones)
    for f, q in zip(full.optim.milestones, quick.optim.milestones, strict=True):
        assert abs(q - f * ratio) <= 0.5  # rounded to whole epochs
    assert quick.optim.factor == full.optim.factor


@pytest.mark.parametrize("number", NUMBERS)
def test_long_variant_is_the_quick_one_with_the_rules_own_cap(number):
    """ "long": the quick variant's data, model and grid ratios, the rule's epoch cap
    (not the 2-core-CPU budget), and every claim row it places at least as in "quick"."""
    module = load(number)
    quick, long = module.get_config("quick"), module.get_config("long")
    figures.validate_figure(long)
    rule = horizon_rule.HorizonRule()
    assert long.train.epochs == horizon_rule.epoch_cap(long, rule, None) >= quick.train.epochs
    assert (quick.figure.scale, long.figure.scale) == ("quick", "long")
    assert long.data.to_dict() == quick.data.to_dict()
    assert long.model.to_dict() == quick.model.to_dict()
    assert long.optim.milestones == quick.optim.milestones
    placed = [
        int(re.search(r"; (\d+) of \d+ (claim rows|panels)", c.figure.reduced).group(1))
        for c in (quick, long)
    ]
    assert placed[1] >= placed[0]


def test_unknown_argument_is_refused():
    with pytest.raises(ValueError, match="unknown argument"):
        load(6).get_config("huge")


def test_figure_validation_names_bad_fields():
    c = base_config("mlp_bn")
    c.figure = figures.figure_section(
        6,
        "curvez",
        "weight_decay",
        [
            figures.panel("typo", {"sweep.batch_sizez": (4,)}),
        ],
        scale="quick",
        title="t",
    )
    with pytest.raises(ConfigError) as e:
        figures.validate_figure(c)
    assert "figure.kind='curvez'" in str(e.value) and "batch_sizez" in str(e.value)

    c.figure.kind = "curves"
    c.figure.panels = (figures.panel("B=4", {"sweep.learning_rates": (100.0,)}),)
    c.sweep.weight_decays = (0.1,)
    with pytest.raises(ConfigError, match="2μλ"):
        figures.validate_figure(c)

    c.sweep.weight_decays = (0.0,)
    c.data.name = "cifar10"
    with pytest.raises(ConfigError, match="offline data"):
        figures.validate_figure(c)


def test_panels_expand_without_the_figure_section():
    c = load(13).get_config("quick")
    panels = figures.panel_configs(c)
    assert [p.config.data.name for p in panels] == ["fashion_mnist", "digits"]
    assert panels[0].config.sweep.seeds == (0,) and panels[1].config.sweep.seeds == (0, 1, 2)
    assert all("figure" not in p.config for p in panels)
    assert "figure" in c  # the figure config itself is unchanged


def test_estimate_counts_members_and_steps():
    c = load(6).get_config("quick")
    est, e = figures.estimate(c), c.train.epochs  # the horizon rule's epochs
    # 3 panels × (5 λ × 3 seeds); e epochs of 2000 examples at B = 4, 8, 16.
    assert est["members"] == 45 and est["member_epochs"] == 45 * e
    assert est["sequential_steps"] == e * (500 + 250 + 125)
    # Under train.budget="steps" every B takes the steps of the smallest: epochs ∝ B.
    c = load_config_file(CONFIGS / "equal_steps.py")
    est, e = figures.estimate(c), c.train.epochs
    # 4 panels × 5 B × 3 seeds; 2048 examples, B = 4 … 64 (31 = 1 + 2 + 4 + 8 + 16).
    assert est["member_epochs"] == 2 * 15 * e + 2 * 3 * e * 31
    assert est["sequential_steps"] == 2 * e * (512 + 256 + 128 + 64 + 32) + 2 * 5 * e * 512
    assert 0.2 < est["forward_mflop"] < 0.5  # MLP-BN-10-100 on 28×28 inputs
    assert est["members_copied"] == 0
    # Fig. 1: panels (c) and (d) copy their B = 8 and 16 groups (12 members each) from
    # panels (a) and (b); what is left is trained: (a), (b) and the B = 32, 64 groups.
    c = load(1).get_config("quick")
    est, e = figures.estimate(c), c.train.epochs
    assert est["members"] == 144 and est["members_copied"] == 48
    assert est["member_epochs"] == 144 * e
    steps = {b: 1437 // b for b in (8, 16, 32, 64)}
    assert est["sequential_steps"] == e * (steps[8] + steps[16] + 2 * (steps[32] + steps[64]))
