"""Tests of lowrank.augment: exact geometry, per-image randomness, jit/vmap behaviour."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage

from lowrank import augment
from lowrank.data import DataConfigError


def make_cfg(crop=False, flip=False, rotate=False, step=15, padding=4):
    cfg = augment.default_augment_config()
    cfg.crop, cfg.flip, cfg.rotate = crop, flip, rotate
    cfg.rotation_step_degrees, cfg.crop_padding = step, padding
    return cfg


@pytest.fixture(scope="module")
def images() -> jax.Array:
    # Distinct values everywhere, so any misplaced pixel shows.
    return jax.random.normal(jax.random.key(42), (16, 10, 10, 2), jnp.float32)


def run(cfg, rng, x):
    return jax.jit(functools.partial(augment.augment_batch, cfg=cfg))(rng, x)


def test_default_config_is_the_papers_protocol():
    cfg = augment.default_augment_config()
    assert cfg.crop and cfg.flip and cfg.rotate
    assert cfg.crop_padding == 4 and cfg.rotation_step_degrees == 15
    assert augment.num_rotations(cfg.rotation_step_degrees) == 24


def test_flip_is_an_exact_mirror(images):
    out = np.asarray(run(make_cfg(flip=True), jax.random.key(0), images))
    x = np.asarray(images)
    flipped = [np.array_equal(o, xi[:, ::-1]) for o, xi in zip(out, x, strict=True)]
    kept = [np.array_equal(o, xi) for o, xi in zip(out, x, strict=True)]
    assert all(f != k for f, k in zip(flipped, kept, strict=True))  # exactly one of the two
    assert 0 < sum(flipped) < len(x)  # each image draws its own coin


def test_rotation_multiples_of_90_are_exact(images):
    x = images[0]
    np.testing.assert_array_equal(augment.rotate(x, 360.0), x)
    np.testing.assert_array_equal(augment.rotate(x, 0.0), x)
    for k in (1, 2, 3):
        np.testing.assert_array_equal(augment.rotate(x, 90.0 * k), jnp.rot90(x, k, axes=(0, 1)))


def test_rotation_matches_scipy_bilinear(images):
    # Golden reference: SciPy's bilinear rotation about the centre, zeros outside.
    x = np.asarray(images[1])
    for angle in (15.0, 45.0, 105.0, 330.0):
        want = scipy.ndimage.rotate(
            x, angle, axes=(0, 1), reshape=False, order=1, mode="grid-constant", cval=0.0
        )
        np.testing.assert_allclose(augment.rotate(jnp.asarray(x), angle), want, atol=1e-5)


def test_batch_rotations_by_90_steps_are_rot90s(images):
    # With 90° steps every output is one of the four exact quarter turns, k uniform in 1..4.
    out = np.asarray(run(make_cfg(rotate=True, step=90), jax.random.key(3), images))
    x = np.asarray(images)
    ks = []
    for o, xi in zip(out, x, strict=True):
        matches = [k for k in (1, 2, 3, 4) if np.array_equal(o, np.rot90(xi, k, axes=(0, 1)))]
        assert len(matches) == 1
        ks.append(matches[0])
    assert len(set(ks)) >= 3


def test_crop_is_a_window_of_the_padded_image(images):
    p = 4
    out = np.asarray(run(make_cfg(crop=True, padding=p), jax.random.key(5), images))
    x = np.asarray(images)
    h, w = x.shape[1:3]
    offsets = []
    for o, xi in zip(out, x, strict=True):
        padded = np.pad(xi, ((p, p), (p, p), (0, 0)))
        hits = [
            (dy, dx)
            for dy in range(2 * p + 1)
            for dx in range(2 * p + 1)
            if np.array_equal(o, padded[dy : dy + h, dx : dx + w])
        ]
        assert hits, "the crop is not a window of the zero-padded image"
        offsets.append(hits[0])
    assert len(set(offsets)) > 4  # per-image offsets


def test_crop_fill_value():
    x = jnp.ones((4, 4, 1))
    out = augment.crop(x, jnp.array([0, 0]), padding=2, fill=-3.0)
    np.testing.assert_array_equal(out[:2], -3.0)
    np.testing.assert_array_equal(out[2:, :2], -3.0)
    np.testing.assert_array_equal(out[2:, 2:], 1.0)


def test_same_key_same_result_and_vmap_equals_separate_calls(images):
    cfg = make_cfg(crop=True, flip=True, rotate=True)
    keys = jax.random.split(jax.random.key(7), 3)
    f = jax.jit(functools.partial(augment.augment_batch, cfg=cfg))
    a, b = f(keys[0], images), f(keys[0], images)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, f(keys[1], images))
    assert a.shape == images.shape and a.dtype == images.dtype
    # One compiled call over members (each with its own key) equals separate calls.
    members = jax.jit(jax.vmap(functools.partial(augment.augment_batch, cfg=cfg), (0, None)))(
        keys, images
    )
    for i in range(3):
        np.testing.assert_allclose(members[i], f(keys[i], images), rtol=0, atol=1e-6)


def test_everything_off_is_identity(images):
    out = augment.augment_batch(jax.random.key(0), images, make_cfg())
    assert out is images


@pytest.mark.parametrize(
    ("fields", "pattern"),
    [
        ({"crop_padding": -1}, r"augment.crop_padding=-1 must be an integer ≥ 0"),
        ({"rotation_step_degrees": 7}, r"augment.rotation_step_degrees=7 must divide 360"),
        ({"rotation_step_degrees": 0}, r"rotation_step_degrees=0 must divide 360"),
    ],
)
def test_bad_config(fields, pattern):
    cfg = make_cfg(crop=True, rotate=True)
    for key, value in fields.items():
        cfg[key] = value
    with pytest.raises(DataConfigError, match=pattern):
        augment.augment_batch(jax.random.key(0), jnp.zeros((1, 4, 4, 1)), cfg)
