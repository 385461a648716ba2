"""The paper's figures: configs (:mod:`~lowrank.figures.spec`), compute estimates
(:mod:`~lowrank.figures.estimate`) and plots (:mod:`~lowrank.figures.plots`,
:mod:`~lowrank.figures.layer_plots`, :mod:`~lowrank.figures.style`).

Figure config files (``configs/figNN.py``) use the names exported here; plotting is
imported on demand (``from lowrank.figures import plots``), as it loads matplotlib.
"""

from lowrank.figures.estimate import estimate, forward_flops
from lowrank.figures.spec import (
    DIGITS_REASON,
    KINDS,
    OFFLINE_DATASETS,
    SCALES,
    Panel,
    figure_section,
    manifest,
    optimizer_panels,
    panel,
    panel_configs,
    paper_config,
    quick_variant,
    set_fields,
    validate_figure,
    write_manifest,
)

__all__ = [
    "DIGITS_REASON",
    "KINDS",
    "OFFLINE_DATASETS",
    "SCALES",
    "Panel",
    "estimate",
    "figure_section",
    "forward_flops",
    "manifest",
    "optimizer_panels",
    "panel",
    "panel_configs",
    "paper_config",
    "quick_variant",
    "set_fields",
    "validate_figure",
    "write_manifest",
]
