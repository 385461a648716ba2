"""Fig. 9: ViT on CIFAR-10, lines B, panels μ ∈ {0.004, 0.008, 0.04}, λ = 5e-4.

Full scale (the paper's ViT protocol, appendix B: μ × 0.2 at epochs 60 and 100, 200
epochs)::

    python experiments/figure.py --fig 9 --out workdirs/fig09

Compute (``--estimate``): 45 members, 9,000 member-epochs, 3.6 M sequential SGD steps, ≈
2.46e+03 PFLOP: about 7.4 GPU-hours on one H200 under the assumptions of
``lowrank.figures.estimate`` (a step takes at least 3 ms; 100 TFLOP/s sustained). An
estimate, not a measurement.

Quick (2-core CPU, offline data, see ``experiments/README.md``)::

    python experiments/figure.py --fig 9 --quick --out workdirs/fig09_quick

The quick variant follows the horizon rule: every λ × 19.9, 22 epochs; 0 of 8 claim rows'
claim members end inside the window h ∈ [6.91, 20.7] = [1, 3]·ln(1/ε) (h: 0.0876, 0.156,
0.193, 0.312, 0.385, 0.771, 1.56, 1.56). Evaluated and measured every 2 epochs. Measured
here: 17.1 minutes (timing.json).

What to expect (Prediction 4.1): smaller B gives a lower final average rank, more so for
larger μ.
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

BATCH_SIZES = (16, 32, 64, 128, 256)  # B: the lines (chosen; the paper plots only)
LEARNING_RATES = (0.004, 0.008, 0.04)  # the paper's panels


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = paper_config("vit")
    c.sweep.weight_decays = (5e-4,)  # λ
    c.sweep.batch_sizes = BATCH_SIZES  # one compile group per B
    c.figure = figure_section(
        9,
        "curves",
        "batch_size",
        [panel(f"μ={mu:g}", {"sweep.learning_rates": (mu,)}) for mu in LEARNING_RATES],
        scale="full",
        title="ViT, varying B (λ = 5e-4)",
    )
    if arg in horizon_rule.QUICK_ARGS:
        quick_variant(
            c,
            epochs=6,
            train_subset=0,
            dataset="digits",
            model={"width": 32, "mlp_dim": 32, "patch_size": 2},
            reduced=f"{DIGITS_REASON} ViT of width 32 (8 heads of 4, 6 layers, MLP 32) with "
            "2×2 patches, so the 8×8 images give 16 patch tokens (4×4 patches would give 4).",
        )
        horizon_rule.apply(c, max_epochs=horizon_rule.budget(arg, 22))
    elif arg:
        raise ValueError(
            f"configs/fig09.py: unknown argument {arg!r}; use 'quick', 'long' or none."
        )
    return c
