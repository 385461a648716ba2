"""Config validation: every bad field is refused before anything loads or compiles."""

from __future__ import annotations

import pytest

from lowrank import data, engine
from lowrank.config import ConfigError, base_config, validate


def config_with(**fields):
    c = base_config("mlp_bn")
    c.data.name = "digits"
    c.data.source = "sklearn"
    for dotted, value in fields.items():
        *path, last = dotted.split("__")
        node = c
        for p in path:
            node = node[p]
        node[last] = value
    return c


BAD = [
    ({"sweep__learning_rates": (0.1, 0.0)}, r"sweep.learning_rates contains μ=0.0: μ must be > 0"),
    ({"sweep__learning_rates": (-1.0,)}, r"μ=-1.0: μ must be > 0"),
    ({"sweep__weight_decays": (-1e-3,)}, r"λ=-0.001: λ must be ≥ 0"),
    ({"sweep__learning_rates": (2.0,), "sweep__weight_decays": (0.25,)}, r"2μλ=1 ≥ 1"),
    ({"sweep__momenta": (1.0,)}, r"β=1.0: β must be in \[0, 1\)"),
    ({"sweep__batch_sizes": (0,)}, r"B=0: B must be an integer ≥ 1"),
    ({"sweep__seeds": ()}, r"sweep.seeds=\(\): must be a non-empty list"),
    ({"sweep__weight_decays": ()}, r"sweep.weight_decays=\(\): must be a non-empty list"),
    ({"rank__epsilons": (1e-3, 1.5)}, r"ε=1.5: ε must be in \(0, 1\)"),
    ({"rank__epsilons": (0.0,)}, r"ε=0.0: ε must be in \(0, 1\)"),
    ({"rank__epsilons": ()}, r"rank.epsilons is empty"),
    ({"rank__normalization": "nuclear"}, r"rank.normalization='nuclear'"),
    ({"rank__preset": "mine"}, r"rank.preset='mine'"),
    ({"rank__every": 0}, r"rank.every=0"),
    ({"train__epochs": 0}, r"train.epochs=0: must be an integer ≥ 1"),
    ({"train__precision": "fp8"}, r"train.precision='fp8'"),
    ({"train__epoch_loop": "python"}, r"train.epoch_loop='python': choose one of"),
    ({"sweep__vectorize": "pmap"}, r"sweep.vectorize='pmap': choose one of"),
    ({"sweep__threads": -1}, r"sweep.threads=-1: give a whole number ≥ 0"),
    ({"optim__schedule": "cosine"}, r"optim.schedule='cosine'"),
    ({"optim__milestones": (100, 60)}, r"optim.milestones=\(100, 60\)"),
    ({"optim__decay_mask": "bias"}, r"optim.decay_mask='bias'"),
    ({"data__name": "imagenet"}, r"imagenet"),
    ({"model__name": "resnet50"}, r"resnet50"),
]


@pytest.mark.parametrize(("fields", "message"), BAD, ids=[m for _, m in BAD])
def test_each_bad_field_is_named(fields, message):
    with pytest.raises(ValueError, match=message):
        validate(config_with(**fields))


def test_all_bad_fields_are_listed_at_once():
    c = config_with(sweep__learning_rates=(0.0,), rank__epsilons=(2.0,), train__epochs=0)
    with pytest.raises(ConfigError) as err:
        validate(c)
    text = str(err.value)
    assert "μ=0.0" in text and "ε=2.0" in text and "train.epochs=0" in text


def test_batch_size_larger_than_training_set_is_refused_before_loading(tmp_path, monkeypatch):
    def no_loading(cfg):
        raise AssertionError("the data were loaded before the config was refused")

    monkeypatch.setattr(data, "load_dataset", no_loading)
    c = config_with(sweep__batch_sizes=(16, 5000))
    with pytest.raises(ConfigError, match=r"B=\[5000\]: larger than the training set \(1437"):
        engine.run(c, tmp_path / "w", progress=False)
    c = config_with(data__train_subset=2000)
    with pytest.raises(ConfigError, match=r"data.train_subset=2000 exceeds the 1437 training"):
        engine.run(c, tmp_path / "w", progress=False)
    assert not (tmp_path / "w").exists()  # nothing written, nothing lost


def test_default_config_is_valid_and_has_the_promised_grid():
    from pathlib import Path

    from lowrank.config_files import load_config_file

    path = Path(__file__).parent.parent / "configs" / "default.py"
    c = load_config_file(path)
    validate(c)
    assert c.model.name == "mlp_bn" and c.data.name == "fashion_mnist"
    assert 0.0 in c.sweep.weight_decays and len(c.sweep.weight_decays) >= 3
    assert len(c.sweep.seeds) >= 2
    with pytest.raises(ValueError, match="unknown argument"):
        load_config_file(path, "huge")
    with pytest.raises(FileNotFoundError, match=r"no config file at .*nowhere\.py"):
        load_config_file(path.with_name("nowhere.py"))


def test_a_config_file_without_get_config_is_refused_with_what_it_needs(tmp_path):
    from lowrank.config_files import load_config_file

    path = tmp_path / "not_a_config.py"
    path.write_text("X = 1\n")
    with pytest.raises(AttributeError, match=r"not_a_config\.py defines no get_config"):
        load_config_file(path)
