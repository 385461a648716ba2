"""Training budgets: equal epochs (the paper's protocol) or equal SGD steps for every B.

At a fixed number of epochs a smaller batch size also takes more steps (∝ 1/B) and so
reaches a larger forgetting horizon h = 2λΣμ_t: the paper's batch-size effect mixes the
two. ``train.budget = "steps"`` separates them: ``train.epochs`` then counts epochs of the
sweep's smallest batch size B_min, and a compile group of batch size B runs
``train.epochs · B/B_min`` epochs — the same number of SGD steps, the same Σμ_t and (for
the same μ, λ, β) the same h. Everything else counted in epochs scales alike
(``train.eval_every``, ``rank.every``, ``rank.spectra_every``, ``checkpoint.every`` and
``optim.milestones``), so every group is evaluated and measured, and changes its learning
rate, at the same step counts; each record carries ``step``, the SGD steps taken so far.

This needs every B to be a multiple of B_min and the training set to split into whole
batches of every B (otherwise the dropped remainders make the step counts differ);
:func:`validate_budget` refuses anything else with the fix.
"""

from __future__ import annotations

import math
from typing import Any

import ml_collections

BUDGETS = ("epochs", "steps")


def budget_of(config: Any) -> str:
    """``train.budget`` ("epochs" where the config predates the field)."""
    return str(config.get("train", {}).get("budget", "epochs"))


def epoch_scale(config: ml_collections.ConfigDict, batch_size: int) -> int:
    """How many of its own epochs a group of ``batch_size`` runs per counted epoch."""
    if budget_of(config) != "steps":
        return 1
    return batch_size // min(config.sweep.batch_sizes)


def group_config(config: ml_collections.ConfigDict, batch_size: int) -> ml_collections.ConfigDict:
    """The config a compile group of ``batch_size`` runs: ``config`` itself under the
    epochs budget; under the steps budget a copy with every epoch count scaled by B/B_min."""
    k = epoch_scale(config, batch_size)
    if k == 1:
        return config
    c = ml_collections.ConfigDict(config.to_dict())
    c.train.epochs = config.train.epochs * k
    c.train.eval_every = config.train.eval_every * k
    c.rank.every = config.rank.every * k
    c.rank.spectra_every = config.rank.spectra_every * k
    c.checkpoint.every = config.checkpoint.every * k
    c.optim.milestones = tuple(int(m) * k for m in config.optim.milestones)
    return c


def group_epochs(config: ml_collections.ConfigDict, batch_size: int) -> int:
    """The epochs a compile group of ``batch_size`` runs."""
    return config.train.epochs * epoch_scale(config, batch_size)


def validate_budget(config: ml_collections.ConfigDict, num_train: int | None) -> list[str]:
    """What is wrong with ``train.budget`` for this sweep (and training set, if known)."""
    budget = budget_of(config)
    if budget not in BUDGETS:
        return [
            f"train.budget={budget!r}: choose 'epochs' (every B runs train.epochs epochs) or "
            "'steps' (every B takes the steps the smallest B takes in train.epochs epochs)."
        ]
    sizes = [b for b in config.sweep.batch_sizes if isinstance(b, int) and b >= 1]
    if budget == "epochs" or not sizes:
        return []
    smallest = min(sizes)
    odd = [b for b in sizes if b % smallest]
    if odd:
        return [
            f"train.budget='steps': B={odd} is not a multiple of the smallest batch size "
            f"{smallest}, so it cannot take the same number of steps in whole epochs; use "
            f"multiples of {smallest} (e.g. {smallest}, {2 * smallest}, {4 * smallest}) or "
            "train.budget='epochs'."
        ]
    whole = math.lcm(*sizes)
    if num_train is not None and num_train % whole:
        return [
            f"train.budget='steps': the {num_train} training examples do not split into "
            f"whole batches of every B in {sorted(sizes)}, so the dropped remainders would "
            f"give them different step counts; use a training set of a multiple of {whole} "
            f"examples (e.g. data.train_subset={max(whole, num_train // whole * whole)})."
        ]
    return []
