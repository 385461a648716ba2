"""Fig. 6: MLP-BN-10-100 on CIFAR-10, lines λ, panels B ∈ {4, 8, 16}, μ = 0.1.

Full scale (the paper's protocol, appendix B)::

    python experiments/figure.py --fig 6 --out workdirs/fig06

Compute (``--estimate``): 45 members, 22,500 member-epochs, 10.9 M sequential SGD steps,
≈ 3.79 PFLOP: about 1.5 GPU-hours on one H200 under the assumptions of
``lowrank.figures.estimate`` (a step takes at least 0.5 ms; 100 TFLOP/s sustained). An
estimate, not a measurement.

Quick (2-core CPU, offline Fashion-MNIST; run here, see ``experiments/README.md``)::

    python experiments/figure.py --fig 6 --quick --out workdirs/fig06_quick \
        --publish experiments/results/fig06

The quick variant follows the horizon rule: every λ × 0.057, 121 epochs; 4 of 7 claim rows'
claim members end inside the window h ∈ [6.91, 20.7] = [1, 3]·ln(1/ε) (h: 0.69, 2.07, 5.17,
6.9, 10.3, 20.7, 20.7). Evaluated and measured every 10 epochs. Measured here: 7.3 minutes
(timing.json).

What to expect (Prediction 4.1): the final average rank falls as λ rises in every panel,
faster for smaller B; with λ = 0 it stays near full rank and B barely matters.
"""

from __future__ import annotations

import ml_collections

from lowrank.figures import figure_section, horizon_rule, panel, paper_config, quick_variant

# The λ grid (chosen: the paper shows it only in its plots). 0 is included to test
# "no weight decay, no low-rank bias"; the largest keeps 2μλ = 6e-3 ≪ 1.
WEIGHT_DECAYS = (0.0, 1e-3, 3e-3, 1e-2, 3e-2)
BATCH_SIZES = (4, 8, 16)  # the paper's panels


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = paper_config("mlp_bn")
    c.model.width = 100  # MLP-BN-10-100
    c.model.depth = 10
    c.sweep.learning_rates = (0.1,)  # μ
    c.sweep.weight_decays = WEIGHT_DECAYS  # λ: the lines
    c.figure = figure_section(
        6,
        "curves",
        "weight_decay",
        [panel(f"B={b}", {"sweep.batch_sizes": (b,)}) for b in BATCH_SIZES],
        scale="full",
        title="MLP-BN-10-100, varying λ (μ = 0.1)",
    )
    if arg in horizon_rule.QUICK_ARGS:
        quick_variant(
            c,
            epochs=12,
            train_subset=2000,
            reduced="The model is the paper's (it is small); 2000 examples keep B = 4 at "
            "500 steps per epoch.",
        )
        # CPU budget: 60 epochs took 8.9 min, so 121 end within ~18
        horizon_rule.apply(c, max_epochs=horizon_rule.budget(arg, 121))
    elif arg:
        raise ValueError(
            f"configs/fig06.py: unknown argument {arg!r}; use 'quick', 'long' or none."
        )
    return c
