"""Fig. 10: ViT on CIFAR-10, lines λ, panels B ∈ {32, 64, 128}, μ = 0.04.

Full scale (the paper's ViT protocol, appendix B: μ × 0.2 at epochs 60 and 100, 200
epochs)::

    python experiments/figure.py --fig 10 --out workdirs/fig10

Compute (``--estimate``): 45 members, 9,000 member-epochs, 0.5 M sequential SGD steps, ≈
2.46e+03 PFLOP: about 6.8 GPU-hours on one H200 under the assumptions of
``lowrank.figures.estimate`` (a step takes at least 3 ms; 100 TFLOP/s sustained). An
estimate, not a measurement.

Quick (2-core CPU, offline data, see ``experiments/README.md``)::

    python experiments/figure.py --fig 10 --quick --out workdirs/fig10_quick

The quick variant follows the horizon rule: every λ × 1, 24 epochs; 0 of 7 claim rows' claim
members end inside the window h ∈ [6.91, 20.7] = [1, 3]·ln(1/ε) (h: 0.0422, 0.0845, 0.211,
0.422, 0.422, 0.845, 0.845). Evaluated and measured every 2 epochs. Measured here: 14.2
minutes (timing.json).

What to expect (Prediction 4.1): the final average rank falls as λ rises; with λ = 0, B
barely changes it.
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

WEIGHT_DECAYS = (0.0, 5e-4, 1e-3, 5e-3, 1e-2)  # λ: the lines (chosen; the paper plots only)
BATCH_SIZES = (32, 64, 128)  # the paper's panels


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = paper_config("vit")
    c.sweep.learning_rates = (0.04,)  # μ
    c.sweep.weight_decays = WEIGHT_DECAYS
    c.figure = figure_section(
        10,
        "curves",
        "weight_decay",
        [panel(f"B={b}", {"sweep.batch_sizes": (b,)}) for b in BATCH_SIZES],
        scale="full",
        title="ViT, varying λ (μ = 0.04)",
    )
    if arg in horizon_rule.QUICK_ARGS:
        quick_variant(
            c,
            epochs=8,
            train_subset=0,
            dataset="digits",
            model={"width": 32, "mlp_dim": 32, "patch_size": 2},
            reduced=f"{DIGITS_REASON} ViT of width 32 (8 heads of 4, 6 layers, MLP 32) with "
            "2×2 patches, so the 8×8 images give 16 patch tokens (4×4 patches would give 4).",
        )
        horizon_rule.apply(c, max_epochs=horizon_rule.budget(arg, 24))
    elif arg:
        raise ValueError(
            f"configs/fig10.py: unknown argument {arg!r}; use 'quick', 'long' or none."
        )
    return c
