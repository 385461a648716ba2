"""Fig. 5: MLP-BN-10-100 on CIFAR-10 with momentum 0.9, lines λ, panels B ∈ {32, 64, 128}.

Full scale (the paper's protocol, appendix B, with momentum β = 0.9 and μ = 0.1)::

    python experiments/figure.py --fig 5 --out workdirs/fig05

Compute (``--estimate``): 45 members, 22,500 member-epochs, 1.4 M sequential SGD steps,
≈ 3.79 PFLOP: about 0.19 GPU-hours on one H200 under the assumptions of
``lowrank.figures.estimate`` (a step takes at least 0.5 ms; 100 TFLOP/s sustained). An
estimate, not a measurement.

Quick (2-core CPU, offline Fashion-MNIST, see ``experiments/README.md``)::

    python experiments/figure.py --fig 5 --quick --out workdirs/fig05_quick

The quick variant follows the horizon rule: every λ × 0.0138, 200 epochs; 4 of 7 claim
rows' claim members end inside the window h ∈ [6.91, 20.7] = [1, 3]·ln(1/ε) (h: 0.69, 2.07,
5.13, 6.9, 10.3, 20.7, 20.7). Evaluated and measured every 17 epochs. Measured here: 6.8
minutes (timing.json).

What to expect (Prediction 4.1 with momentum): the final average rank falls as λ rises.
With momentum, SGD forgets like plain SGD with μ/(1−β) (``lowrank.theory``), so the
effect is stronger than in Fig. 6 at the same μ and λ.
"""

from __future__ import annotations

import ml_collections

from lowrank.figures import figure_section, horizon_rule, panel, paper_config, quick_variant

# The λ grid (chosen; as in Fig. 6). With β = 0.9 the effective 2μλ/(1−β) stays ≤ 0.06.
WEIGHT_DECAYS = (0.0, 1e-3, 3e-3, 1e-2, 3e-2)
BATCH_SIZES = (32, 64, 128)  # the paper's panels


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = paper_config("mlp_bn")
    c.model.width = 100  # MLP-BN-10-100
    c.model.depth = 10
    c.sweep.learning_rates = (0.1,)  # μ
    c.sweep.momenta = (0.9,)  # β (PyTorch semantics, decay inside the momentum buffer)
    c.sweep.weight_decays = WEIGHT_DECAYS  # λ: the lines
    c.figure = figure_section(
        5,
        "curves",
        "weight_decay",
        [panel(f"B={b}", {"sweep.batch_sizes": (b,)}) for b in BATCH_SIZES],
        scale="full",
        title="MLP-BN-10-100 with momentum 0.9, varying λ (μ = 0.1)",
    )
    if arg in horizon_rule.QUICK_ARGS:
        quick_variant(
            c,
            epochs=15,
            train_subset=4000,
            reduced="The model is the paper's (it is small); with B ≥ 32 an epoch of 4000 "
            "examples is at most 125 steps.",
        )
        # CPU budget: 60 epochs took 5.2 min, so 200 (the rule's cap) end within ~18
        horizon_rule.apply(c, max_epochs=horizon_rule.budget(arg, 200))
    elif arg:
        raise ValueError(
            f"configs/fig05.py: unknown argument {arg!r}; use 'quick', 'long' or none."
        )
    return c
