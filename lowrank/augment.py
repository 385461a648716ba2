"""On-device data augmentation of the paper (appendix B), pure JAX, jit- and vmap-friendly.

`augment_batch` applies, to each image with its own randomness: a random crop (zero-pad by
``crop_padding`` pixels on each side, then cut an H×W window at a uniformly random offset),
a horizontal flip with probability 1/2, and a rotation about the image centre by
``k · rotation_step_degrees`` with k uniform in 1..360/step (15° steps: k in 1..24, so every
augmented image is rotated, and k = 24, 360°, is the identity). Each can be switched off.

It runs on standardized float images, so the padding of the crop and the corners the
rotation uncovers hold ``fill`` (default 0, the mean pixel after standardization; pass
``-mean / std`` to fill with black as torchvision's transforms on raw images would).

Rotations use bilinear interpolation (`jax.scipy.ndimage.map_coordinates`, order 1). The
rotation matrix entries are snapped to exact 0/±1 and sampling coordinates within 1e-4 of an
integer are rounded, so multiples of 90° move pixels exactly: 90° equals ``jnp.rot90`` and
360° is the identity.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
from jax.scipy.ndimage import map_coordinates

from lowrank.data.errors import DataConfigError

_SNAP = 1e-6  # trig values this close to 0/±1 are made exact
_ROUND = 1e-4  # sampling coordinates this close to an integer are made integer


def default_augment_config() -> ml_collections.ConfigDict:
    """Returns the augmentation config (the ``augment`` field of a run config)."""
    cfg = ml_collections.ConfigDict()
    # Random crop: zero-pad crop_padding pixels on each side, cut back to H×W at random.
    cfg.crop = True
    # Padding of the random crop, in pixels.
    cfg.crop_padding = 4
    # Horizontal flip with probability 1/2.
    cfg.flip = True
    # Rotation by k·rotation_step_degrees, k uniform in 1..360/step (the paper: 15°, 1..24).
    cfg.rotate = True
    # Step of the rotation angle in degrees; must divide 360.
    cfg.rotation_step_degrees = 15
    return cfg


def validate_augment_config(cfg: ml_collections.ConfigDict) -> None:
    """Refuses an augmentation config with values that are not allowed.

    Raises:
      DataConfigError: naming the field, the value and what is allowed.
    """
    p = cfg.crop_padding
    if isinstance(p, bool) or not isinstance(p, int) or p < 0:
        raise DataConfigError(f"augment.crop_padding={p!r} must be an integer ≥ 0.")
    step = cfg.rotation_step_degrees
    if (
        isinstance(step, bool)
        or not isinstance(step, (int, float))
        or not 0 < step <= 360
        or not math.isclose(360 / step, round(360 / step))
    ):
        raise DataConfigError(
            f"augment.rotation_step_degrees={step!r} must divide 360 (e.g. 15, 30, 90)."
        )


def num_rotations(step_degrees: float) -> int:
    """Number of distinct rotation angles: k in 1..num_rotations(step)."""
    return round(360 / step_degrees)


def crop(image: jax.Array, offset: jax.Array, padding: int, fill: Any = 0.0) -> jax.Array:
    """Pads `image` (H, W, C) by `padding` on each side and cuts H×W at `offset` (dy, dx)."""
    h, w, c = image.shape
    pad = ((padding, padding), (padding, padding), (0, 0))
    padded = jnp.pad(image, pad)
    inside = jnp.pad(jnp.ones((h, w, 1), bool), pad)
    start = (offset[0], offset[1], 0)
    window = jax.lax.dynamic_slice(padded, start, (h, w, c))
    valid = jax.lax.dynamic_slice(inside, start, (h, w, 1))
    return jnp.where(valid, window, jnp.asarray(fill, image.dtype))


def flip(image: jax.Array, do_flip: jax.Array) -> jax.Array:
    """Mirrors `image` (H, W, C) left-right when `do_flip` is true."""
    return jnp.where(do_flip, image[:, ::-1, :], image)


def _snap(x: jax.Array, tol: float) -> jax.Array:
    r = jnp.round(x)
    return jnp.where(jnp.abs(x - r) < tol, r, x)


def rotate(image: jax.Array, degrees: jax.Array, fill: Any = 0.0) -> jax.Array:
    """Rotates `image` (H, W, C) counterclockwise by `degrees` about its centre.

    Bilinear interpolation; pixels that come from outside the image get `fill`. For square
    images, 90° gives exactly ``jnp.rot90(image)`` and 360° exactly `image`.
    """
    h, w, _ = image.shape
    theta = jnp.deg2rad(jnp.asarray(degrees, jnp.float32))
    cos, sin = _snap(jnp.cos(theta), _SNAP), _snap(jnp.sin(theta), _SNAP)
    ci, cj = (h - 1) / 2.0, (w - 1) / 2.0
    u, v = jnp.meshgrid(
        jnp.arange(h, dtype=jnp.float32) - ci, jnp.arange(w, dtype=jnp.float32) - cj, indexing="ij"
    )
    # Output pixel (u, v) (centred row, column) samples the input at R⁻¹(u, v); with this
    # matrix 90° maps out[i, j] = in[j, W-1-i], which is jnp.rot90.
    rows = _snap(cos * u + sin * v + ci, _ROUND)
    cols = _snap(-sin * u + cos * v + cj, _ROUND)
    inside = (rows > -1) & (rows < h) & (cols > -1) & (cols < w)

    def one_channel(channel: jax.Array) -> jax.Array:
        return map_coordinates(channel, [rows, cols], order=1, mode="constant", cval=0.0)

    out = jax.vmap(one_channel, in_axes=2, out_axes=2)(image)
    # Pixels that sample entirely outside get `fill`; those straddling the border blend
    # with 0 (standardized mean), a sub-pixel effect.
    return jnp.where(inside[..., None], out, jnp.asarray(fill, image.dtype))


def augment_image(
    rng: jax.Array, image: jax.Array, cfg: ml_collections.ConfigDict, fill: Any = 0.0
) -> jax.Array:
    """Augments one image (H, W, C): crop, then flip, then rotation, each if enabled."""
    # Fixed sub-keys, so switching one augmentation off leaves the others' draws unchanged.
    k_crop, k_flip, k_rot = jax.random.split(rng, 3)
    if cfg.crop and cfg.crop_padding > 0:
        offset = jax.random.randint(k_crop, (2,), 0, 2 * cfg.crop_padding + 1)
        image = crop(image, offset, cfg.crop_padding, fill)
    if cfg.flip:
        image = flip(image, jax.random.bernoulli(k_flip, 0.5))
    if cfg.rotate:
        n = num_rotations(cfg.rotation_step_degrees)
        k = jax.random.randint(k_rot, (), 1, n + 1)
        image = rotate(image, k.astype(jnp.float32) * cfg.rotation_step_degrees, fill)
    return image


def augment_batch(
    rng: jax.Array, images: jax.Array, cfg: ml_collections.ConfigDict, fill: Any = 0.0
) -> jax.Array:
    """Augments a batch of float images (B, H, W, C); each image gets its own randomness.

    `cfg` is static (read while tracing); `rng` may be traced, e.g. one key per member under
    `vmap`. Returns an array of the same shape and dtype.
    """
    validate_augment_config(cfg)
    if not (cfg.crop or cfg.flip or cfg.rotate):
        return images
    keys = jax.random.split(rng, images.shape[0])
    return jax.vmap(lambda k, x: augment_image(k, x, cfg, fill))(keys, images)
