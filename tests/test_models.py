"""Tests for lowrank.models: shapes, parameter counts, weight matrices, m_l, Lemma 3.1,
training vs evaluation mode, and vmap over members.

Full-size models are only traced (``jax.eval_shape``); anything that runs uses tiny widths
on 8×8 images. Parameters of the tiny models are drawn on the host from their abstract
shapes: compiling ``model.init`` costs ~1 s of XLA time per distinct kernel shape on this
CPU, which would dominate the file. For the same reason the test programs compile with
LLVM optimizations off (half the compile time; these programs run in milliseconds).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from lowrank import rank
from lowrank.models import (
    MODEL_NAMES,
    MODELS,
    WITHOUT_BATCHNORM,
    build_model,
    default_model_config,
    validate_model_config,
)
from lowrank.models.common import activation_fn
from lowrank.models.structure import layer_calls, param_count, patch_counts

# Compile fast rather than run fast: every program here is tiny.
_jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})

SHAPES = [(28, 28, 1), (32, 32, 1), (32, 32, 3)]
RNGS = {"params": jax.random.key(0), "dropout": jax.random.key(1)}

TINY_SHAPE = (8, 8, 3)
TINY_BATCH = 3
NUM_CLASSES = 5
# Tiny but structurally complete: VGG-16 and ResNet-18 keep all their layers.
TINY = {
    "mlp_bn": dict(width=8, depth=2, activation="leaky_relu"),
    "res_bn": dict(width=8, depth=2, activation="leaky_relu"),
    "vgg16": dict(width=2, activation="leaky_relu"),
    "resnet18": dict(width=2, activation="leaky_relu"),
    "vit": dict(width=16, num_heads=2, num_layers=2, mlp_dim=16, dropout=0.1),
}


def _config(name: str, **overrides) -> ml_collections.ConfigDict:
    cfg = default_model_config(name)
    cfg.update(overrides)
    return cfg


@functools.cache
def _abstract(name: str, shape: tuple[int, int, int], batch: int = 2, **overrides):
    """(model, abstract variables, abstract logits) of a model; nothing is compiled."""
    model = build_model(_config(name, **overrides), num_classes=10)
    x = jax.ShapeDtypeStruct((batch, *shape), jnp.float32)
    variables = jax.eval_shape(functools.partial(model.init, train=False), RNGS, x)
    logits = jax.eval_shape(functools.partial(model.apply, train=False), variables, x)
    return model, variables, logits


def _host_variables(abstract, seed: int):
    """Random variables with the given abstract shapes, drawn with NumPy."""
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        name = rank.path_str(path).split("/")[-1]
        shape = leaf.shape
        if name == "kernel":
            value = rng.normal(size=shape) / math.sqrt(math.prod(shape[:-1]))
        elif name == "scale":
            value = 1.0 + 0.1 * rng.normal(size=shape)
        elif name == "var":
            value = rng.uniform(0.5, 1.5, size=shape)
        else:  # biases, BatchNorm offsets and running means, cls, pos_embedding
            value = 0.1 * rng.normal(size=shape)
        return jnp.asarray(value, jnp.float32)

    return jax.tree_util.tree_map_with_path(draw, abstract)


def _tiny(name: str, **overrides):
    cfg = {**TINY[name], **overrides}
    model = build_model(_config(name, **cfg), NUM_CLASSES)
    x = jax.ShapeDtypeStruct((TINY_BATCH, *TINY_SHAPE), jnp.float32)
    abstract = jax.eval_shape(functools.partial(model.init, train=False), RNGS, x)
    return model, abstract


def _batch(seed: int = 0):
    kx, _ = jax.random.split(jax.random.key(seed))
    x = jax.random.normal(kx, (TINY_BATCH, *TINY_SHAPE))
    y = jnp.arange(TINY_BATCH) % NUM_CLASSES
    return x, y


def _probe_fn(model):
    """One compiled program with everything the Lemma 3.1 and mode tests need."""

    def loss(params, rest, x, y, train, key):
        variables = {"params": params, **rest}
        if train:
            logits, updates = model.apply(
                variables, x, train=True, rngs={"dropout": key}, mutable=["batch_stats"]
            )
        else:
            logits, updates = model.apply(variables, x, train=False, mutable=["batch_stats"])
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), (
            logits,
            updates,
        )

    def probe(variables, x, y, key):
        params = variables["params"]
        rest = {k: v for k, v in variables.items() if k != "params"}
        grad = jax.grad(loss, has_aux=True)

        def one(xi, yi):  # one sample, evaluation mode
            g, (logits, _) = grad(params, rest, xi[None], yi[None], False, key)
            return g, logits[0]

        per_sample, eval_alone = jax.vmap(one)(x, y)
        batch_grad, (train_logits, train_updates) = grad(params, rest, x, y, True, key)
        _, (eval_logits, eval_updates) = loss(params, rest, x, y, False, key)
        return dict(
            per_sample=per_sample,
            batch_grad=batch_grad,
            train_logits=train_logits,
            train_updates=train_updates,
            eval_logits=eval_logits,
            eval_updates=eval_updates,
            eval_alone=eval_alone,
        )

    return _jit(probe)


@functools.cache
def _probe(name: str):
    """(model, variables, compiled probe, its results on the standard batch)."""
    model, abstract = _tiny(name)
    variables = _host_variables(abstract, seed=1)
    probe = _probe_fn(model)
    x, y = _batch()
    return model, variables, probe, probe(variables, x, y, jax.random.key(7))


def _ranks(grads) -> dict[str, int]:
    return {
        p: int(np.linalg.matrix_rank(np.asarray(m))) for p, m in rank.weight_matrices(grads).items()
    }


# ------------------------------------------------------------------------ registry


def test_registry_and_defaults():
    assert MODEL_NAMES == ("mlp_bn", "res_bn", "vgg16", "resnet18", "vit")
    for name in MODEL_NAMES:
        cfg = default_model_config(name)
        assert cfg.name == name
        model = build_model(cfg, num_classes=10)
        assert type(model) is MODELS[name]
        for key in cfg:
            if key != "name":
                assert getattr(model, key) == cfg[key], (name, key)
    assert (
        default_model_config("mlp_bn").width == 100 and default_model_config("mlp_bn").depth == 10
    )
    assert default_model_config("res_bn").width == 500 and default_model_config("res_bn").depth == 5
    vit = default_model_config("vit")
    assert (vit.patch_size, vit.num_heads, vit.num_layers, vit.dropout, vit.pooling) == (
        4, 8, 6, 0.1, "cls",
    )  # fmt: skip
    assert default_model_config("resnet18").bn_momentum == 0.9


@pytest.mark.parametrize(
    "name, overrides, message",
    [
        ("alexnet", {}, "mlp_bn"),  # unknown names list the known ones
        ("mlp_bn", {"activation": "tanh"}, "model.activation='tanh'"),
        ("mlp_bn", {"width": 0}, "model.width=0"),
        ("res_bn", {"depth": -1}, "model.depth=-1"),
        ("resnet18", {"bn_momentum": 1.0}, "model.bn_momentum=1.0"),
        ("vit", {"width": 30}, "divisible by model.num_heads=8"),
        ("vit", {"pooling": "max"}, "model.pooling='max'"),
        ("vit", {"dropout": 1.0}, "model.dropout=1.0"),
        ("vgg16", {"use_bias": 1}, "model.use_bias=1"),
    ],
)
def test_bad_config_is_refused(name, overrides, message):
    cfg = ml_collections.ConfigDict({"name": name, **overrides})
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_model(cfg, num_classes=10)


def test_unknown_field_and_partial_config():
    cfg = default_model_config("resnet18")
    cfg.depth = 34  # ResNet-18 has no depth field: refuse rather than ignore
    with pytest.raises(ValueError, match=r"\['depth'\].*resnet18"):
        build_model(cfg, 10)
    with pytest.raises(ValueError, match="num_classes=0"):
        validate_model_config(default_model_config("vit"), num_classes=0)
    # Fields left out take the paper's defaults.
    model = build_model(ml_collections.ConfigDict({"name": "vit", "width": 64}), 10)
    assert (model.width, model.num_layers, model.mlp_dim) == (64, 6, 512)


def test_vit_patch_size_must_divide_image():
    model = build_model(_config("vit", patch_size=3), 10)
    with pytest.raises(ValueError, match="patch_size=3"):
        jax.eval_shape(
            functools.partial(model.init, train=False),
            RNGS,
            jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32),
        )


def test_leaky_relu_slope():
    x = jnp.array([-2.0, 3.0])
    np.testing.assert_allclose(activation_fn("leaky_relu", 0.2)(x), [-0.4, 3.0], rtol=1e-6)
    np.testing.assert_allclose(activation_fn("relu")(x), [0.0, 3.0])


# ------------------------------------------------------------- shapes and counts


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_output_shape(name, shape):
    _, variables, logits = _abstract(name, shape)
    assert logits.shape == (2, 10) and logits.dtype == jnp.float32
    # BatchNorm models carry running statistics; the ViT (LayerNorm) has none.
    assert ("batch_stats" in variables) == (name not in WITHOUT_BATCHNORM)


def test_vit_mean_pooling_shape_and_no_class_token():
    _, variables, logits = _abstract("vit", (32, 32, 3), pooling="mean")
    assert logits.shape == (2, 10)
    assert "cls" not in variables["params"]
    assert variables["params"]["pos_embedding"].shape == (1, 64, 512)


def _count(name, shape=(32, 32, 3)):
    return param_count(_abstract(name, shape)[1]["params"])


def test_param_counts():
    # Published: the CIFAR-10 ResNet-18 (kuangliu/pytorch-cifar, the authors' model) has
    # 11,173,962 parameters and its VGG-16 with BatchNorm 14,728,266.
    assert _count("resnet18") == 11_173_962
    assert _count("vgg16") == 14_728_266
    # Hand counts (CIFAR-10: 3072 inputs, 10 classes).
    # MLP-BN-10-100: 3072·100+100 + 9·(100·100+100) + 10 BN·2·100 + 100·10+10.
    assert _count("mlp_bn") == 307_300 + 90_900 + 2_000 + 1_010 == 401_210
    # RES-BN-5-500: 3072·500+500 + 5·(2·(500·500+500) + 2 BN·2·500) + 500·10+10.
    assert _count("res_bn") == 1_536_500 + 5 * 503_000 + 5_010 == 4_056_510
    # ViT d=512: patch 4·4·3·512+512; cls 512; pos 65·512; per block 2 LN·1024 +
    # 4·(512·512+512) attention + 2·(512·512+512) MLP; final LN 1024; 512·10+10.
    block = 2 * 1_024 + 6 * (512 * 512 + 512)
    assert _count("vit") == 25_088 + 512 + 33_280 + 6 * block + 1_024 + 5_130 == 9_532_938
    # One input channel: only the first layer shrinks.
    assert _count("resnet18", (32, 32, 1)) == 11_173_962 - 9 * 2 * 64
    assert _count("mlp_bn", (28, 28, 1)) == 401_210 - (3072 - 784) * 100


def _expected_paths(name: str) -> list[str]:
    if name == "mlp_bn":
        layers = [f"dense_{i}" for i in range(10)]
    elif name == "res_bn":
        layers = ["dense_in"] + [f"block_{i}/dense{j}" for i in range(5) for j in (1, 2)]
    elif name == "vgg16":
        layers = [f"conv_{i:02d}" for i in range(13)]
    elif name == "resnet18":
        layers = ["stem_conv"]
        for s in (1, 2, 3, 4):
            for b in (0, 1):
                layers += [f"layer{s}_{b}/conv1", f"layer{s}_{b}/conv2"]
                if s > 1 and b == 0:
                    layers.append(f"layer{s}_{b}/shortcut_conv")
    else:
        layers = ["patch_embed"] + [
            f"block_{i}/{m}"
            for i in range(6)
            for m in ("attn/query", "attn/key", "attn/value", "attn/out", "mlp/fc1", "mlp/fc2")
        ]
    return sorted(f"{layer}/kernel" for layer in [*layers, "classifier"])


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_weight_matrix_paths(name):
    model, variables, _ = _abstract(name, (32, 32, 3))
    found = jax.eval_shape(rank.weight_matrices, variables["params"])
    assert sorted(found) == _expected_paths(name)
    assert len(found) == {"mlp_bn": 11, "res_bn": 12, "vgg16": 14, "resnet18": 21, "vit": 38}[name]
    # m_l is defined for exactly these matrices, in the same order, for both presets.
    for preset in ("paper", "authors"):
        expected = jax.eval_shape(
            functools.partial(rank.weight_matrices, preset=preset), variables["params"]
        )
        assert list(patch_counts(model, (32, 32, 3), preset=preset)) == list(expected)


def test_authors_preset_drops_classifier_and_shortcuts():
    _, variables, _ = _abstract("resnet18", (32, 32, 3))
    found = jax.eval_shape(
        functools.partial(rank.weight_matrices, preset="authors"), variables["params"]
    )
    assert len(found) == 17
    assert not [p for p in found if "shortcut" in p or "classifier" in p]


def test_matrix_shapes_of_resnet18():
    _, variables, _ = _abstract("resnet18", (32, 32, 3))
    found = jax.eval_shape(rank.weight_matrices, variables["params"])
    assert found["stem_conv/kernel"].shape == (64, 27)
    assert found["layer3_0/shortcut_conv/kernel"].shape == (256, 128)
    assert found["layer4_1/conv2/kernel"].shape == (512, 9 * 512)
    assert found["classifier/kernel"].shape == (10, 512)


# --------------------------------------------------------------------------- m_l


def test_patch_counts_hand_counts():
    resnet = build_model(default_model_config("resnet18"), 10)
    m32 = patch_counts(resnet, (32, 32, 3))
    # Padded 3×3 stem keeps 32×32 positions (unpadded it would be 30·30).
    assert m32["stem_conv/kernel"] == 32 * 32
    # Strided 3×3, padding 1: ⌊(32 + 2 − 3)/2⌋ + 1 = 16 per side.
    assert m32["layer2_0/conv1/kernel"] == 16 * 16
    assert m32["layer2_0/conv2/kernel"] == 16 * 16
    # Strided 1×1 shortcut, no padding: ⌊(32 − 1)/2⌋ + 1 = 16 per side.
    assert m32["layer2_0/shortcut_conv/kernel"] == 16 * 16
    assert m32["layer4_1/conv2/kernel"] == 4 * 4
    assert m32["classifier/kernel"] == 1
    # 28×28: stage 3 is 7×7; the strided padded conv gives ⌊(7 + 2 − 3)/2⌋ + 1 = 4 per
    # side (3 without padding), the 1×1 shortcut ⌊(7 − 1)/2⌋ + 1 = 4.
    m28 = patch_counts(resnet, (28, 28, 1))
    assert m28["stem_conv/kernel"] == 28 * 28
    assert m28["layer4_0/conv1/kernel"] == 4 * 4
    assert m28["layer4_0/shortcut_conv/kernel"] == 4 * 4

    vgg = patch_counts(build_model(default_model_config("vgg16"), 10), (28, 28, 1))
    # Max-pools round up: 28 → 14 → 7 → 4 → 2, so the last stage runs at 2×2.
    assert [vgg[f"conv_{i:02d}/kernel"] for i in (0, 2, 4, 7, 10)] == [784, 196, 49, 16, 4]

    vit = build_model(default_model_config("vit"), 10)
    m = patch_counts(vit, (32, 32, 3))
    # 8·8 = 64 patches + 1 class token = 65 tokens, each multiplied by every block matrix.
    assert m["patch_embed/kernel"] == 64
    for layer in ("attn/query", "attn/key", "attn/value", "attn/out", "mlp/fc1", "mlp/fc2"):
        assert m[f"block_3/{layer}/kernel"] == 65
    assert m["classifier/kernel"] == 1
    mean = build_model(_config("vit", pooling="mean"), 10)
    assert patch_counts(mean, (28, 28, 1))["block_0/mlp/fc1/kernel"] == 7 * 7

    mlp = patch_counts(build_model(default_model_config("mlp_bn"), 10), (32, 32, 3))
    assert set(mlp.values()) == {1}


def test_patch_counts_general_layers():
    """Not architecture tables: any Dense/Conv, shared weights counted once per call."""
    import flax.linen as nn

    class Odd(nn.Module):
        @nn.compact
        def __call__(self, x, train=False):
            x = nn.Conv(4, (5, 5), strides=(2, 2), padding="VALID", name="c")(x)
            x = nn.Conv(4, (3, 3), strides=(3, 3), padding=((2, 2), (2, 2)), name="d")(x)
            shared = nn.Dense(4, name="shared")
            x = shared(shared(x))  # applied per position, twice
            return nn.Dense(3, name="classifier")(x.reshape(x.shape[0], -1))

    counts = patch_counts(Odd(), (11, 11, 2))
    # c: ⌊(11 − 5)/2⌋ + 1 = 4 per side; d: ⌊(4 + 4 − 3)/3⌋ + 1 = 2 per side.
    assert counts == {"c/kernel": 16, "classifier/kernel": 1, "d/kernel": 4, "shared/kernel": 8}
    calls, _ = layer_calls(Odd(), (11, 11, 2))
    assert [c.path for c in calls] == [
        "c/kernel", "d/kernel", "shared/kernel", "shared/kernel", "classifier/kernel",
    ]  # fmt: skip
    assert calls[0].output_shape == (1, 4, 4, 4)


# ------------------------------------------------------------------- Lemma 3.1


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_lemma_3_1_gradient_rank(name):
    """rank ∇_W loss(x_i) ≤ m_l (evaluation mode); rank ∇_W L_batch ≤ B·m_l (training)."""
    model, _, _, out = _probe(name)
    m = patch_counts(model, TINY_SHAPE)
    shapes = {p: w.shape for p, w in rank.weight_matrices(out["batch_grad"]).items()}
    assert list(shapes) == list(m)
    nontrivial = [p for p in m if TINY_BATCH * m[p] < min(shapes[p])]
    assert nontrivial, "no layer where the bounds say anything"
    for i in range(TINY_BATCH):
        ranks = _ranks(jax.tree.map(lambda g, i=i: g[i], out["per_sample"]))
        for p, r in ranks.items():
            # ≥ 1: real backpropagation reaches every weight matrix.
            assert 1 <= r <= m[p], (p, r, m[p], shapes[p])
        # Tight where possible: a one-sample gradient of a layer applied once is rank 1.
        assert ranks["classifier/kernel"] == 1
    batch_ranks = _ranks(out["batch_grad"])
    for p, r in batch_ranks.items():
        assert 1 <= r <= TINY_BATCH * m[p], (p, r, m[p], shapes[p])
    # The batch gradient sums the samples' gradients: more rank than one sample can give.
    assert any(batch_ranks[p] > m[p] for p in nontrivial)


# ----------------------------------------------------------- training vs evaluation


def _allclose(a, b, **kw):
    return all(
        np.allclose(x, y, **kw) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


@pytest.mark.parametrize("name", ["mlp_bn", "res_bn", "vgg16", "resnet18"])
def test_batchnorm_modes(name):
    _, variables, probe, out = _probe(name)
    stats = variables["batch_stats"]
    # Evaluation: running averages, untouched; a sample's logits ignore the rest of the batch.
    assert _allclose(out["eval_updates"]["batch_stats"], stats, rtol=0, atol=0)
    np.testing.assert_allclose(out["eval_alone"], out["eval_logits"], rtol=1e-5, atol=1e-6)
    # Training: batch statistics change the logits and update every running average.
    assert not np.allclose(out["train_logits"], out["eval_logits"], atol=1e-3)
    new = out["train_updates"]["batch_stats"]
    for old_leaf, new_leaf in zip(jax.tree.leaves(stats), jax.tree.leaves(new), strict=True):
        assert not np.allclose(old_leaf, new_leaf)
    # Evaluation is deterministic, and uses the updated averages once they are passed in.
    x, y = _batch()
    again = probe(variables, x, y, jax.random.key(8))
    np.testing.assert_array_equal(again["eval_logits"], out["eval_logits"])
    updated = probe({**variables, **out["train_updates"]}, x, y, jax.random.key(7))
    assert not np.allclose(updated["eval_logits"], out["eval_logits"], atol=1e-3)


def test_batchnorm_matches_hand_computation():
    """MLP-BN-1-H by hand: batch statistics in training, running averages in evaluation,
    running averages updated with Flax momentum 0.9 (PyTorch's 0.1)."""
    model = build_model(_config("mlp_bn", width=6, depth=1), num_classes=4)
    x = jax.random.normal(jax.random.key(3), (5, 4, 4, 2))
    variables = _jit(functools.partial(model.init, train=False))(RNGS, x)
    variables = {**variables, "batch_stats": _host_variables(variables["batch_stats"], 5)}
    p, s = variables["params"], variables["batch_stats"]["bn_0"]
    h = np.asarray(x).reshape(5, -1) @ np.asarray(p["dense_0"]["kernel"]) + p["dense_0"]["bias"]

    def head(mean, var):
        z = (h - mean) / np.sqrt(var + 1e-5) * p["bn_0"]["scale"] + p["bn_0"]["bias"]
        z = np.maximum(z, 0)
        return z @ np.asarray(p["classifier"]["kernel"]) + p["classifier"]["bias"]

    apply = _jit(model.apply, static_argnames=("train", "mutable"))
    logits, updates = apply(variables, x, train=True, mutable=("batch_stats",))
    np.testing.assert_allclose(logits, head(h.mean(0), h.var(0)), rtol=1e-4, atol=1e-5)
    new = updates["batch_stats"]["bn_0"]
    np.testing.assert_allclose(new["mean"], 0.9 * s["mean"] + 0.1 * h.mean(0), rtol=1e-5)
    np.testing.assert_allclose(new["var"], 0.9 * s["var"] + 0.1 * h.var(0), rtol=1e-5)
    eval_logits = apply(variables, x, train=False)
    np.testing.assert_allclose(eval_logits, head(s["mean"], s["var"]), rtol=1e-4, atol=1e-5)


def test_vit_dropout_modes():
    _, variables, probe, out = _probe("vit")
    assert "batch_stats" not in variables and out["train_updates"] == {}
    # Dropout 0.1: training differs from evaluation and depends on the dropout key only.
    assert not np.allclose(out["train_logits"], out["eval_logits"], atol=1e-4)
    x, y = _batch()
    same = probe(variables, x, y, jax.random.key(7))
    other = probe(variables, x, y, jax.random.key(8))
    np.testing.assert_array_equal(same["train_logits"], out["train_logits"])
    np.testing.assert_array_equal(other["eval_logits"], out["eval_logits"])
    assert not np.allclose(other["train_logits"], out["train_logits"], atol=1e-4)
    np.testing.assert_allclose(out["eval_alone"], out["eval_logits"], rtol=1e-5, atol=1e-6)
    # Dropout 0: no difference between the modes at all.
    model0, _ = _tiny("vit", dropout=0.0)

    @_jit
    def both(v, x, key):
        return model0.apply(v, x, train=True, rngs={"dropout": key}), model0.apply(v, x)

    train, evaluation = both(variables, x, jax.random.key(7))
    np.testing.assert_array_equal(train, evaluation)


# ------------------------------------------------------------------------- vmap


@pytest.mark.parametrize("name", ["resnet18", "vit"])
def test_vmap_over_members_equals_separate_calls(name):
    """Two members (own params, batch statistics and dropout keys) in one vmapped call."""
    model, variables, probe, out = _probe(name)
    x, y = _batch()
    abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), variables)
    second = _host_variables(abstract, seed=2)
    members = jax.tree.map(lambda a, b: jnp.stack([a, b]), variables, second)
    keys = jnp.stack([jax.random.key(7), jax.random.key(9)])

    @_jit
    @jax.vmap
    def train_step(v, key):
        return model.apply(v, x, train=True, rngs={"dropout": key}, mutable=["batch_stats"])

    logits, updates = train_step(members, keys)
    separate = [out, probe(second, x, y, jax.random.key(9))]
    for i in range(2):
        np.testing.assert_allclose(logits[i], separate[i]["train_logits"], rtol=1e-4, atol=1e-5)
        member_updates = jax.tree.map(lambda a, i=i: a[i], updates)
        assert _allclose(member_updates, separate[i]["train_updates"], rtol=1e-4, atol=1e-6)
    assert not np.allclose(logits[0], logits[1])
