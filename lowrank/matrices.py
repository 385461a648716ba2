"""Which leaves of a parameter pytree are weight matrices, and their 2-D ``(out, in)`` view.

Pure JAX, works under ``jax.jit`` and ``jax.vmap``. Parameters may be Flax linen
``params`` dicts, Flax NNX states, equinox-style dataclass pytrees or plain nested dicts.

Conventions (the paper's, §4):

* A *path* is the pytree key path joined by ``/``, e.g. ``"layer1_0/conv1/kernel"``.
  A trailing NNX ``.value`` is dropped.
* Flax layout (leaf named ``kernel``): inputs first, outputs last. A dense kernel
  ``(in, out)`` is the matrix ``(out, in)``; a convolution kernel ``(kh, kw, c_in, c_out)``
  is ``(c_out, kh·kw·c_in)``, one row per vectorized filter, as in the paper. Multi-head
  attention kernels (``DenseGeneral``) are the 2-D matrix of their linear map:
  query/key/value ``(d, heads, head_dim)`` → ``(heads·head_dim, d)``, the output
  projection ``(heads, head_dim, d)`` → ``(d, heads·head_dim)``.
* PyTorch / equinox layout (leaf named ``weight``): outputs first. ``(out, in)`` stays,
  a convolution ``(c_out, c_in, kh, kw)`` becomes ``(c_out, c_in·kh·kw)``.
* Not weight matrices: 1-D leaves (biases, normalization scales and offsets), embedding
  tables, position embeddings and class tokens.

``lowrank.rank`` re-exports :func:`weight_matrices`, :func:`matrix_view`,
:func:`leaves_with_paths` and :func:`path_str`, so ``lowrank.rank`` stays the one import
for rank work.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

Array = jax.Array

# Leaf names that hold a weight matrix, and the side their output axis is on.
_FLAX_KERNEL_NAMES = ("kernel",)  # (in..., out)
_TORCH_KERNEL_NAMES = ("weight", "w")  # (out, in...)

# Path components that mark parameters that are not weight matrices even when 2-D:
# embedding tables, position embeddings, class tokens. Patch embeddings are convolutions
# (a linear map applied to every patch) and stay weight matrices.
_NOT_MATRIX_COMPONENT = re.compile(
    r"^(embedding|embeddings|embed|tok_?embed(ding)?s?|token_?embed(ding)?s?|wte|wpe|"
    r"pos_?embed(ding)?s?|position_?embed(ding)?s?|posemb\w*|cls|cls_token|class_token)$",
    re.IGNORECASE,
)
# Attention projections: in-projections map one input axis to (heads, head_dim);
# the output projection maps (heads, head_dim) to one output axis.
_ATTENTION_IN = re.compile(r"^(query|key|value|qkv|q_proj|k_proj|v_proj)$", re.IGNORECASE)
_ATTENTION_OUT = re.compile(r"^(out|out_proj|o_proj)$", re.IGNORECASE)

# The authors' selection: no classifier, no 1×1 (shortcut) convolutions.
_CLASSIFIER_COMPONENT = re.compile(r"^(classifier|head|logits|fc|output_layer)$", re.IGNORECASE)

PRESETS = ("paper", "authors")


# ---------------------------------------------------------------------------- paths


def _key_name(key: Any) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)


def path_str(key_path: Sequence[Any]) -> str:
    """Joins a JAX key path into ``a/b/c``, dropping a trailing NNX ``value``."""
    names = [_key_name(k) for k in key_path]
    nnx_value = isinstance(key_path[-1], jax.tree_util.GetAttrKey) if key_path else False
    if len(names) > 1 and nnx_value and names[-1] in ("value", "raw_value"):
        names = names[:-1]
    return "/".join(names)


def leaves_with_paths(tree: Any) -> list[tuple[str, Any]]:
    """All array leaves of ``tree`` as ``(path, leaf)``, in pytree order."""
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [(path_str(kp), leaf) for kp, leaf in flat if hasattr(leaf, "shape")]


# --------------------------------------------------------------------- matrix views


def _input_axes(components: list[str], ndim: int) -> int:
    """Number of leading kernel axes that are inputs (Flax layout)."""
    parent = components[-2] if len(components) > 1 else ""
    if ndim == 3 and _ATTENTION_IN.match(parent):
        return 1
    if ndim == 3 and _ATTENTION_OUT.match(parent):
        return 2
    return ndim - 1


def matrix_view(path: str, leaf: Array) -> Array | None:
    """The 2-D ``(out, in)`` matrix of a weight leaf, or ``None`` if it is not one.

    Args:
      path: the leaf's ``/``-joined path; its last component decides the layout.
      leaf: the parameter array (one member; under ``vmap`` the members axis is implicit).
    """
    components = path.split("/")
    name = components[-1]
    if leaf.ndim < 2 or any(_NOT_MATRIX_COMPONENT.match(c) for c in components):
        return None
    if name in _FLAX_KERNEL_NAMES:
        n_in = _input_axes(components, leaf.ndim)
        n_rows = math.prod(leaf.shape[:n_in])
        return jnp.reshape(leaf, (n_rows, -1)).T
    if name in _TORCH_KERNEL_NAMES:
        return jnp.reshape(leaf, (leaf.shape[0], -1))
    return None


def _is_one_by_one_conv(path: str, leaf: Array) -> bool:
    name = path.split("/")[-1]
    if leaf.ndim < 3:
        return False
    spatial = leaf.shape[:-2] if name in _FLAX_KERNEL_NAMES else leaf.shape[2:]
    return all(s == 1 for s in spatial)


def _is_classifier(path: str) -> bool:
    return any(_CLASSIFIER_COMPONENT.match(c) for c in path.split("/")[:-1])


def _compile(patterns: str | Iterable[str] | None) -> list[re.Pattern[str]]:
    if patterns is None:
        return []
    if isinstance(patterns, str):
        patterns = [patterns]
    return [re.compile(p) for p in patterns]


def weight_matrices(
    params: Any,
    *,
    include: str | Iterable[str] | None = None,
    exclude: str | Iterable[str] | None = None,
    preset: str = "paper",
) -> dict[str, Array]:
    """Selects the weight matrices of a parameter pytree, as 2-D ``(out, in)`` arrays.

    Args:
      params: any pytree of arrays (pass a Flax ``variables["params"]``).
      include: regular expressions (``re.search`` on the path); if given, only matching
        weight matrices are kept. A matching leaf that the default rules do not call a
        weight matrix is kept too when it has ≥ 2 dimensions (read as outputs-last).
      exclude: regular expressions; matching paths are dropped.
      preset: ``"paper"`` (every weight matrix, classifier and 1×1 shortcuts included) or
        ``"authors"`` (the authors' PyTorch selection: no classifier, no 1×1 convolutions).

    Returns:
      ``{path: matrix}`` in pytree order.

    Raises:
      ValueError: unknown preset, or no weight matrix selected (the message lists what
        was searched).
    """
    if preset not in PRESETS:
        raise ValueError(f"rank: unknown preset {preset!r}; choose one of {PRESETS}.")
    includes, excludes = _compile(include), _compile(exclude)
    leaves = leaves_with_paths(params)
    selected: dict[str, Array] = {}
    for path, leaf in leaves:
        matrix = matrix_view(path, leaf)
        forced = any(p.search(path) for p in includes)
        if matrix is None and forced and leaf.ndim >= 2:
            matrix = jnp.reshape(leaf, (-1, leaf.shape[-1])).T
        if matrix is None:
            continue
        if includes and not forced:
            continue
        if any(p.search(path) for p in excludes):
            continue
        if preset == "authors" and (_is_classifier(path) or _is_one_by_one_conv(path, leaf)):
            continue
        selected[path] = matrix
    if not selected:
        shown = ", ".join(f"{p}{tuple(leaf.shape)}" for p, leaf in leaves[:20])
        more = f" (and {len(leaves) - 20} more)" if len(leaves) > 20 else ""
        raise ValueError(
            "rank: no weight matrix found. Searched "
            f"{len(leaves)} leaves: [{shown}{more}] for ≥2-D leaves named "
            f"{_FLAX_KERNEL_NAMES + _TORCH_KERNEL_NAMES} (preset={preset!r}, "
            f"include={include!r}, exclude={exclude!r}). Pass the parameters (e.g. "
            "variables['params']), or select leaves with include=[regex]."
        )
    return selected
