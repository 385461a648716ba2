"""Beyond the paper: representation rank beside weight rank, on Fig. 6's quick variant.

Fig. 6 quick (MLP-BN-10-100 on 2000 Fashion-MNIST images, μ = 0.1, lines λ, panels
B ∈ {4, 8, 16}, three seeds, the horizon rule's λ and epochs) with ``rank.probe_size = 512``:
at every measured epoch each weight layer's outputs (pre-activations) on 512 training
images drawn once from ``rank.probe_seed``, ranked by the same measures as the weights
(``lowrank.train.represent``)::

    python experiments/figure.py --config=configs/representation.py \
        --out workdirs/representation --publish experiments/results/representation

The figure gets a middle row (the layers' outputs' ε-rank) and trends.txt their trends.
A layer's outputs have rank ≤ its weights' (H = XWᵀ): the question is whether the features
lose rank only where the weights do, and by how much more.
"""

from __future__ import annotations

from pathlib import Path

import ml_collections

from lowrank.config_files import load_config_file

PROBE_SIZE = 512


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    if arg:
        raise ValueError(f"configs/representation.py: takes no argument (got {arg!r}).")
    c = load_config_file(Path(__file__).with_name("fig06.py"), "quick")
    c.rank.probe_size = PROBE_SIZE
    c.figure.number = 0
    c.figure.title = f"{c.figure.title}: weights and layer outputs ({PROBE_SIZE} probe images)"
    return c
