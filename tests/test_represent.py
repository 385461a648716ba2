"""Representation ranks: each measured layer's outputs on a probe batch (train.represent)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_models import TINY, TINY_SHAPE, _config
from test_train import run, tiny_config

from lowrank import rank, train
from lowrank.config import ConfigError, validate
from lowrank.models import MODEL_NAMES, build_model
from lowrank.train.represent import layer_outputs


def _tiny(name: str, seed: int = 0):
    model = build_model(_config(name, **TINY[name]), num_classes=5)
    x = jax.random.normal(jax.random.PRNGKey(seed), (6, *TINY_SHAPE))
    variables = model.init({"params": jax.random.PRNGKey(1), "dropout": jax.random.PRNGKey(2)},
                           x, train=False)  # fmt: skip
    return model, dict(variables), x


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_measured_layer_has_its_output_matrix_of_the_weights_width(name):
    model, variables, x = _tiny(name)
    outputs = layer_outputs(variables, x, model=model)
    weights = rank.weight_matrices(variables["params"])
    assert outputs.keys() == weights.keys()
    for path, h in outputs.items():
        assert h.ndim == 2 and h.shape[1] == weights[path].shape[0], path
        assert h.shape[0] % x.shape[0] == 0  # examples × positions (or tokens)
        # rank(X Wᵀ) ≤ rank(W) (+ 1 for a bias)
        assert rank.matrix_numerical_rank(h) <= rank.matrix_numerical_rank(weights[path]) + 1


def test_a_dense_layers_output_is_its_input_times_its_kernel():
    model, variables, x = _tiny("mlp_bn")
    outputs = layer_outputs(variables, x, model=model)
    first = variables["params"]["dense_0"]  # sees the flattened image
    np.testing.assert_allclose(
        outputs["dense_0/kernel"],
        x.reshape(6, -1) @ first["kernel"] + first.get("bias", 0.0),
        rtol=1e-5,
        atol=1e-5,
    )


def test_low_rank_weights_give_low_rank_features():
    model, variables, x = _tiny("mlp_bn")
    params = jax.tree_util.tree_map(lambda a: a, variables["params"])
    layer = "dense_1"
    k = params[layer]["kernel"]
    u, s, vt = jnp.linalg.svd(k, full_matrices=False)
    params[layer] = dict(params[layer], kernel=(u[:, :2] * s[:2]) @ vt[:2])  # rank 2
    spec = rank.spectra_of(layer_outputs(dict(variables, params=params), x, model=model))
    ranks = rank.measures(spec, (1e-3,))["per_layer"]["threshold_rank"]
    assert float(ranks[f"{layer}/kernel"][0]) <= 3  # rank 2, + 1 for a bias


@pytest.mark.parametrize("vectorize", ["vmap", "loop"])
def test_runs_record_representation_ranks_where_they_measure_the_weights(tmp_path, vectorize):
    c = tiny_config(weight_decays=(0.0, 1e-2), vectorize=vectorize)
    c.rank.probe_size = 64
    c.rank.every = 2
    c.train.epochs = 3
    _, records = run(tmp_path, vectorize, c)
    measured = [r for r in records if "rank" in r]
    assert [r["epoch"] for r in measured] == [0, 0, 2, 2, 3, 3]
    assert all("repr_avg_rank@0.001" in r for r in measured)
    assert not any("repr_avg_rank@0.001" in r for r in records if "rank" not in r)
    for r in measured:
        assert r["repr_rank"].keys() == r["rank"].keys()
        for ranks in r["repr_rank"].values():  # ≤ the 64 probe rows and the width
            assert 1 <= ranks[0] <= 64


def test_the_member_loop_and_vmap_agree_on_representation_ranks(tmp_path):
    got = {}
    for vectorize in ("vmap", "loop"):
        c = tiny_config(weight_decays=(0.0, 1e-2), vectorize=vectorize)
        c.rank.probe_size = 64
        _, records = run(tmp_path, vectorize, c)
        got[vectorize] = [r["repr_avg_stable_rank"] for r in records if "rank" in r]
    np.testing.assert_allclose(got["vmap"], got["loop"], rtol=1e-4)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (-1, r"rank.probe_size=-1: must be an integer ≥ 0 \(0: no representation ranks\)"),
        (5000, r"rank.probe_size=5000: more probe images than the 1437 training examples"),
    ],
)
def test_a_bad_probe_size_is_refused(value, message):
    c = tiny_config()
    c.rank.probe_size = value
    with pytest.raises(ConfigError, match=message):
        validate(c)


def test_probe_indices_are_distinct_and_fixed_by_the_seed():
    a = train.probe_indices(100, 30, seed=3)
    assert len(set(a.tolist())) == 30 and a.max() < 100
    np.testing.assert_array_equal(a, train.probe_indices(100, 30, seed=3))
    assert not np.array_equal(a, train.probe_indices(100, 30, seed=4))
    with pytest.raises(ValueError, match=r"rank.probe_size=0: must be in 1\.\.100"):
        train.probe_indices(100, 0, seed=0)


def test_tall_outputs_keep_their_singular_values_through_the_qr():
    from lowrank.train.represent import _square

    h = jax.random.normal(jax.random.PRNGKey(0), (4096, 12)) * jnp.logspace(0, -4, 12)
    np.testing.assert_allclose(
        jnp.linalg.svd(_square(h), compute_uv=False),
        np.linalg.svd(np.asarray(h, np.float64), compute_uv=False),
        rtol=1e-4,
    )
    assert _square(h).shape == (12, 12) and _square(h.T).shape == (12, 4096)
