"""Fig. 3: ResNet-18 on CIFAR-10, lines λ (0 included), panels B ∈ {8, 16, 32}, μ = 1.5.

Full scale (the paper's protocol, appendix B)::

    python experiments/figure.py --fig 3 --out workdirs/fig03

Compute (``--estimate``): 45 members, 22,500 member-epochs, 5.5 M sequential SGD steps,
≈ 4.57e+03 PFLOP: about 13 GPU-hours on one H200 under the assumptions of
``lowrank.figures.estimate`` (a step takes at least 3 ms; 100 TFLOP/s sustained). An
estimate, not a measurement.

Quick (2-core CPU, offline data, see ``experiments/README.md``)::

    python experiments/figure.py --fig 3 --quick --out workdirs/fig03_quick

The quick variant follows the horizon rule: every λ × 0.321, every μ × 0.666, 60 epochs; 4
of 7 claim rows' claim members end inside the window h ∈ [6.91, 20.7] = [1, 3]·ln(1/ε) (h:
0.689, 3.44, 5.08, 6.89, 10.3, 20.7, 20.7). Evaluated and measured every 5 epochs. Measured
here: 16.1 minutes (timing.json).

What to expect (Prediction 4.1): the final average rank falls as λ rises; with λ = 0 it
stays high and B barely changes it.
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

# λ: the lines (chosen; the paper plots only). The largest keeps 2μλ = 9e-3 ≪ 1.
WEIGHT_DECAYS = (0.0, 1e-4, 5e-4, 1e-3, 3e-3)
BATCH_SIZES = (8, 16, 32)  # the paper's panels


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = paper_config("resnet18")
    c.sweep.learning_rates = (1.5,)  # μ
    c.sweep.weight_decays = WEIGHT_DECAYS
    c.figure = figure_section(
        3,
        "curves",
        "weight_decay",
        [panel(f"B={b}", {"sweep.batch_sizes": (b,)}) for b in BATCH_SIZES],
        scale="full",
        title="ResNet-18, varying λ (μ = 1.5)",
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
        horizon_rule.apply(c, max_epochs=horizon_rule.budget(arg, 60))
    elif arg:
        raise ValueError(
            f"configs/fig03.py: unknown argument {arg!r}; use 'quick', 'long' or none."
        )
    return c
