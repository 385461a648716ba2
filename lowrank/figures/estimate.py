"""What a figure costs at full scale: FLOPs and GPU-hours, estimated from the models."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ml_collections

from lowrank import budget, data
from lowrank.figures import shared
from lowrank.figures.spec import panel_configs

STEP_LATENCY_MS = {"mlp_bn": 0.5, "res_bn": 0.6, "vgg16": 2.0, "resnet18": 3.0, "vit": 3.0}
SUSTAINED_TFLOPS = 100.0


def forward_flops(model_config: ml_collections.ConfigDict, shape: Sequence[int]) -> float:
    """FLOPs of one example's forward pass (XLA's count of the lowered program)."""
    import jax
    import jax.numpy as jnp

    from lowrank import models

    model = models.build_model(model_config, 10)
    x = jnp.zeros((8, *shape))
    rngs = {"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(1)}
    v = jax.eval_shape(lambda: model.init(rngs, x, train=False))
    lowered = jax.jit(lambda v, x: model.apply(v, x, train=False)).lower(v, x)
    return float(lowered.cost_analysis()["flops"]) / 8


def estimate(config: ml_collections.ConfigDict) -> dict[str, float]:
    """Rough compute of a figure config (all panels) or a run config, from XLA's FLOPs.

    Training costs ≈ 3 forward passes per example and step, evaluation one forward pass
    per example of the training and test splits per epoch. ``gpu_hours`` models one H200
    with :data:`STEP_LATENCY_MS` and :data:`SUSTAINED_TFLOPS` (assumptions): each step
    takes the larger of the latency and its FLOPs at the sustained rate.

    A panel's compile group that an earlier panel holds (``lowrank.figures.shared``) is
    counted in ``members_copied`` and nowhere else: it is trained once.

    Returns:
      ``members`` (trained), ``members_copied``, ``member_epochs``, ``sequential_steps``
      (the steps of all compile groups, run one after another), ``forward_mflop`` (per
      example, largest panel), ``pflop`` (in total) and ``gpu_hours``.
    """
    total = {"members": 0, "members_copied": 0, "member_epochs": 0, "sequential_steps": 0,
             "pflop": 0.0, "gpu_hours": 0.0, "forward_mflop": 0.0}  # fmt: skip
    cache: dict[str, float] = {}
    rate = SUSTAINED_TFLOPS * 1e12
    for c, copied in _trained_runs(config):
        n_train, n_test, shape = data.SPLITS[c.data.name]
        if c.data.train_subset:
            n_train = min(n_train, c.data.train_subset)
        if c.data.pad_to_32 and shape[0] == 28:
            shape = (32, 32, shape[2])
        key = f"{c.model.to_json()}{shape}"
        if key not in cache:
            cache[key] = forward_flops(c.model, shape)
        fwd = cache[key]
        s = c.sweep
        per_group = len(s.seeds) * len(s.learning_rates) * len(s.weight_decays) * len(s.momenta)
        latency = STEP_LATENCY_MS.get(c.model.name, 1.0) / 1e3
        for b in s.batch_sizes:
            if b in copied:
                total["members_copied"] += per_group
                continue
            epochs = budget.group_epochs(c, b)  # train.budget="steps": ∝ B
            steps = epochs * (n_train // b)
            train_flops = per_group * steps * 3 * b * fwd
            eval_flops = per_group * (epochs + 1) * (n_train + n_test) * fwd
            total["members"] += per_group
            total["member_epochs"] += per_group * epochs
            total["sequential_steps"] += steps
            total["pflop"] += (train_flops + eval_flops) / 1e15
            seconds = steps * max(latency, train_flops / steps / rate) + eval_flops / rate
            total["gpu_hours"] += seconds / 3600
        total["forward_mflop"] = max(total["forward_mflop"], fwd / 1e6)
    return total


def _trained_runs(config: ml_collections.ConfigDict) -> list[tuple[Any, set[int]]]:
    """Each run config of a figure (or the run config itself) with the batch sizes of the
    groups it copies from an earlier panel."""
    if "figure" not in config:
        return [(config, set())]
    panels = panel_configs(config)
    return [
        (p.config, set(shared.shared_groups(p, [(q, Path(q.name)) for q in panels[: p.index]])))
        for p in panels
    ]
