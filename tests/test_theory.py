"""Tests of lowrank.theory: the forgetting identity on a real training run (plain SGD,
momentum, decoupled decay; float32 and x64), Lemma 3.1 and 3.2 on that run, and the bound
formulas against hand-computed values.

The run: a tiny MLP-BN (784 → 64 → 64 → 10) trained on 512 Fashion-MNIST images (sklearn's
digits if the Debian files are absent) with B=4 for 30 steps; the learning rate drops ×0.1
four steps before the end, inside the recorded window of n=8 steps. B·n = 32 < 64, so the
Lemma 3.1 bound on rank U_{T,n} is below the matrices' rank. Parameters are drawn on the
host (compiling ``model.init`` costs seconds); SGD and coupled momentum share one compiled
program (μ, λ, β live in the optimizer state). x64 runs inside ``jax.enable_x64(True)``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lowrank import data, optim, rank, theory
from lowrank import train as train_lib
from lowrank.analysis.gradient_ranks import gradient_ranks
from lowrank.models import build_model, default_model_config
from lowrank.models.structure import patch_counts

T, B, N = 24, 4, 24  # steps, batch size, recorded window (all steps: one loop to compile)
DROP = T - 4  # the step from which μ is ×0.1 (inside the window)
N_RANK = 8  # window for Lemma 3.1: B·n = 32 < 64, the hidden width
MU, LAM, BETA = 0.5, 0.05, 0.9  # 2μλ = 0.05: the decay is visible within the window
WIDTH = 64


# ----------------------------------------------------------------------------- setup


@pytest.fixture(scope="module")
def dataset():
    cfg = data.default_data_config()
    cfg.train_subset = 512
    try:
        ds = data.load_dataset(cfg)
    except data.DataNotFoundError:
        cfg = data.default_data_config()
        cfg.name = "digits"
        ds = data.load_dataset(cfg)
    x = data.standardize(ds.train_images, ds.mean, ds.std)
    return x, jnp.asarray(ds.train_labels)


def host_variables(model, input_shape, seed=0):
    """LeCun-normal kernels, zero biases, unit BN scales, drawn with NumPy."""
    shapes = jax.eval_shape(
        lambda: model.init(jax.random.key(0), jnp.zeros((1, *input_shape)), train=False)
    )
    rng = np.random.default_rng(seed)

    def draw(path, s):
        name = rank.path_str(path).split("/")[-1]
        if name == "kernel":
            fan_in = math.prod(s.shape[:-1])
            return jnp.asarray(rng.standard_normal(s.shape) / math.sqrt(fan_in), jnp.float32)
        return jnp.full(s.shape, 1.0 if name in ("scale", "var") else 0.0, jnp.float32)

    return jax.tree_util.tree_map_with_path(draw, shapes)


@pytest.fixture(scope="module")
def setup(dataset):
    x, _ = dataset
    cfg = default_model_config("mlp_bn")
    cfg.width, cfg.depth = WIDTH, 2
    model = build_model(cfg, 10)
    ocfg = optim.default_optim_config()
    ocfg.milestones = (DROP,)  # steps_per_epoch=1 below: milestones count steps
    lr_fn = train_lib.InjectedLearningRate(
        optim.lr_multiplier(ocfg.schedule, ocfg.milestones, ocfg.factor, 1)
    )
    txs = {}
    for decoupled in (False, True):
        ocfg.decoupled = decoupled
        txs[decoupled] = optim.make_optimizer(ocfg, 1)
    variables = host_variables(model, x.shape[1:])
    batches = data.epoch_permutation(jax.random.key(0), x.shape[0], B)[:T]
    return model, txs, lr_fn, variables, batches


_RUNS: dict = {}


def train(setup, dataset, beta, decoupled, dtype):
    """Trains (once per setting) and returns (W_T matrices, window, variables_T)."""
    key = (beta, decoupled, jnp.dtype(dtype).name)
    if key not in _RUNS:
        model, txs, lr_fn, variables, batches = setup
        x, y = dataset
        tx = txs[decoupled]
        v = train_lib.cast_tree(variables, dtype)
        opt_state = tx.init(v["params"])
        hp = {"learning_rate": MU, "weight_decay": LAM, "momentum": beta}
        opt_state = opt_state._replace(
            hyperparams={k: jnp.asarray(h, dtype) for k, h in hp.items()}
        )
        state, window, losses = train_lib.train_and_record(
            train_lib.state_from_variables(v, opt_state), x.astype(dtype), y, batches,
            model=model, tx=tx, record=train_lib.Recording(N, lr_fn),
        )  # fmt: skip
        assert np.all(np.isfinite(np.asarray(losses)))
        vt = {"params": state.params, "batch_stats": state.batch_stats}
        _RUNS[key] = (rank.weight_matrices(vt["params"]), theory.Window(**window), vt)
    return _RUNS[key]


VARIANTS = [(0.0, False), (BETA, False), (BETA, True)]
IDS = ["sgd", "momentum", "decoupled"]


# ------------------------------------------------------------------- identity residual


@pytest.mark.parametrize(("beta", "decoupled"), VARIANTS, ids=IDS)
def test_identity_float32(setup, dataset, beta, decoupled):
    w_end, window, _ = train(setup, dataset, beta, decoupled, jnp.float32)
    lrs = np.asarray(window.learning_rates)
    # The schedule step really is inside the window.
    np.testing.assert_allclose(lrs, [MU] * (N - 4) + [MU * 0.1] * 4, rtol=1e-6)
    dec = theory.decompose_window(window, LAM, beta, decoupled)
    res = dec.residual(w_end)
    assert set(res) == set(w_end)
    for path, r in res.items():
        assert float(r) <= 1e-4, (path, float(r))
    # The public functions on the same window, and a shorter window (masked path).
    w0 = {p: w[0] for p, w in window.weights.items()}
    if beta == 0:
        direct = theory.forgetting_decomposition(w0, window.grads, lrs, LAM)
    else:
        v0 = {p: v[0] for p, v in window.velocities.items()}
        direct = theory.momentum_decomposition(w0, v0, window.grads, lrs, LAM, beta, decoupled)
    for path, r in direct.residual(w_end).items():
        assert float(r) <= 1e-4, (path, float(r))
    short = theory.decompose_window(window, LAM, beta, decoupled, n=3)
    for path, r in short.residual(w_end).items():
        assert float(r) <= 1e-4, (path, float(r))


@pytest.mark.parametrize(("beta", "decoupled"), VARIANTS, ids=IDS)
def test_identity_x64(setup, dataset, beta, decoupled):
    with jax.enable_x64(True):
        w_end, window, _ = train(setup, dataset, beta, decoupled, jnp.float64)
        assert window.learning_rates.dtype == jnp.float64
        for n in (N, 3):
            dec = theory.decompose_window(window, LAM, beta, decoupled, n=n)
            for path, r in dec.residual(w_end).items():
                assert float(r) <= 1e-10, (path, n, float(r))
        # Negative controls: a constant μ (ignoring the schedule step) or, with momentum,
        # the paper's plain-SGD identity do not reproduce W_T.
        flat = theory.Window(window.weights, window.velocities, window.grads,
                             jnp.full((N,), MU, jnp.float64))  # fmt: skip
        wrong = theory.decompose_window(flat, LAM, beta, decoupled).residual(w_end)
        assert min(float(r) for r in wrong.values()) > 1e-6
        if beta:
            sgd = theory.decompose_window(window, LAM, 0.0).residual(w_end)
            assert min(float(r) for r in sgd.values()) > 1e-3


def test_sgd_is_momentum_with_beta_zero():
    rng = np.random.default_rng(0)
    w, v = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    g = rng.standard_normal((6, 5, 3))
    lrs = np.array([0.3, 0.3, 0.2, 0.03, 0.03, 0.01])
    with jax.enable_x64(True):
        a = theory.forgetting_decomposition(w, g, lrs, 0.1)
        b = theory.momentum_decomposition(w, v, g, lrs, 0.1, 0.0)
        np.testing.assert_allclose(b.coefficients, a.coefficients, rtol=1e-14)
        np.testing.assert_allclose(b.weight_coefficient, a.weight_coefficient, rtol=1e-14)
        assert float(b.velocity_coefficient) == 0.0
        np.testing.assert_allclose(b.reconstruction(), a.reconstruction(), rtol=1e-13)


def test_hand_computed_coefficients():
    lam, beta = 0.1, 0.5
    mus = [0.2, 0.1]
    d = [1 - 2 * m * lam for m in mus]
    assert theory.decay_factor(0.2, 0.1) == pytest.approx(0.96)
    assert float(theory.decay_product(jnp.array(mus), lam)) == pytest.approx(d[0] * d[1])
    assert float(theory.decay_product(jnp.array([0.1] * 5), 0.05)) == pytest.approx(0.99**5)
    a, gamma = theory.sgd_coefficients(jnp.array(mus), lam)
    assert float(a) == pytest.approx(d[0] * d[1])
    np.testing.assert_allclose(gamma, [-mus[0] * d[1], -mus[1]], rtol=1e-6)
    # Coupled momentum, two steps by hand: W2 = d1 W1 − μ1β v1 − μ1 g1, v1 = βv0 + g0 + 2λW0,
    # W1 = d0 W0 − μ0β v0 − μ0 g0.
    a, b, gamma = theory.momentum_coefficients(jnp.array(mus), lam, beta)
    a_hand = d[1] * d[0] - mus[1] * beta * 2 * lam
    b_hand = -d[1] * mus[0] * beta - mus[1] * beta * beta
    g0_hand = -d[1] * mus[0] - mus[1] * beta
    np.testing.assert_allclose([a, b], [a_hand, b_hand], rtol=1e-6)
    np.testing.assert_allclose(gamma, [g0_hand, -mus[1]], rtol=1e-6)
    # Decoupled: the weight coefficient is ∏ d_t, as without momentum.
    a, b, gamma = theory.momentum_coefficients(jnp.array(mus), lam, beta, decoupled=True)
    assert float(a) == pytest.approx(d[0] * d[1])
    assert float(b) == pytest.approx(-d[1] * mus[0] * beta - mus[1] * beta * beta)
    np.testing.assert_allclose(gamma, [-d[1] * mus[0] - mus[1] * beta, -mus[1]], rtol=1e-6)


def test_momentum_forgetting_rate():
    mu, lam, beta = 0.1, 5e-3, 0.9
    rho = theory.momentum_forgetting_rate(mu, 5e-4, beta)
    # ≈ 1 − 2μλ/(1−β) for 2μλ ≪ (1−β)²: momentum forgets like SGD with learning rate
    # μ/(1−β) (the next term is −(2μλ)²β/(1−β)³ ≈ −1e-5 here).
    assert rho == pytest.approx(1 - 2 * mu * 5e-4 / (1 - beta), abs=2e-5)
    # Decoupled: the eigenvalues are 1−2μλ and β.
    assert theory.momentum_forgetting_rate(mu, lam, beta, decoupled=True) == pytest.approx(
        max(1 - 2 * mu * lam, beta)
    )
    assert theory.momentum_forgetting_rate(mu, lam, 0.0) == pytest.approx(1 - 2 * mu * lam)
    # The weight coefficient a_n shrinks by ρ per step once the transient has died out.
    rho = theory.momentum_forgetting_rate(mu, lam, beta)
    with jax.enable_x64(True):
        a, _, _ = theory.coefficient_table(jnp.full((300,), mu), lam, beta)
        assert float(a[0] / a[1]) == pytest.approx(rho, rel=1e-9)


def test_coefficient_table_matches_each_window():
    lrs = jnp.array([0.3, 0.3, 0.2, 0.03, 0.03])
    for beta, decoupled in ((0.0, False), (0.9, False), (0.9, True)):
        a_all, b_all, gamma = theory.coefficient_table(lrs, 0.1, beta, decoupled)
        for n in (1, 3, 5):
            a, b, g = theory.momentum_coefficients(lrs[-n:], 0.1, beta, decoupled)
            np.testing.assert_allclose([a_all[-n], b_all[-n]], [a, b], rtol=1e-6, atol=1e-9)
            np.testing.assert_allclose(gamma[-n:], g, rtol=1e-6)


def test_shape_errors():
    with pytest.raises(ValueError, match=r"oldest first with shape \(n, \*W.shape\)"):
        theory.forgetting_decomposition(jnp.zeros((3, 2)), jnp.zeros((4, 2, 3)), jnp.ones(4), 0.1)


# ----------------------------------------------------------------------------- Lemma 3.1


def test_lemma31_on_the_run(setup, dataset):
    model, *_ = setup
    x, y = dataset
    w_end, window, vt = train(setup, dataset, 0.0, False, jnp.float32)
    m = patch_counts(model, x.shape[1:])
    ranks = gradient_ranks(model, vt, x[:B], y[:B])
    dec = theory.decompose_window(window, LAM, n=N_RANK)
    for path, info in ranks.items():
        shape = info["shape"]
        bounds = theory.gradient_rank_bounds(m[path], B, N_RANK)
        assert info["m_l"] == m[path] == 1  # Dense layers on vectors
        assert np.all(info["per_sample"] <= bounds["per_sample"]), path
        assert np.all(info["per_sample"] >= 1)  # a real, non-zero gradient
        assert info["minibatch"] <= bounds["minibatch"], path
        # Minibatch gradients recorded in training mode (BatchNorm with batch statistics).
        for g in np.asarray(window.grads[path]):
            assert rank.matrix_numerical_rank(g) <= bounds["minibatch"], path
        r_u = rank.matrix_numerical_rank(np.asarray(dec.update[path]))
        assert r_u <= bounds["window"], (path, r_u)
        if path != "classifier/kernel":
            # Non-trivial: the bound is below both dimensions, and W_T itself exceeds it.
            assert bounds["window"] < min(shape)
            assert rank.matrix_numerical_rank(np.asarray(w_end[path])) > bounds["window"]


def test_gradient_rank_bounds_values():
    assert theory.gradient_rank_bounds(3, 8, 5) == {
        "per_sample": 3,
        "minibatch": 24,
        "window": 120,
    }
    assert theory.gradient_rank_bounds(16, 4, 2, shape=(64, 288)) == {
        "per_sample": 16,
        "minibatch": 64,
        "window": 64,
    }
    with pytest.raises(ValueError, match="batch_size=0"):
        theory.gradient_rank_bounds(1, 0)


def test_numerical_rank():
    rng = np.random.default_rng(1)
    m = (rng.standard_normal((20, 3)) @ rng.standard_normal((3, 30))).astype(np.float32)
    assert rank.matrix_numerical_rank(m) == 3
    assert rank.matrix_numerical_rank(m.T) == 3
    # A float64 copy of float32 data: its rounding noise is rank unless eps is float32's.
    assert rank.matrix_numerical_rank(m.astype(np.float64)) > 3
    assert rank.matrix_numerical_rank(m.astype(np.float64), dtype=np.float32) == 3
    assert rank.matrix_numerical_rank(np.zeros((4, 5))) == 0
    # The float32 route (float64 Gram eigenvalues) against an SVD.
    w = rng.standard_normal((12, 30)).astype(np.float32)
    ref = np.linalg.svd(w.astype(np.float64), compute_uv=False)
    np.testing.assert_allclose(rank.host_singular_values(w), ref, rtol=1e-6, atol=1e-6 * ref[0])
    np.testing.assert_allclose(rank.host_singular_values(w.T), ref, rtol=1e-6, atol=1e-6 * ref[0])


# ----------------------------------------------------------------------------- Lemma 3.2


def test_nearest_low_rank_distance_hand_values():
    sv = jnp.array([0.8, 0.5, 0.3, 0.1])
    assert float(theory.nearest_low_rank_distance(sv, 1)) == pytest.approx(math.sqrt(0.35))
    assert float(theory.nearest_low_rank_distance(sv, 2, "spectral")) == pytest.approx(0.3)
    assert float(theory.nearest_low_rank_distance(sv[::-1], 3, "spectral")) == pytest.approx(0.1)
    assert float(theory.nearest_low_rank_distance(sv, 4)) == 0.0
    assert float(theory.nearest_low_rank_distance(sv, 9, "spectral")) == 0.0
    assert float(theory.lemma32_bound(0.5, 3.0, 2.0)) == pytest.approx(0.75)
    # Eckart–Young against an explicit truncated SVD.
    rng = np.random.default_rng(2)
    w = rng.standard_normal((7, 5))
    u, s, vt = np.linalg.svd(w, full_matrices=False)
    best = (u[:, :2] * s[:2]) @ vt[:2]
    d = float(theory.nearest_low_rank_distance(s, 2))
    assert d == pytest.approx(np.linalg.norm(w - best), rel=1e-5)


@pytest.mark.parametrize(("beta", "decoupled"), VARIANTS, ids=IDS)
def test_lemma32_on_the_run(setup, dataset, beta, decoupled):
    w_end, window, _ = train(setup, dataset, beta, decoupled, jnp.float32)
    for n in (2, N_RANK):
        dec = theory.decompose_window(window, LAM, beta, decoupled, n=n)
        win = window.last(n)
        if n == N_RANK:  # the masked window equals the sliced one
            sliced = theory.decompose_window(win, LAM, beta, decoupled)
            np.testing.assert_allclose(dec.weight_coefficient, sliced.weight_coefficient, 1e-6)
            np.testing.assert_allclose(dec.coefficients[-n:], sliced.coefficients, rtol=1e-6)
            np.testing.assert_array_equal(dec.coefficients[:-n], 0.0)
        for path, w in w_end.items():
            k = B * n  # m_l = 1
            for norm in theory.NORMS:
                out = theory.lemma32(w, dec.tail[path], k, norm)
                dist, bound = float(out["distance"]), float(out["bound"])
                assert dist <= bound * (1 + 1e-5), (path, n, norm, dist, bound)
                if path != "classifier/kernel":
                    assert dist > 0.0
            if beta == 0:
                # The paper's form of the bound equals ‖tail‖/‖W_T‖ for plain SGD.
                paper = theory.lemma32_bound(
                    theory.decay_product(win.learning_rates, LAM),
                    jnp.linalg.norm(win.weights[path][0]),
                    jnp.linalg.norm(w),
                )
                tail = theory.lemma32(w, dec.tail[path], B * n)["bound"]
                assert float(paper) == pytest.approx(float(tail), rel=1e-5)


# --------------------------------------------------------------------------- Theorem 3.3


def test_theorem33_bound_hand_values():
    # 1·6·log(2/1e-3)/(2·0.1·8e-3)
    expected = 6 * math.log(2000.0) / 0.0016
    assert theory.theorem33_rank_bound(1, 6, 0.1, 8e-3, 1e-3) == pytest.approx(expected)
    got = theory.theorem33_rank_bound(4, 8, 0.05, 5e-4, np.array([0.01, 0.25]))
    np.testing.assert_allclose(got, 32 * np.log(2 / np.array([0.01, 0.25])) / 5e-5)
    assert theory.theorem33_window(0.1, 0.05, 0.1) == math.ceil(math.log(0.05) / math.log(0.99))
    # The proof's window never needs more than the closed form, up to the ceiling.
    n = theory.theorem33_window(0.1, 0.05, 0.01)
    assert n <= math.ceil(math.log(200) / 0.01)


def test_theorem33_lambda_zero_is_infinite():
    assert theory.theorem33_rank_bound(1, 8, 0.1, 0.0, 0.01) == math.inf
    assert np.all(np.isinf(theory.theorem33_rank_bound(1, 8, 0.1, 0.0, np.array([0.1, 0.2]))))
    assert theory.theorem33_window(0.1, 0.0, 0.1) == math.inf


@pytest.mark.parametrize(
    ("mu", "lam", "eps", "match"),
    [
        (1.0, 0.5, 0.1, r"2μλ = 1 \(μ=1.0, λ=0.5\) must be < 1"),
        (0.1, 0.01, 0.5, r"ε=\[0.5\] must lie in the open interval \(0, 0.5\)"),
        (0.1, 0.01, 0.0, r"ε=\[0.0\] must lie"),
        (0.0, 0.01, 0.1, r"learning rate μ=0.0 must be > 0"),
        (0.1, -1.0, 0.1, r"weight decay λ=-1.0 must be ≥ 0"),
    ],
)
def test_theorem33_errors(mu, lam, eps, match):
    with pytest.raises(ValueError, match=match):
        theory.theorem33_rank_bound(1, 8, mu, lam, eps)
