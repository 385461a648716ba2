"""Fig. 16: singular values of every ResNet-18 layer on CIFAR-10, one line per B.

μ = 5e-3, λ = 6e-3 (the setting of Fig. 4(b)); the paper's protocol (appendix B).

Full scale::

    python experiments/figure.py --fig 16 --out workdirs/fig16

Compute (``--estimate``): 15 members, 7,500 member-epochs, 6.1 M sequential SGD steps, ≈
1.52e+03 PFLOP: about 7.0 GPU-hours on one H200 under the assumptions of
``lowrank.figures.estimate`` (a step takes at least 3 ms; 100 TFLOP/s sustained). An
estimate, not a measurement.

Quick (2-core CPU, offline data, see ``experiments/README.md``)::

    python experiments/figure.py --fig 16 --quick --out workdirs/fig16_quick

The quick variant follows the horizon rule: every λ × 8.77, 127 epochs; 1 of 1 claim rows'
claim members end inside the window h ∈ [6.91, 20.7] = [1, 3]·ln(1/ε) (h: 12). Evaluated
every 11 epochs, measured every 11 epochs. Measured here: 7.1 minutes (timing.json).

What to expect: in each layer the curves cross; smaller B has fewer large singular values
(the "large" ones fall and the "small" ones rise with B, as the paper describes).
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

BATCH_SIZES = (8, 16, 32, 64, 128)  # the lines (as in Fig. 4; chosen)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = paper_config("resnet18")
    c.sweep.learning_rates = (5e-3,)  # μ
    c.sweep.weight_decays = (6e-3,)  # λ
    c.sweep.batch_sizes = BATCH_SIZES  # one compile group per B
    c.rank.spectra_every = 0  # the figure uses the last epoch's singular values
    c.figure = figure_section(
        16,
        "spectra",
        "batch_size",
        [panel("μ=5e-3, λ=6e-3")],
        scale="full",
        title="ResNet-18: singular values per layer, varying B (μ = 5e-3, λ = 6e-3)",
    )
    if arg in horizon_rule.QUICK_ARGS:
        quick_variant(
            c,
            epochs=6,
            train_subset=0,
            dataset="digits",
            model={"width": 8},
            reduced=f"{DIGITS_REASON} ResNet-18 of width 8 (8-16-32-64 channels).",
        )
        # CPU budget: 18 of 20 min at the measured 8.5 min per 60 epochs
        horizon_rule.apply(c, max_epochs=horizon_rule.budget(arg, 127))
    elif arg:
        raise ValueError(
            f"configs/fig16.py: unknown argument {arg!r}; use 'quick', 'long' or none."
        )
    return c
