"""Layer structure for the theory: m_l, the number of vectors each weight matrix multiplies.

Lemma 3.1 of the paper bounds the rank of one sample's gradient with respect to a weight
matrix W_l by m_l, the number of vectors ("patches") W_l is applied to for that sample:
1 for a Dense layer on a vector, the number of output positions for a convolution, the
number of tokens for a Dense layer applied per token. We find m_l by tracing the model
with abstract shapes only (``jax.eval_shape``; nothing is computed or compiled) and
recording every ``Dense``/``DenseGeneral``/``Conv`` call, so any Flax model built from
these layers is covered without architecture-specific tables.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from functools import partial
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from lowrank import rank


@dataclasses.dataclass(frozen=True)
class LayerCall:
    """One application of a kernel-carrying layer while tracing one sample.

    Attributes:
      path: the kernel's parameter path, e.g. ``"layer2_0/conv1/kernel"``.
      kind: the Flax class name (``"Dense"``, ``"DenseGeneral"``, ``"Conv"``).
      input_shape: shape of the layer's input (leading batch axis of size 1).
      output_shape: shape of the layer's output.
      vectors: how many vectors the kernel multiplies in this call.
    """

    path: str
    kind: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    vectors: int


def _vectors(module: nn.Module, x: Any, y: Any) -> int:
    """Vectors multiplied by the module's kernel in one call with input x and output y."""
    if isinstance(module, nn.Dense):
        # The kernel contracts the last axis; every other position is one vector.
        return math.prod(x.shape[:-1])
    if isinstance(module, nn.DenseGeneral):
        if module.batch_dims:
            raise NotImplementedError(
                f"{'/'.join(module.path)}: DenseGeneral with batch_dims holds one matrix per "
                "batch index; m_l is not defined for it."
            )
        axes = module.axis if isinstance(module.axis, Sequence) else (module.axis,)
        contracted = {a % x.ndim for a in axes}
        return math.prod(s for i, s in enumerate(x.shape) if i not in contracted)
    if isinstance(module, nn.Conv):
        # One vector (patch) per output position. With feature groups the matrix
        # (c_out, k·c_in/g) has g row blocks, each multiplying its own patches: the rank
        # bound is g·positions.
        return math.prod(y.shape[:-1]) * module.feature_group_count
    raise TypeError(f"no m_l rule for {type(module).__name__}")


_KERNEL_MODULES = (nn.Dense, nn.DenseGeneral, nn.Conv)


def layer_calls(model: nn.Module, input_shape: Sequence[int]) -> tuple[list[LayerCall], Any]:
    """Traces one sample through ``model`` (evaluation mode) and records kernel layers.

    Args:
      model: a Flax linen module called as ``model(x, train=False)``.
      input_shape: one sample's shape ``(H, W, C)``.

    Returns:
      ``(calls, variables)``: the recorded calls in call order, and the abstract
      variables (``jax.ShapeDtypeStruct`` leaves) of the model at that input shape.
    """
    if len(input_shape) != 3:
        raise ValueError(f"input_shape={tuple(input_shape)!r}: expected (H, W, C).")
    calls: list[LayerCall] = []

    def record(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        module = context.module
        if context.method_name == "__call__" and isinstance(module, _KERNEL_MODULES):
            x = args[0]
            calls.append(
                LayerCall(
                    path="/".join((*module.path, "kernel")),
                    kind=type(module).__name__,
                    input_shape=tuple(x.shape),
                    output_shape=tuple(out.shape),
                    vectors=_vectors(module, x, out),
                )
            )
        return out

    # Batch of one: every vector counted then belongs to the single sample.
    x = jax.ShapeDtypeStruct((1, *input_shape), jnp.float32)
    rngs = {"params": jax.random.key(0), "dropout": jax.random.key(1)}
    with nn.intercept_methods(record):
        variables = jax.eval_shape(partial(model.init, train=False), rngs, x)
    return calls, variables


def patch_counts(model: nn.Module, input_shape: Sequence[int], **selection: Any) -> dict[str, int]:
    """m_l for every weight matrix of ``model`` on inputs of shape ``input_shape``.

    Args:
      model: a Flax linen module called as ``model(x, train=False)``.
      input_shape: one sample's shape ``(H, W, C)``.
      **selection: ``include``, ``exclude``, ``preset`` as in
        ``lowrank.rank.weight_matrices``.

    Returns:
      ``{path: m_l}`` with exactly the keys (and order) of
      ``lowrank.rank.weight_matrices(variables["params"], **selection)``. A layer applied
      several times (shared weights) counts the vectors of all its calls.

    Raises:
      ValueError: a selected weight matrix was never applied by a Dense, DenseGeneral or
        Conv layer while tracing, so its m_l is unknown.
    """
    calls, variables = layer_calls(model, input_shape)
    counts: dict[str, int] = {}
    for call in calls:
        counts[call.path] = counts.get(call.path, 0) + call.vectors
    matrices = jax.eval_shape(
        partial(rank.weight_matrices, **selection), variables.get("params", {})
    )
    missing = [p for p in matrices if p not in counts]
    if missing:
        raise ValueError(
            f"patch_counts: no Dense/DenseGeneral/Conv call applied the weight matrices "
            f"{missing}; recorded layers: {sorted(counts)}."
        )
    return {p: counts[p] for p in matrices}


def param_count(tree: Any) -> int:
    """Total number of scalars in a pytree (pass ``variables["params"]`` for parameters)."""
    return sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(tree))
