"""The main job: MLP-BN on Fashion-MNIST, a weight-decay sweep over two seeds (CPU size).

Run (80 seconds on a quiet 2-core CPU, measured 2026-12-01)::

    python -m lowrank.main --config=configs/default.py --workdir=workdirs/default

What to expect: the summary table at the end shows the paper's effect (Prediction 4.1):
the final average rank at ε = 1e-3 falls as λ rises, and stays near its initial value at
λ = 0. ``--config=configs/default.py:quick`` is a one-minute smoke run of the same sweep.
"""

from __future__ import annotations

import ml_collections

from lowrank.config import base_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = base_config("mlp_bn")
    c.model.width = 256  # MLP-BN-3-256: small enough for a CPU, wide enough to lose rank
    c.model.depth = 3
    c.data.name = "fashion_mnist"  # Debian's dataset-fashion-mnist: offline
    c.data.train_subset = 10_000  # a stratified subset keeps epochs short on a CPU
    c.augment.crop = False  # Fashion-MNIST items are centred; augmentation only slows
    c.augment.flip = False  # the CPU run down without changing the rank effect
    c.augment.rotate = False
    c.train.epochs = 12
    c.optim.schedule = "constant"
    c.sweep.seeds = (0, 1)
    c.sweep.learning_rates = (0.1,)
    c.sweep.weight_decays = (0.0, 1e-3, 3e-3, 1e-2, 3e-2)  # λ; 0 included
    c.sweep.momenta = (0.0,)
    c.sweep.batch_sizes = (16,)
    c.rank.spectra_every = 4
    if arg == "quick":
        c.data.train_subset = 2_000
        c.train.epochs = 2
    elif arg:
        raise ValueError(f"configs/default.py: unknown argument {arg!r}; use 'quick' or none.")
    return c
