"""Fig. 17: singular values of every VGG-16 layer on CIFAR-10, one line per B.

μ = 1e-2, λ = 4e-4 (the setting of Fig. 12(c)); the paper's protocol (appendix B).

Full scale::

    python experiments/figure.py --fig 17 --out workdirs/fig17

Compute (``--estimate``): 15 members, 7,500 member-epochs, 6.1 M sequential SGD steps, ≈
782 PFLOP: about 4.3 GPU-hours on one H200 under the assumptions of
``lowrank.figures.estimate`` (a step takes at least 2 ms; 100 TFLOP/s sustained). An
estimate, not a measurement.

Quick (2-core CPU, offline data, see ``experiments/README.md``)::

    python experiments/figure.py --fig 17 --quick --out workdirs/fig17_quick

The quick variant follows the horizon rule: every λ × 41.7, 200 epochs; 1 of 1 claim rows'
claim members end inside the window h ∈ [6.91, 20.7] = [1, 3]·ln(1/ε) (h: 11.9). Evaluated
every 17 epochs, measured every 17 epochs. Measured here: 8.7 minutes (timing.json).

What to expect: smaller B has fewer large singular values in each layer.
"""

from __future__ import annotations

import ml_collections

from lowrank.figures import (
    DIGITS_REASON,
    figure_section,
    horizon_rule,
    panel,
    paper_config,
    quick_variant,
)

BATCH_SIZES = (8, 16, 32, 64, 128)  # the lines (as in Fig. 12; chosen)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = paper_config("vgg16")
    c.sweep.learning_rates = (1e-2,)  # μ
    c.sweep.weight_decays = (4e-4,)  # λ
    c.sweep.batch_sizes = BATCH_SIZES  # one compile group per B
    c.rank.spectra_every = 0  # the figure uses the last epoch's singular values
    c.figure = figure_section(
        17,
        "spectra",
        "batch_size",
        [panel("μ=1e-2, λ=4e-4")],
        scale="full",
        title="VGG-16: singular values per layer, varying B (μ = 1e-2, λ = 4e-4)",
    )
    if arg in horizon_rule.QUICK_ARGS:
        quick_variant(
            c,
            epochs=6,
            train_subset=0,
            dataset="digits",
            model={"width": 8},
            reduced=f"{DIGITS_REASON} VGG-16 of width 8 (8-16-32-64-64 channels).",
        )
        # CPU budget: the rule's cap (18 of 20 min at 5.3 min per 60 epochs)
        horizon_rule.apply(c, max_epochs=horizon_rule.budget(arg, 200))
    elif arg:
        raise ValueError(
            f"configs/fig17.py: unknown argument {arg!r}; use 'quick', 'long' or none."
        )
    return c
