"""Compression by truncated SVD: exact at full rank, rank r at r, counts, any layout."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lowrank import compress, data, models, rank

SHAPES = {
    "conv": {"kernel": (3, 3, 4, 8), "bias": (8,)},  # matrix (8, 36)
    "dense": {"kernel": (32, 16), "bias": (16,)},  # matrix (16, 32)
    "attention": {"query": {"kernel": (16, 4, 4)}, "out": {"kernel": (4, 4, 16)}},
    "bn": {"scale": (16,)},
}


def params(seed: int = 0):
    """Random float32 parameters of SHAPES (NumPy: no compilation)."""
    rng = np.random.default_rng(seed)
    leaves, treedef = jax.tree.flatten(SHAPES, is_leaf=lambda x: isinstance(x, tuple))
    return jax.tree.unflatten(treedef, [rng.standard_normal(s, np.float32) for s in leaves])


def test_full_rank_is_exact_and_other_leaves_untouched():
    p = params()
    d = compress.decompose(p)
    assert set(d.shapes) == {"conv/kernel", "dense/kernel", "attention/query/kernel",
                             "attention/out/kernel"}  # fmt: skip
    same = compress.truncate(d, d.full_ranks())
    for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(same), strict=True):
        np.testing.assert_array_equal(a, b)
    cut = compress.truncate(d, {"dense/kernel": 3})
    np.testing.assert_array_equal(cut["dense"]["bias"], p["dense"]["bias"])
    np.testing.assert_array_equal(cut["conv"]["kernel"], p["conv"]["kernel"])
    assert cut["dense"]["kernel"].shape == p["dense"]["kernel"].shape


@pytest.mark.parametrize("path", ["conv/kernel", "dense/kernel", "attention/query/kernel",
                                  "attention/out/kernel"])  # fmt: skip
@pytest.mark.parametrize("r", [1, 3])
def test_truncation_gives_the_best_rank_r_matrix(path, r):
    p = params(1)
    d = compress.decompose(p)
    cut = compress.truncate(d, {path: r})
    before = np.asarray(rank.weight_matrices(p)[path], np.float64)
    after = np.asarray(rank.weight_matrices(cut)[path], np.float64)
    assert np.linalg.matrix_rank(after.astype(np.float32)) == r  # float32 tolerance
    # Eckart–Young: the error is the norm of the dropped singular values.
    s = np.linalg.svd(before, compute_uv=False)
    np.testing.assert_allclose(np.linalg.norm(before - after), np.linalg.norm(s[r:]), rtol=1e-5)
    np.testing.assert_allclose(
        after, compress.low_rank_approximation(before, r), rtol=1e-4, atol=1e-5
    )


def test_parameter_counts():
    d = compress.decompose(params())
    total = sum(
        int(np.prod(s)) for s in jax.tree.leaves(SHAPES, is_leaf=lambda x: isinstance(x, tuple))
    )
    matrices = 8 * 36 + 16 * 32 + 16 * 16 + 16 * 16
    full = compress.parameter_counts(d)
    assert (full.total, full.kept, full.matrices, full.matrices_kept) == (
        total, total, matrices, matrices,
    )  # fmt: skip
    ranks = {"conv/kernel": 2, "dense/kernel": 1, "attention/query/kernel": 16,
             "attention/out/kernel": 12}  # fmt: skip
    c = compress.parameter_counts(d, ranks)
    # Factored where cheaper: 2·(8+36), 1·(16+32); rank 12 of 16×16 costs 12·32 > 256.
    kept = 2 * 44 + 1 * 48 + 16 * 16 + 16 * 16
    assert c.matrices_kept == kept and c.kept == total - matrices + kept
    assert c.fraction == pytest.approx(c.kept / total)
    assert compress.matrix_cost((10, 20), 0) == 0


def test_effective_and_fraction_ranks_match_the_library():
    p = params(2)
    p["dense"]["kernel"][:, 8:] *= 1e-4  # half the spectrum far below the rest
    d = compress.decompose(p)
    epsilons = (1e-3, 1e-2, 0.3)
    for norm in ("spectral", "frobenius"):
        theirs = {
            path: np.asarray(rank.threshold_rank(jnp.asarray(s, jnp.float32), epsilons, norm))
            for path, (_, s, _) in d.svd.items()
        }
        for i, eps in enumerate(epsilons):
            ours = compress.effective_ranks(d, eps, norm)
            assert ours == {k: int(v[i]) for k, v in theirs.items()}
    assert compress.effective_ranks(d, 1e-2)["dense/kernel"] == 8
    assert compress.fraction_ranks(d, 0.1) == {"conv/kernel": 1, "dense/kernel": 2,
                                               "attention/query/kernel": 2,
                                               "attention/out/kernel": 2}  # fmt: skip
    with pytest.raises(ValueError, match="fraction"):
        compress.fraction_ranks(d, 0.0)


def test_curve_on_a_real_model_full_rank_reproduces_accuracy():
    cfg = data.default_data_config()
    cfg.name, cfg.source = "digits", "sklearn"
    ds = data.load_dataset(cfg)
    mcfg = models.default_model_config("mlp_bn")
    mcfg.width, mcfg.depth = 16, 1
    model = models.build_model(mcfg, ds.num_classes)
    variables = model.init(jax.random.PRNGKey(0), jnp.zeros((1, *ds.input_shape)), train=False)
    evaluate = compress.accuracy_fn(
        model, ds.test_images, ds.test_labels, mean=ds.mean, std=ds.std,
        batch_stats=variables["batch_stats"], batch_size=128,
    )  # fmt: skip
    rows = compress.compression_curve(
        variables["params"], evaluate, epsilons=(0.5,), fractions=(1.0, 0.1)
    )
    by = {(r["method"], r["level"]): r for r in rows}
    assert by[("fraction", 1.0)]["accuracy"] == by[("none", 0.0)]["accuracy"]
    assert by[("fraction", 1.0)]["param_fraction"] == 1.0
    assert by[("fraction", 0.1)]["param_fraction"] < 0.2
    assert by[("fraction", 0.1)]["ranks"] == {"dense_0/kernel": 2, "classifier/kernel": 1}
    # The evaluation is the model's own: compare with a direct forward pass.
    x = data.standardize(jnp.asarray(ds.test_images), ds.mean, ds.std)
    logits = model.apply(variables, x, train=False)
    direct = float(jnp.mean(jnp.argmax(logits, -1) == jnp.asarray(ds.test_labels)))
    assert by[("none", 0.0)]["accuracy"] == pytest.approx(direct, abs=1e-6)
