"""Beyond the paper: SGD, AdamW and Adam + L2 on a conv net against B, at equal steps.

ResNet-18 of width 4 on 1408 digits training images (the largest multiple of 64 of the
1437), lines B ∈ {16, 32, 64} under ``train.budget = "steps"`` (every B takes the 3 520
steps of 40 epochs at B = 16), three seeds, one panel per optimizer::

    python experiments/figure.py --config=configs/optimizers_conv_batch.py \
        --out workdirs/optimizers_conv_batch --publish experiments/results/optimizers_conv_batch

SGD at μ = 0.1 with ``configs/optimizers_conv.py``'s largest λ scaled to these steps
(λ = 1.7e-2, 2μλ = 3.4e-3: h = 12.0 at every B, the window's centre); AdamW and Adam + L2
at μ = 1e-3 with λ × 100.
"""

from __future__ import annotations

import ml_collections

from lowrank.figures import figure_section, optimizer_panels, paper_config, quick_variant

BATCH_SIZES = (16, 32, 64)
TRAIN_SUBSET = 1408  # 22 batches of 64
SGD_WEIGHT_DECAY = 1.7e-2  # h = 2 · 0.1 · 1.7e-2 · 40 · 88 = 12.0


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    if arg:
        raise ValueError(f"configs/optimizers_conv_batch.py: takes no argument (got {arg!r}).")
    c = paper_config("resnet18")
    c.sweep.learning_rates = (0.1,)
    c.sweep.weight_decays = (SGD_WEIGHT_DECAY,)
    c.sweep.batch_sizes = BATCH_SIZES
    adam = {"sweep.learning_rates": (1e-3,), "sweep.weight_decays": (100 * SGD_WEIGHT_DECAY,)}
    c.figure = figure_section(
        0,
        "curves",
        "batch_size",
        optimizer_panels("μ = 0.1, λ = 1.7e-2", "μ = 1e-3, λ = 1.7", adam),
        scale="full",
        title="ResNet-18 (width 4), digits: lines B at equal SGD steps, SGD vs AdamW vs Adam + L2",
    )
    quick_variant(
        c,
        epochs=40,
        train_subset=TRAIN_SUBSET,
        model={"width": 4},
        reduced="ResNet-18 of width 4 on 1408 digits training images, equal steps.",
    )
    c.data.name, c.data.source = "digits", "sklearn"
    c.train.budget = "steps"
    c.train.eval_every = c.rank.every = 4
    c.rank.spectra_every = 0
    return c
