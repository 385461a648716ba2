"""Beyond the paper: the batch-size effect at equal epochs and at equal SGD steps.

MLP-BN-10-100 on 2048 Fashion-MNIST images, μ = 0.1, three seeds, lines B ∈ {4, 8, 16, 32,
64}; four panels: {equal epochs (the paper's protocol), equal steps (``train.budget =
"steps"``)} × {λ = 5e-3, λ = 0 (control)}::

    python experiments/figure.py --config=configs/equal_steps.py --out workdirs/equal_steps \
        --publish experiments/results/equal_steps

At a fixed number of epochs a smaller B takes more steps (∝ 1/B) and so reaches a larger
forgetting horizon h = 2λΣμ_t; at equal steps every B reaches the same h, and what is left
of the B effect is the steps' noise (Lemma 3.1: a batch's gradient adds rank ≤ m_l·B).
Values, from the theory: λ = 5e-3 puts B = 4 at the horizon rule's ceiling (2μλ = 1e-3 =
2e-3·4/8 per step), and 27 epochs of B = 4 (13 824 steps) take it to h = 13.8 = 2 ln(1/ε);
at equal epochs B = 8, 16, 32, 64 then reach h = 6.9, 3.5, 1.7, 0.86, at equal steps all
reach 13.8 (B = 64 runs 432 epochs of 32 steps). 2048 examples split into whole batches of
every B, so the step counts are exactly equal.
"""

from __future__ import annotations

import ml_collections

from lowrank.figures import figure_section, panel, paper_config, quick_variant

BATCH_SIZES = (4, 8, 16, 32, 64)  # the lines
WEIGHT_DECAY = 5e-3
EPOCHS = 27  # of B = 4; under the steps budget every B takes its 13 824 steps


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    if arg:
        raise ValueError(f"configs/equal_steps.py: takes no argument (got {arg!r}).")
    c = paper_config("mlp_bn")
    c.model.width, c.model.depth = 100, 10
    c.sweep.learning_rates = (0.1,)
    c.sweep.weight_decays = (WEIGHT_DECAY,)
    c.sweep.batch_sizes = BATCH_SIZES
    c.figure = figure_section(
        0,
        "curves",
        "batch_size",
        [
            panel(
                f"equal {budget}, λ={lam:g}",
                {"train.budget": budget, "sweep.weight_decays": (lam,)},
            )
            for lam in (WEIGHT_DECAY, 0.0)
            for budget in ("epochs", "steps")
        ],
        scale="full",
        title="MLP-BN-10-100, μ = 0.1: lines B at equal epochs and at equal SGD steps",
    )
    quick_variant(
        c,
        epochs=EPOCHS,
        train_subset=2048,
        reduced="Fig. 7's quick setting at one μ; 2048 examples so every B splits them.",
    )
    c.train.eval_every = c.rank.every = 3
    c.rank.spectra_every = 0
    return c
