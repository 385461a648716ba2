"""Beyond the paper: from SGD at B = 4 to full-batch gradient descent, at matched horizons.

MLP-BN-10-100 on 2000 Fashion-MNIST images, μ = 0.1, 60 epochs, three seeds; one panel per
batch size B ∈ {4, 8, 16, 64, 250, 2000 (the whole training set: one GD step per epoch)},
lines λ::

    python experiments/figure.py --config=configs/full_batch.py --out workdirs/full_batch \
        --publish experiments/results/full_batch

Every panel's λ grid is Fig. 6's grid × 0.166 (its B = 8 quick grid under the first
horizon rule) × B/8 (× the ratio of steps per epoch
where B does not divide 2000), so that each line reaches the same
forgetting horizon h = 2λΣμ_t = 0, 0.5, 1.5, 5, 15 in every panel (h per epoch is
2μλ·n/B): B then changes only the noise of the steps, not how far the run has come in
forgetting. At B = 2000 the largest λ is 1.245 (2μλ = 0.249 per step: weight decay at
full batch has to be strong per step to reach the same h in 60 steps). Lemma 3.1's bound on
the rank a batch's gradient can add grows with B·m_l; at full batch it is the data's own.
"""

from __future__ import annotations

import ml_collections

from lowrank.figures import figure_section, panel, paper_config, quick_variant

REFERENCE_BATCH = 8
WEIGHT_DECAYS_AT_8 = (0.0, 1.66e-4, 4.98e-4, 1.66e-3, 4.98e-3)  # Fig. 6's grid × 0.166
BATCH_SIZES = (4, 8, 16, 64, 250, 2000)  # 2000: the whole training subset
TRAIN_SUBSET = 2000


def grid_for(batch_size: int) -> tuple[float, ...]:
    """The λ grid whose horizons at ``batch_size`` are those of the B = 8 grid: λ × the
    ratio of steps per epoch (B/8 where B divides the training set)."""
    scale = (TRAIN_SUBSET // REFERENCE_BATCH) / (TRAIN_SUBSET // batch_size)
    return tuple(float(f"{lam * scale:.6g}") for lam in WEIGHT_DECAYS_AT_8)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    if arg:
        raise ValueError(f"configs/full_batch.py: takes no argument (got {arg!r}).")
    c = paper_config("mlp_bn")
    c.model.width, c.model.depth = 100, 10
    c.sweep.learning_rates = (0.1,)
    c.sweep.weight_decays = WEIGHT_DECAYS_AT_8
    c.figure = figure_section(
        0,
        "curves",
        "weight_decay",
        [
            panel(
                "full batch (GD), B=2000" if b == TRAIN_SUBSET else f"B={b}",
                {"sweep.batch_sizes": (b,), "sweep.weight_decays": grid_for(b)},
            )
            for b in BATCH_SIZES
        ],
        scale="full",
        title="MLP-BN-10-100, μ = 0.1: SGD to full-batch GD, λ ∝ B (matched horizons)",
    )
    quick_variant(
        c,
        epochs=60,
        train_subset=TRAIN_SUBSET,
        reduced="Fig. 6's quick setting; λ grid × B/8 per panel so that the horizons match.",
    )
    c.train.eval_every = c.rank.every = 5
    return c
