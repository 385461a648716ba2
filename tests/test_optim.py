"""lowrank.optim: the decay convention, the schedule, and a float64 replay against the
paper's unrolled SGD step, independently of lowrank.theory:
``W_T = Π_t(1−2μ_tλ)·W_0 − Σ_k μ_k Π_{t>k}(1−2μ_tλ)·g_k``."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lowrank import optim

MU, LAM, FACTOR = 0.3, 0.05, 0.1
STEPS_PER_EPOCH, MILESTONES, T = 2, (2, 4), 12  # μ drops at steps 4 and 8


def schedule(schedule_name: str, factor: float = FACTOR) -> list[float]:
    """μ_t for t = 0..T−1, in Python floats."""
    if schedule_name == "constant":
        return [MU] * T
    bounds = [m * STEPS_PER_EPOCH for m in MILESTONES]
    return [MU * factor ** sum(t >= b for b in bounds) for t in range(T)]


def unrolled(w0: np.ndarray, grads: np.ndarray, mus: list[float]) -> np.ndarray:
    """The closed form, in NumPy float64."""
    d = [1.0 - 2.0 * mu * LAM for mu in mus]
    out = np.prod(d) * w0
    for k, (mu, g) in enumerate(zip(mus, grads, strict=True)):
        out = out - mu * np.prod(d[k + 1 :]) * g
    return out


@pytest.mark.parametrize("schedule_name", ["constant", "piecewise"])
def test_float64_replay_matches_the_unrolled_step(schedule_name):
    rng = np.random.default_rng(0)
    w0 = {"kernel": rng.standard_normal((5, 3)), "bias": rng.standard_normal(3)}
    grads = {k: rng.standard_normal((T, *v.shape)) for k, v in w0.items()}
    cfg = optim.default_optim_config()
    cfg.schedule, cfg.milestones, cfg.factor = schedule_name, MILESTONES, FACTOR
    with jax.enable_x64(True):
        tx = optim.make_optimizer(cfg, STEPS_PER_EPOCH)

        @jax.jit
        def replay(params, grads):
            def step(carry, g):
                p, state = carry
                updates, state = tx.update(g, state, p)
                return (optax.apply_updates(p, updates), state), None

            state = optim.with_hparams(
                tx.init(params), learning_rate=MU, weight_decay=LAM, momentum=0.0
            )
            (p, _), _ = jax.lax.scan(step, (params, state), grads)
            return p

        got = jax.device_get(replay(jax.tree.map(jnp.asarray, w0), grads))
    for name, w in w0.items():
        assert got[name].dtype == np.float64
        expected = unrolled(w, grads[name], schedule(schedule_name))
        rel = np.linalg.norm(got[name] - expected) / np.linalg.norm(expected)
        assert rel <= 1e-12, (name, rel)
        if schedule_name == "piecewise":
            # The test sees a float32 schedule: its factor is 1.5e-8 relative off.
            f32 = unrolled(w, grads[name], schedule(schedule_name, float(np.float32(FACTOR))))
            assert np.linalg.norm(got[name] - f32) / np.linalg.norm(expected) > 1e-10


def test_schedule_follows_the_default_float_type():
    m = optim.lr_multiplier("piecewise", MILESTONES, FACTOR, STEPS_PER_EPOCH)
    assert m(jnp.asarray(0)).dtype == jnp.float32
    assert float(m(jnp.asarray(3))) == 1.0 and float(m(jnp.asarray(4))) == np.float32(0.1)
    with jax.enable_x64(True):
        assert m(jnp.asarray(8)).dtype == jnp.float64
        assert float(m(jnp.asarray(8))) == FACTOR**2


def test_decay_convention_without_data_gradient():
    """n steps of zero data gradient give exactly (1 − 2μλ)^n W₀ for each member."""
    mus = jnp.asarray([0.1, 0.3, 0.05])
    lams = jnp.asarray([1e-2, 5e-4, 0.2])
    w0 = {"kernel": jnp.arange(6.0).reshape(2, 3) - 2.5, "bias": jnp.ones(3)}
    n = 7
    cfg = optim.default_optim_config()
    cfg.schedule = "constant"
    tx = optim.make_optimizer(cfg, steps_per_epoch=3)

    def member(mu, lam):
        params = w0
        state = optim.with_hparams(tx.init(w0), learning_rate=mu, weight_decay=lam, momentum=0.0)
        zeros = jax.tree_util.tree_map(jnp.zeros_like, w0)
        for _ in range(n):
            updates, state = tx.update(zeros, state, params)
            params = optax.apply_updates(params, updates)
        return params

    out = jax.jit(jax.vmap(member))(mus, lams)
    for i in range(3):
        factor = (1 - 2 * float(mus[i]) * float(lams[i])) ** n
        for name in ("kernel", "bias"):  # decay on all parameters by default
            np.testing.assert_allclose(out[name][i], factor * w0[name], rtol=2e-6, atol=1e-7)

    cfg.decay_mask = "kernels"
    only_kernels = optim.make_optimizer(cfg, steps_per_epoch=3)
    state = optim.with_hparams(
        only_kernels.init(w0), learning_rate=0.1, weight_decay=0.1, momentum=0.0
    )
    updates, _ = only_kernels.update(jax.tree_util.tree_map(jnp.zeros_like, w0), state, w0)
    np.testing.assert_array_equal(updates["bias"], 0.0)
    np.testing.assert_allclose(updates["kernel"], -0.1 * 2 * 0.1 * w0["kernel"], rtol=1e-6)


def test_schedule_multiplies_the_decay_factor():
    cfg = optim.default_optim_config()
    cfg.milestones = (1, 2)
    cfg.factor = 0.5
    tx = optim.make_optimizer(cfg, steps_per_epoch=2)
    params = {"kernel": jnp.ones((2, 2))}
    state = optim.with_hparams(tx.init(params), learning_rate=0.2, weight_decay=0.25, momentum=0.0)
    for _ in range(6):  # steps 0,1 at μ; 2,3 at μ/2; 4,5 at μ/4
        u, state = tx.update({"kernel": jnp.zeros((2, 2))}, state, params)
        params = optax.apply_updates(params, u)
    expected = math.prod(1 - 2 * mu * 0.25 for mu in (0.2, 0.2, 0.1, 0.1, 0.05, 0.05))
    np.testing.assert_allclose(params["kernel"], expected, rtol=1e-6)
