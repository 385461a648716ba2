"""Beyond the paper: SGD, AdamW and Adam + L2 on a conv net, at matched 2μλ.

ResNet-18 of width 4 on scikit-learn's digits (all 1437 training images, as Fig. 13
quick's digits panel), B = 16, 40 epochs (3 560 steps), three seeds, lines λ, one panel
per optimizer::

    python experiments/figure.py --config=configs/optimizers_conv.py \
        --out workdirs/optimizers_conv --publish experiments/results/optimizers_conv

The grid has Fig. 6's ratios (0, 1, 3, 10, 30 × λ₁) with its largest λ placed by the
horizon rule's window: SGD at μ = 0.1 reaches h = 2λΣμ_t = 0, 0.4, 1.2, 4, 12 (12: the
geometric centre of [ln(1/ε), 3 ln(1/ε)]), with 2μλ ≤ 3.4e-3, inside the rule's ceiling
2e-3·16/8 at B = 16. AdamW and Adam run at μ = 1e-3 with every λ × 100: the same 2μλ per
step and, under AdamW, the same h.
"""

from __future__ import annotations

import ml_collections

from lowrank.figures import figure_section, optimizer_panels, paper_config, quick_variant

SGD_WEIGHT_DECAYS = (0.0, 5.62e-4, 1.69e-3, 5.62e-3, 1.69e-2)  # h = 0, 0.4, 1.2, 4, 12
SGD_LEARNING_RATE, ADAM_LEARNING_RATE = 0.1, 1e-3


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    if arg:
        raise ValueError(f"configs/optimizers_conv.py: takes no argument (got {arg!r}).")
    c = paper_config("resnet18")
    c.sweep.learning_rates = (SGD_LEARNING_RATE,)
    c.sweep.weight_decays = SGD_WEIGHT_DECAYS
    c.sweep.batch_sizes = (16,)
    scale = SGD_LEARNING_RATE / ADAM_LEARNING_RATE  # the same 2μλ per step
    adam = {
        "sweep.learning_rates": (ADAM_LEARNING_RATE,),
        "sweep.weight_decays": tuple(float(f"{lam * scale:.6g}") for lam in SGD_WEIGHT_DECAYS),
    }
    c.figure = figure_section(
        0,
        "curves",
        "weight_decay",
        optimizer_panels("μ = 0.1", "μ = 1e-3, λ × 100", adam),
        scale="full",
        title="ResNet-18 (width 4), digits, B = 16: SGD, AdamW and Adam + L2 at matched 2μλ",
    )
    quick_variant(
        c,
        epochs=40,
        train_subset=0,
        model={"width": 4},
        reduced="ResNet-18 of width 4 on digits (all 1437 training images), as Fig. 13 quick.",
    )
    c.data.name, c.data.source = "digits", "sklearn"
    c.train.eval_every = c.rank.every = 4
    return c
