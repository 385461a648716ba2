"""Beyond the paper: SGD, AdamW and Adam + L2 against B, at equal steps (equal horizons).

MLP-BN-10-100 on 2048 Fashion-MNIST images, lines B ∈ {4, 16, 64} under
``train.budget = "steps"`` (every B takes the 13 824 steps of 27 epochs at B = 4, so every
member reaches the same horizon), three seeds, one panel per optimizer::

    python experiments/figure.py --config=configs/optimizers_batch.py \
        --out workdirs/optimizers_batch --publish experiments/results/optimizers_batch

SGD at μ = 0.1, λ = 5e-3 (2μλ = 1e-3, the horizon rule's ceiling at B = 4) reaches
h = 13.8 = 2 ln(1/ε), as ``configs/equal_steps.py``'s equal-steps panel; AdamW and Adam at
μ = 1e-3 with λ = 0.5: the same 2μλ per step and, under AdamW, the same h. What is left of
B at equal h is the steps' noise: SGD's gradient noise ∝ μ²/B, while Adam normalizes its
steps per coordinate.
"""

from __future__ import annotations

import ml_collections

from lowrank.figures import figure_section, optimizer_panels, paper_config, quick_variant

BATCH_SIZES = (4, 16, 64)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    if arg:
        raise ValueError(f"configs/optimizers_batch.py: takes no argument (got {arg!r}).")
    c = paper_config("mlp_bn")
    c.model.width, c.model.depth = 100, 10
    c.sweep.learning_rates = (0.1,)
    c.sweep.weight_decays = (5e-3,)
    c.sweep.batch_sizes = BATCH_SIZES
    adam = {"sweep.learning_rates": (1e-3,), "sweep.weight_decays": (0.5,)}
    c.figure = figure_section(
        0,
        "curves",
        "batch_size",
        optimizer_panels("μ = 0.1, λ = 5e-3", "μ = 1e-3, λ = 0.5", adam),
        scale="full",
        title="MLP-BN-10-100: lines B at equal SGD steps (equal h), SGD vs AdamW vs Adam + L2",
    )
    quick_variant(
        c,
        epochs=27,
        train_subset=2048,
        reduced="Fig. 7's quick setting at one μ, equal steps; 2048 examples so every B "
        "splits them.",
    )
    c.train.budget = "steps"
    c.train.eval_every = c.rank.every = 3
    c.rank.spectra_every = 0
    return c
