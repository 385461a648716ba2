"""Fig. 15: ‖W_{t−1}‖/‖W_t‖ per layer of VGG-16 on CIFAR-10, panels B ∈ {8, 16, 32, 64}.

μ = 5e-3, λ = 5e-4 (the setting of Fig. 12(b)); the paper's protocol (appendix B).
Theorem 3.3 assumes these ratios tend to 1.

Full scale::

    python experiments/figure.py --fig 15 --out workdirs/fig15

Compute (``--estimate``): 12 members, 6,000 member-epochs, 5.9 M sequential SGD steps, ≈
625 PFLOP: about 3.8 GPU-hours on one H200 under the assumptions of
``lowrank.figures.estimate`` (a step takes at least 2 ms; 100 TFLOP/s sustained). An
estimate, not a measurement.

Quick (2-core CPU, offline data, see ``experiments/README.md``)::

    python experiments/figure.py --fig 15 --quick --out workdirs/fig15_quick

The quick variant follows the horizon rule: every λ × 44.5, 200 epochs; 1 of 1 claim rows'
claim members end inside the window h ∈ [4.61, 13.8] = [1, 3]·ln(1/ε) (h: 7.97). Evaluated
every 17 epochs, measured every epoch. Measured here: 7.6 minutes (timing.json).

What to expect: every layer's ratio approaches 1 as training goes on.
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

BATCH_SIZES = (8, 16, 32, 64)  # the paper's panels


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = paper_config("vgg16")
    c.sweep.learning_rates = (5e-3,)  # μ
    c.sweep.weight_decays = (5e-4,)  # λ
    c.figure = figure_section(
        15,
        "norm_ratios",
        "batch_size",
        [panel(f"B={b}", {"sweep.batch_sizes": (b,)}) for b in BATCH_SIZES],
        scale="full",
        title="VGG-16: ‖W(t−1)‖/‖W(t)‖ per layer (μ = 5e-3, λ = 5e-4)",
        epsilon=0.01,
    )
    if arg in horizon_rule.QUICK_ARGS:
        quick_variant(
            c,
            epochs=10,
            train_subset=0,
            dataset="digits",
            model={"width": 8},
            reduced=f"{DIGITS_REASON} VGG-16 of width 8 (8-16-32-64-64 channels).",
        )
        # CPU budget: the rule's cap (18 of 20 min at 3.8 min per 60 epochs)
        horizon_rule.apply(c, max_epochs=horizon_rule.budget(arg, 200))
    elif arg:
        raise ValueError(
            f"configs/fig15.py: unknown argument {arg!r}; use 'quick', 'long' or none."
        )
    return c
