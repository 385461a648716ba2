"""lowrank: how SGD with weight decay drives neural-network weight matrices toward low rank.

Importing the package does no work: submodules (``lowrank.rank``, ``lowrank.theory``, ...)
are imported on demand.
"""

__version__ = "0.1.0"
