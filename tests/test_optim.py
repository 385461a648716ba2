"""lowrank.optim replayed in float64 against the paper's unrolled SGD step, independently
of lowrank.theory: ``W_T = Π_t(1−2μ_tλ)·W_0 − Σ_k μ_k Π_{t>k}(1−2μ_tλ)·g_k``."""

from __future__ import annotations

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
        tx = optim.make_optimizer(cfg, STEPS_PER_EPOCH)(
            learning_rate=MU, weight_decay=LAM, momentum=0.0
        )

        @jax.jit
        def replay(params, grads):
            def step(carry, g):
                p, state = carry
                updates, state = tx.update(g, state, p)
                return (optax.apply_updates(p, updates), state), None

            (p, _), _ = jax.lax.scan(step, (params, tx.init(params)), grads)
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
