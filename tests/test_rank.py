"""Tests of lowrank.rank against float64 NumPy, explicit constructions and loops."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lowrank import rank

EPS = (1e-3, 1e-2)
NOISE = 1e-7  # far below every ε tested


def low_rank(rng: np.random.Generator, rows: int, cols: int, r: int) -> np.ndarray:
    """A rows×cols matrix of rank r (product of two rank-r factors) plus tiny noise."""
    m = rng.standard_normal((rows, r)) @ rng.standard_normal((r, cols))
    return m + NOISE * np.abs(m).max() * rng.standard_normal((rows, cols))


def numpy_counts(m: np.ndarray, eps: tuple[float, ...]) -> dict[str, np.ndarray]:
    s = np.linalg.svd(m.astype(np.float64), compute_uv=False)
    return {
        "spectral": np.array([np.sum(s / s.max() > e) for e in eps]),
        "frobenius": np.array([np.sum(s / np.linalg.norm(m) > e) for e in eps]),
        "stable": np.sum(s**2) / s.max() ** 2,
        "entropy": np.exp(-np.sum((p := s / s.sum()) * np.log(p))),
    }


# Kernels in Flax layout with their (out, in) matrix, built here by hand.
def dense_case(rng, r):
    m = low_rank(rng, 24, 40, r)  # (out, in)
    return {"kernel": m.T}, m


def conv_case(rng, r):
    m = low_rank(rng, 16, 3 * 3 * 8, r)  # (c_out, kh*kw*c_in)
    kernel = m.T.reshape(3, 3, 8, 16)
    return {"kernel": kernel}, m


def attention_in_case(rng, r):
    m = low_rank(rng, 4 * 6, 20, r)  # (heads*head_dim, d)
    return {"query": {"kernel": m.T.reshape(20, 4, 6)}}, m


def attention_out_case(rng, r):
    m = low_rank(rng, 20, 4 * 6, r)  # (d, heads*head_dim)
    return {"out": {"kernel": m.T.reshape(4, 6, 20)}}, m


CASES = [dense_case, conv_case, attention_in_case, attention_out_case]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("r", [1, 5])
def test_measures_match_float64_numpy(case, r):
    rng = np.random.default_rng(r)
    tree, m = case(rng, r)
    params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), tree)
    mats = rank.weight_matrices(params)
    assert len(mats) == 1
    np.testing.assert_allclose(np.asarray(next(iter(mats.values()))), m, rtol=1e-6, atol=1e-6)

    ref = numpy_counts(m, EPS)
    for normalization in rank.NORMALIZATIONS:
        out = rank.measures(rank.spectra(params), EPS, normalization)
        got = np.asarray(out["average"]["threshold_rank"])
        np.testing.assert_array_equal(got, ref[normalization])
        np.testing.assert_array_equal(got, [r, r])  # the construction's rank
    out = rank.rank_report(params, EPS)
    avg = out["average"]
    m32 = m.astype(np.float32)
    assert avg["numerical_rank"] == np.linalg.matrix_rank(m32) == r
    np.testing.assert_allclose(avg["stable_rank"], ref["stable"], rtol=1e-4)
    np.testing.assert_allclose(avg["entropy_rank"], ref["entropy"], rtol=1e-4)
    assert not bool(out["any_nonfinite"])


def test_full_rank_numerical_rank_matches_numpy():
    rng = np.random.default_rng(0)
    k = rng.standard_normal((30, 12)).astype(np.float32)
    k[:, 3] = k[:, 4]  # one exact duplicate output: rank 11
    avg = rank.rank_report({"kernel": jnp.asarray(k)})["average"]
    assert avg["numerical_rank"] == np.linalg.matrix_rank(k.T) == 11


def test_conv_view_equals_explicit_construction():
    kernel = np.random.default_rng(1).standard_normal((3, 5, 4, 7)).astype(np.float32)
    view = np.asarray(rank.matrix_view("conv/kernel", jnp.asarray(kernel)))
    explicit = np.stack([kernel[:, :, :, o].reshape(-1) for o in range(kernel.shape[-1])])
    np.testing.assert_array_equal(view, explicit)
    # PyTorch / equinox layout (c_out, c_in, kh, kw): one row per filter as well.
    torch_kernel = np.transpose(kernel, (3, 2, 0, 1))
    torch_view = np.asarray(rank.matrix_view("conv/weight", jnp.asarray(torch_kernel)))
    rows = np.stack([torch_kernel[o].reshape(-1) for o in range(torch_kernel.shape[0])])
    np.testing.assert_array_equal(torch_view, rows)


def test_attention_views_are_the_linear_maps_of_flax_attention():
    attn = nn.MultiHeadDotProductAttention(num_heads=4, qkv_features=24, out_features=20)
    x = jnp.ones((1, 3, 20))
    params = attn.init(jax.random.PRNGKey(0), x, x)["params"]
    mats = rank.weight_matrices(params)
    assert set(mats) == {f"{n}/kernel" for n in ("query", "key", "value", "out")}
    v = jax.random.normal(jax.random.PRNGKey(1), (20,))
    q = nn.DenseGeneral((4, 6), name="q").apply({"params": params["query"]}, v)
    np.testing.assert_allclose(mats["query/kernel"] @ v, q.reshape(-1), rtol=1e-5, atol=1e-5)
    h = jax.random.normal(jax.random.PRNGKey(2), (4, 6))
    o = nn.DenseGeneral(20, axis=(-2, -1)).apply({"params": params["out"]}, h)
    np.testing.assert_allclose(mats["out/kernel"] @ h.reshape(-1), o, rtol=1e-5, atol=1e-5)


def mixed_params(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    f = lambda *s: jnp.asarray(rng.standard_normal(s), jnp.float32)
    return {
        "Conv_0": {"kernel": f(3, 3, 3, 8), "bias": f(8)},
        "Conv_1": {"kernel": f(3, 3, 8, 8)},
        "Conv_2": {"kernel": f(3, 3, 8, 8)},
        "shortcut_conv": {"kernel": f(1, 1, 3, 8)},
        "BatchNorm_0": {"scale": f(8), "bias": f(8)},
        "Dense_0": {"kernel": f(72, 16)},
        "classifier": {"kernel": f(16, 10), "bias": f(10)},
        "embedding": {"embedding": f(50, 16)},
        "pos_embedding": f(1, 5, 16),
        "cls": f(1, 1, 16),
    }


def test_selection_defaults_presets_and_patterns():
    params = mixed_params()
    expected = ["Conv_0", "Conv_1", "Conv_2", "shortcut_conv", "Dense_0", "classifier"]
    assert list(rank.weight_matrices(params)) == sorted(f"{n}/kernel" for n in expected)
    authors = rank.weight_matrices(params, preset="authors")
    assert sorted(authors) == sorted(
        f"{n}/kernel" for n in ["Conv_0", "Conv_1", "Conv_2", "Dense_0"]
    )
    only = rank.weight_matrices(params, include=r"^Conv_[12]/")
    assert sorted(only) == ["Conv_1/kernel", "Conv_2/kernel"]
    dropped = rank.weight_matrices(params, exclude=[r"Conv", r"classifier"])
    assert sorted(dropped) == ["Dense_0/kernel", "shortcut_conv/kernel"]
    with pytest.raises(ValueError, match="preset"):
        rank.weight_matrices(params, preset="nope")


def test_grouped_batched_path_equals_per_matrix_loop():
    params = mixed_params()
    spec = rank.spectra(params)
    for path, m in rank.weight_matrices(params).items():
        loop = np.linalg.svd(np.asarray(m, np.float64), compute_uv=False)
        np.testing.assert_allclose(np.asarray(spec.values[path]), loop, rtol=1e-4, atol=1e-5)
    # Conv_1 and Conv_2 share a shape and were decomposed in one batched call; the result
    # is mapped back to the right paths (they differ).
    assert not np.allclose(spec.values["Conv_1/kernel"], spec.values["Conv_2/kernel"])


def test_jit_and_vmap_over_members_equal_separate_calls():
    members = [mixed_params(s) for s in range(3)]
    stacked = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *members)
    report = lambda p: rank.rank_report(p, EPS)
    batched = jax.jit(jax.vmap(report))(stacked)
    for i, p in enumerate(members):
        alone = report(p)
        jitted = jax.jit(report)(p)
        for got in (jax.tree_util.tree_map(lambda a, i=i: a[i], batched), jitted):
            flat_a = jax.tree_util.tree_leaves_with_path(alone)
            flat_b = dict(jax.tree_util.tree_leaves_with_path(got))
            for path, leaf in flat_a:
                np.testing.assert_allclose(
                    np.asarray(flat_b[path]), np.asarray(leaf), rtol=1e-5, atol=1e-5
                )


def test_pytree_flavours_linen_nnx_dataclass():
    linen = nn.Dense(5).init(jax.random.PRNGKey(0), jnp.ones((1, 7)))["params"]
    assert list(rank.weight_matrices(linen)) == ["kernel"]
    state = nnx.state(nnx.Linear(7, 5, rngs=nnx.Rngs(0)))
    nnx_mats = rank.weight_matrices(state)
    assert list(nnx_mats) == ["kernel"] and nnx_mats["kernel"].shape == (5, 7)

    @jax.tree_util.register_dataclass
    @dataclasses.dataclass
    class Linear:  # equinox-style: a dataclass module with a PyTorch-layout weight
        weight: jax.Array
        bias: jax.Array

    @jax.tree_util.register_dataclass
    @dataclasses.dataclass
    class Net:
        layers: list

    net = Net([Linear(jnp.ones((5, 7)), jnp.ones(5)), Linear(jnp.eye(3, 5), jnp.ones(3))])
    mats = rank.weight_matrices(net)
    assert list(mats) == ["layers/0/weight", "layers/1/weight"]
    assert mats["layers/1/weight"].shape == (3, 5)
    ranks = rank.measures(rank.spectra(net))["per_layer"]["threshold_rank"]
    assert float(ranks["layers/0/weight"][0]) == 1 and float(ranks["layers/1/weight"][0]) == 3


def test_zero_matrix_has_rank_zero_without_nan():
    out = rank.rank_report({"a": {"kernel": jnp.zeros((6, 4))}}, EPS)
    for measure in rank.MEASURES:
        value = np.asarray(out["per_layer"][measure]["a/kernel"])
        assert np.all(value == 0), measure
    for normalization in rank.NORMALIZATIONS:
        spec = rank.spectra({"a": {"kernel": jnp.zeros((6, 4))}})
        got = rank.measures(spec, EPS, normalization)["average"]["threshold_rank"]
        np.testing.assert_array_equal(np.asarray(got), [0, 0])


@pytest.mark.timeout(120)
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite_matrix_gives_nan_and_flag(bad):
    k = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32)
    k[2, 1] = bad
    params = {"bad": {"kernel": jnp.asarray(k)}, "good": {"kernel": jnp.eye(4)}}
    out = jax.jit(lambda p: rank.rank_report(p, EPS))(params)
    assert bool(out["nonfinite"]["bad/kernel"]) and not bool(out["nonfinite"]["good/kernel"])
    assert bool(out["any_nonfinite"])
    for measure in rank.MEASURES:
        assert np.all(np.isnan(out["per_layer"][measure]["bad/kernel"])), measure
        assert np.all(np.isfinite(out["per_layer"][measure]["good/kernel"])), measure
        assert np.all(np.isnan(out["average"][measure])), measure
    np.testing.assert_array_equal(out["per_layer"]["threshold_rank"]["good/kernel"], [4, 4])


def test_no_weight_matrix_is_a_clear_error():
    with pytest.raises(ValueError) as err:
        rank.weight_matrices({"BatchNorm_0": {"scale": jnp.ones(3), "bias": jnp.ones(3)}})
    message = str(err.value)
    assert "no weight matrix" in message and "BatchNorm_0/scale" in message
    assert "include=" in message


def test_unknown_normalization_and_method_are_refused():
    with pytest.raises(ValueError, match="normalization"):
        rank.threshold_rank(jnp.ones(3), 1e-3, "nuclear")
    with pytest.raises(ValueError, match="method"):
        rank.spectra(mixed_params(), method="qr")
    with pytest.raises(ValueError, match="float64"):
        rank.spectra(mixed_params(), method="gram")


@pytest.mark.timeout(300)
def test_gram_route_agrees_and_does_not_hang():
    """Gram and SVD routes give the same counts at ε = 1e-3, in a subprocess (x64 on).

    The timeout guards the deadlock of concurrent batched LAPACK calls (see
    benchmarks/bench_rank.py); it is timing-dependent, so this test cannot always show it.
    """
    script = textwrap.dedent(
        """
        import jax, jax.numpy as jnp, numpy as np
        jax.config.update("jax_enable_x64", True)
        from lowrank import rank
        rng = np.random.default_rng(0)
        # Several shape groups, so that several batched LAPACK calls are in one program.
        shapes = [(27, 64), (576, 64), (576, 64), (576, 128), (1152, 128), (1152, 128),
                  (64, 128), (512, 10)]
        params = {}
        for i, (a, b) in enumerate(shapes):
            r = min(a, b) // 2
            m = rng.standard_normal((a, r)) @ rng.standard_normal((r, b))
            params[f"l{i}"] = {"kernel": jnp.asarray(m, jnp.float32)}
        for _ in range(3):  # the hang appeared on the second call
            svd = rank.measures(jax.jit(rank.spectra)(params), (1e-3,))
            gram = jax.jit(lambda p: rank.spectra(p, method="gram"))(params)
            gram = rank.measures(gram, (1e-3,))
            a = svd["per_layer"]["threshold_rank"]; b = gram["per_layer"]["threshold_rank"]
            assert all(float(a[k][0]) == float(b[k][0]) for k in a), (a, b)
        print("ok")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=240
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
