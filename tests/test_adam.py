"""Adam (coupled L2) and AdamW (decoupled) members: the update, its mapping to optax's and
PyTorch's ``weight_decay``, what carries over from the theory, and the refusals."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from test_train import tiny_config

from lowrank import config as config_lib
from lowrank import engine, io, optim
from lowrank.errors import ConfigError

MU, LAM, B1, B2, EPS = 0.01, 0.05, 0.9, 0.999, 1e-8


def ours(name: str) -> optax.GradientTransformation:
    cfg = optim.default_optim_config()
    cfg.name, cfg.schedule = name, "constant"
    tx = optim.make_optimizer(cfg, steps_per_epoch=1)
    init = tx.init

    def init_with_hparams(params):
        return optim.with_hparams(init(params), learning_rate=MU, weight_decay=LAM, momentum=0.0)

    return optax.GradientTransformation(init_with_hparams, tx.update)


def run(tx: optax.GradientTransformation, w0: np.ndarray, grads: np.ndarray) -> np.ndarray:
    w, state = jnp.asarray(w0), tx.init(jnp.asarray(w0))
    for g in grads:
        updates, state = tx.update(jnp.asarray(g), state, w)
        w = optax.apply_updates(w, updates)
    return np.asarray(w)


@pytest.fixture
def problem():
    rng = np.random.default_rng(0)
    return rng.standard_normal((6, 5)).astype(np.float32), rng.standard_normal((8, 6, 5)).astype(
        np.float32
    )


def test_adamw_is_optax_adamw_with_weight_decay_two_lambda(problem):
    w0, grads = problem
    reference = optax.adamw(MU, b1=B1, b2=B2, eps=EPS, weight_decay=2 * LAM)
    np.testing.assert_allclose(run(ours("adamw"), w0, grads), run(reference, w0, grads), rtol=1e-6)


def test_adam_is_l2_into_adams_moments(problem):
    w0, grads = problem
    reference = optax.chain(
        optax.add_decayed_weights(2 * LAM), optax.adam(MU, b1=B1, b2=B2, eps=EPS)
    )
    np.testing.assert_allclose(run(ours("adam"), w0, grads), run(reference, w0, grads), rtol=1e-6)


def test_only_adamw_shrinks_an_unfed_direction_by_one_minus_two_mu_lambda(problem):
    # With zero data gradients Adam's update of the data is 0, so AdamW's step is exactly
    # the paper's shrink (the forgetting horizon applies); coupled L2 feeds 2λW through
    # Adam's scaling instead, which moves each weight by about μ whatever its size.
    w0, _ = problem
    zeros = np.zeros((5, *w0.shape), np.float32)
    np.testing.assert_allclose(
        run(ours("adamw"), w0, zeros), (1 - 2 * MU * LAM) ** 5 * w0, rtol=1e-6
    )
    coupled = run(ours("adam"), w0, zeros)
    assert not np.allclose(coupled, (1 - 2 * MU * LAM) ** 5 * w0, rtol=1e-3)
    # About μ·sign(W) per step, whatever |W| (Adam normalizes 2λW by its own size).
    np.testing.assert_allclose(np.abs(w0 - coupled), 5 * MU, rtol=0.1)


def _refused(c) -> str:
    with pytest.raises(ConfigError) as e:
        config_lib.validate(c)
    return str(e.value)


def test_bad_adam_settings_are_refused_with_the_fix():
    c = tiny_config(momenta=(0.0, 0.9))
    c.optim.name = "adamw"
    assert "Adam's is optim.adam_b1. Use sweep.momenta=(0.0,)" in _refused(c)
    c = tiny_config()
    c.optim.name = "lion"
    assert "optim.name='lion': choose one of ('sgd', 'adam', 'adamw')" in _refused(c)
    c = tiny_config()
    c.optim.name, c.optim.adam_b2 = "adam", 1.0
    assert "optim.adam_b2=1.0: must be in [0, 1)" in _refused(c)
    c = tiny_config()
    c.optim.name, c.record.steps = "adam", 2
    assert "record with 'adamw' or 'sgd', or set record.steps=0" in _refused(c)
    c = tiny_config()
    c.optim.name, c.optim.decoupled = "adam", True
    assert "choose 'adamw' for decoupled decay" in _refused(c)


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_adam_members_train_and_record_what_carries_over(tmp_path, name):
    c = tiny_config(learning_rates=(1e-3, 3e-3))
    c.optim.name = name
    engine.run(c, tmp_path / name, progress=False)
    records = io.read_jsonl(tmp_path / name / "metrics.jsonl")
    last = [r for r in records if r["epoch"] == c.train.epochs]
    assert len(last) == 2 and all(np.isfinite(r["test_loss"]) for r in last)
    assert all(r["bound"] is None for r in last)  # Theorem 3.3 is SGD's
    steps = 1437 // 32  # digits' training split at B = 32; μ × 0.5 after epoch 1
    for r in last:
        expected = 2 * 1e-2 * r["learning_rate"] * steps * 1.5
        assert r["horizon"] is None if name == "adam" else r["horizon"] == pytest.approx(expected)
    # Members differ only in μ: a larger Adam step must change the weights more.
    assert last[0]["avg_stable_rank"] != last[1]["avg_stable_rank"]


def test_default_is_the_papers_sgd():
    assert optim.default_optim_config().name == "sgd"
    assert jax.tree.leaves(ours("adamw").init(jnp.zeros(3)))  # builds


def _study(name: str):
    """The panels of ``configs/{name}.py``, validated."""
    from pathlib import Path

    from lowrank import figures
    from lowrank.config_files import load_config_file

    path = Path(__file__).parent.parent / "configs" / f"{name}.py"
    return figures.validate_figure(load_config_file(path))


def test_optimizers_study_matches_two_mu_lambda_and_reuses_fig06():
    from test_figure_configs import load

    from lowrank import figures

    panels = _study("optimizers")
    names = [p.config.optim.name for p in panels]
    assert names == ["sgd", "adamw", "adam"]
    per_step = {
        p.config.optim.name: [
            2 * m.learning_rate * m.weight_decay for m in engine.members(p.config)
        ]
        for p in panels
    }
    np.testing.assert_allclose(per_step["adamw"], per_step["sgd"], rtol=1e-5)
    np.testing.assert_allclose(per_step["adam"], per_step["sgd"], rtol=1e-5)
    # Fig. 6 quick's B = 8 panel, with the λ grid the first horizon rule gave it and the 60
    # epochs Fig. 6 quick ran before its schedule counted steps (evaluated every 5).
    fig06_b8 = figures.panel_configs(load(6).get_config("quick"))[1].config
    fig06_b8.sweep.weight_decays = panels[0].config.sweep.weight_decays
    fig06_b8.train.epochs = 60
    fig06_b8.train.eval_every = fig06_b8.rank.every = 5
    assert panels[0].config.to_json_best_effort() == fig06_b8.to_json_best_effort()


def test_full_batch_study_matches_horizons_across_batch_sizes():
    from lowrank import data

    panels = _study("full_batch")
    n = data.expected_num_train(panels[0].config.data)
    assert panels[-1].config.sweep.batch_sizes == (n,)  # full batch: one step per epoch
    horizons = []
    for p in panels:
        c = p.config
        steps = n // c.sweep.batch_sizes[0]
        h = sorted({2 * lam * 0.1 * steps * c.train.epochs for lam in c.sweep.weight_decays})
        horizons.append(h)
    for h in horizons[1:]:
        np.testing.assert_allclose(h, horizons[0], rtol=1e-3)


def test_adamw_forgetting_identity_holds_on_a_recorded_run(tmp_path):
    """W_T = Π(1 − 2μ_tλ) W_{T−n} − Σ μ_t Π(…) u_t with u Adam's direction, recomputed
    from the moments the optimizer held before each recorded step."""
    c = tiny_config(weight_decays=(5e-2,))
    c.optim.name, c.sweep.learning_rates = "adamw", (1e-2,)
    c.train.epochs, c.optim.milestones = 1, (1,)
    c.record.steps, c.record.windows = 8, (1, 8)
    engine.run(c, tmp_path / "rec", progress=False)
    checks = io.read_jsonl(tmp_path / "rec" / "theory.jsonl")
    assert [r["n"] for r in checks] == [1, 8]
    for r in checks:
        assert r["max_residual"] <= 1e-4  # float32 identity on the real run
        for layer in r["layers"].values():
            assert layer["rank_bound"] is None and layer["lemma32_frobenius"] is None
            assert layer["rank_update"] >= 1
    assert checks[0]["weight_coefficient"] > checks[1]["weight_coefficient"]  # Π(1 − 2μλ)
