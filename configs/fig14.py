"""Fig. 14: ‖W_{t−1}‖/‖W_t‖ per layer of ResNet-18 on CIFAR-10, panels μ ∈ {0.01, 0.1, 0.5, 1}.

B = 8, λ = 5e-4 (the setting of Fig. 2's middle panel); the paper's protocol (appendix
B). Theorem 3.3 assumes these ratios tend to 1.

Full scale::

    python experiments/figure.py --fig 14 --out workdirs/fig14

Compute (``--estimate``): 12 members, 6,000 member-epochs, 12.5 M sequential SGD steps,
≈ 1.22e+03 PFLOP: about 11 GPU-hours on one H200 under the assumptions of
``lowrank.figures.estimate`` (a step takes at least 3 ms; 100 TFLOP/s sustained). An
estimate, not a measurement.

Quick (2-core CPU, offline data, see ``experiments/README.md``)::

    python experiments/figure.py --fig 14 --quick --out workdirs/fig14_quick

The quick variant follows the horizon rule: every λ × 0.273, 163 epochs; 1 of 1 claim rows'
claim members end inside the window h ∈ [4.61, 13.8] = [1, 3]·ln(1/ε) (h: 7.97). Evaluated
every 14 epochs, measured every epoch. Measured here: 11.6 minutes (timing.json).

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

LEARNING_RATES = (0.01, 0.1, 0.5, 1.0)  # the paper's panels


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = paper_config("resnet18")
    c.sweep.weight_decays = (5e-4,)  # λ
    c.sweep.batch_sizes = (8,)  # B
    c.figure = figure_section(
        14,
        "norm_ratios",
        "learning_rate",
        [panel(f"μ={mu:g}", {"sweep.learning_rates": (mu,)}) for mu in LEARNING_RATES],
        scale="full",
        title="ResNet-18: ‖W(t−1)‖/‖W(t)‖ per layer (B = 8, λ = 5e-4)",
        epsilon=0.01,
    )
    if arg in horizon_rule.QUICK_ARGS:
        quick_variant(
            c,
            epochs=10,
            train_subset=0,
            dataset="digits",
            model={"width": 8},
            reduced=f"{DIGITS_REASON} ResNet-18 of width 8 (8-16-32-64 channels).",
        )
        # CPU budget: 18 of 20 min at the measured 6.6 min per 60 epochs
        horizon_rule.apply(c, max_epochs=horizon_rule.budget(arg, 163))
    elif arg:
        raise ValueError(
            f"configs/fig14.py: unknown argument {arg!r}; use 'quick', 'long' or none."
        )
    return c
