"""Fig. 1: final average rank of ResNet-18 on CIFAR-10 over pairs of hyperparameters.

Four heat maps (the paper's panels): (a) B = 8 and (b) B = 16 over μ × λ; (c) μ = 0.5
over B × λ; (d) λ = 6e-3 over B × μ. The paper's protocol (appendix B), three seeds.

Full scale::

    python experiments/figure.py --fig 1 --out workdirs/fig01

Compute (``--estimate``): 192 members, of which 144 are trained (panels (c) and (d) copy
their B = 8 and 16 groups from (a) and (b): ``lowrank.figures.shared``), 72,000
member-epochs, 7.03 M sequential SGD steps, ≈ 1.46e+04 PFLOP: about 41 GPU-hours (55
without the copies) on one H200 under the assumptions of
``lowrank.figures.estimate`` (a step takes at least 3 ms; 100 TFLOP/s sustained). An
estimate, not a measurement.

Quick (2-core CPU, offline data, see ``experiments/README.md``)::

    python experiments/figure.py --fig 1 --quick --out workdirs/fig01_quick

The quick variant follows the horizon rule: every λ × 0.166, 20 epochs; 3 of 24 claim rows'
claim members end inside the window h ∈ [6.91, 20.7] = [1, 3]·ln(1/ε) (h: 0.0355, 0.0713,
0.0713, 0.295, 0.297, 0.355, 0.438, 0.594, 0.713, 0.713, 0.876, 0.876, 1.18, 1.19, 1.75,
1.77, 2.38, 3.55, 3.55, 3.57, 3.57, 7.13, 7.13, 7.13). Evaluated and measured every 2
epochs. Measured here: 9.9 minutes (timing.json; 14.6 before the shared groups were
copied).

What to expect (Prediction 4.1): the rank is lowest at the large-μ, large-λ, small-B
corner of every map, and does not change along the λ = 0 row.
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

# The grids (chosen: the paper shows them only in its plots). λ = 0 is included; the
# largest pair keeps 2μλ = 0.012 ≪ 1.
LEARNING_RATES = (0.01, 0.1, 0.5, 1.0)
WEIGHT_DECAYS = (0.0, 5e-4, 2e-3, 6e-3)
BATCH_SIZES = (8, 16, 32, 64)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = paper_config("resnet18")
    mu_lam = {"sweep.learning_rates": LEARNING_RATES, "sweep.weight_decays": WEIGHT_DECAYS}
    c.figure = figure_section(
        1,
        "heatmap",
        ("learning_rate", "weight_decay"),
        [
            panel("(a) B=8", {**mu_lam, "sweep.batch_sizes": (8,)}),
            panel("(b) B=16", {**mu_lam, "sweep.batch_sizes": (16,)}),
            panel(
                "(c) μ=0.5",
                {
                    "sweep.learning_rates": (0.5,),
                    "sweep.weight_decays": WEIGHT_DECAYS,
                    "sweep.batch_sizes": BATCH_SIZES,
                },
                vary=("batch_size", "weight_decay"),
            ),
            panel(
                "(d) λ=6e-3",
                {
                    "sweep.learning_rates": LEARNING_RATES,
                    "sweep.weight_decays": (6e-3,),
                    "sweep.batch_sizes": BATCH_SIZES,
                },
                vary=("batch_size", "learning_rate"),
            ),
        ],
        scale="full",
        title="ResNet-18: final average rank over pairs of hyperparameters",
    )
    if arg in horizon_rule.QUICK_ARGS:
        quick_variant(
            c,
            epochs=4,
            train_subset=0,
            dataset="digits",
            model={"width": 4},
            reduced=f"{DIGITS_REASON} ResNet-18 of width 4 (4-8-16-32 channels): 192 "
            "members in all.",
        )
        horizon_rule.apply(c, max_epochs=horizon_rule.budget(arg, 20))
    elif arg:
        raise ValueError(
            f"configs/fig01.py: unknown argument {arg!r}; use 'quick', 'long' or none."
        )
    return c
