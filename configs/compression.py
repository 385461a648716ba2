"""The compression study: networks trained with different λ, truncated by SVD.

Each member of the sweep (λ × seeds) is trained, then every weight matrix is cut to its
effective rank at ε (σ/σ_max > ε) and, separately, to fixed fractions of its full rank
min(out, in); test accuracy is re-evaluated and plotted against the fraction of
parameters kept (a rank-r matrix (m, n) counts r·(m + n) when that is less than m·n).

Full scale (ResNet-18 on CIFAR-10, the paper's protocol, B = 16, μ = 0.5)::

    python experiments/compression_study.py --config=configs/compression.py \\
        --out workdirs/compression

Compute: 15 ResNet-18 members × 500 epochs (like one panel of Fig. 3: about 4 GPU-hours on
one H200 under the assumptions of ``lowrank.figures.estimate``), plus 15 × 14 test-set
evaluations.

Quick (2-core CPU, offline Fashion-MNIST; run here, see ``experiments/README.md``)::

    python experiments/compression_study.py --config=configs/compression.py:quick \\
        --out workdirs/compression_quick --publish experiments/results/compression

What to expect: networks trained with larger λ have lower effective ranks, so truncating
them to their ε-rank keeps fewer parameters, at little cost in accuracy; truncated to the
same fraction of full rank, they lose less accuracy than networks trained with λ = 0.
"""

from __future__ import annotations

import ml_collections

from lowrank.config import base_config
from lowrank.figures import paper_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = paper_config("resnet18")
    c.sweep.learning_rates = (0.5,)  # μ
    c.sweep.weight_decays = (0.0, 1e-4, 5e-4, 1e-3, 3e-3)  # λ: the lines (chosen)
    c.sweep.batch_sizes = (16,)  # B: one compile group
    c.compress = ml_collections.ConfigDict()
    # Truncate each matrix to its effective rank at each ε ...
    c.compress.epsilons = (1e-3, 1e-2, 3e-2, 0.1, 0.2, 0.3)
    # ... and to each fraction of its full rank min(out, in).
    c.compress.fractions = (1.0, 0.5, 0.3, 0.2, 0.1, 0.05, 0.02)
    # Matrices never truncated (regexes on paths; kept whole and counted whole). The
    # classifier: cut below rank 10 (10 classes), it merges classes whatever λ was, which
    # hides every other difference (measured: at 0.3 of full rank every λ falls to ≈ 50 %).
    c.compress.keep = ("^classifier/",)
    if arg == "quick":
        q = base_config("mlp_bn")
        q.model.width = 256  # MLP-BN-3-256, as configs/default.py (its rank falls in 12
        q.model.depth = 3  # epochs at λ ≥ 3e-3, so the λ grid spans low and full rank)
        q.data.name = "fashion_mnist"  # offline (Debian's files)
        q.data.train_subset = 10_000
        q.augment.crop = q.augment.flip = q.augment.rotate = False
        q.train.epochs = 12
        q.optim.schedule = "constant"
        q.sweep.seeds = (0, 1, 2)
        q.sweep.learning_rates = (0.1,)
        q.sweep.weight_decays = (0.0, 1e-3, 3e-3, 1e-2, 3e-2)
        q.sweep.batch_sizes = (16,)
        q.compress = c.compress
        c = q
    elif arg:
        raise ValueError(f"configs/compression.py: unknown argument {arg!r}; use 'quick' or none.")
    return c
