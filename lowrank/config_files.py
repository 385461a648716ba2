"""Config files loaded by path: ``configs/figNN.py`` and the like, outside absl flags.

``lowrank.main`` and ``experiments/figure.py`` read ``--config=path[:arg]`` through
ml-collections' ``config_flags``; scripts, benchmarks and tests that want the same config
without parsing flags call :func:`load_config_file`.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import ml_collections


def load_module(path: str | Path) -> ModuleType:
    """The Python file at ``path``, executed as a module named after its stem."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no config file at {path}: give the path of a .py file that defines "
            "get_config (e.g. configs/fig06.py)."
        )
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_config_file(path: str | Path, arg: str | None = None) -> ml_collections.ConfigDict:
    """``get_config(arg)`` of the config file at ``path``: what ``--config=path:arg`` gives."""
    module = load_module(path)
    if not hasattr(module, "get_config"):
        raise AttributeError(f"{path} defines no get_config(arg=None); a config file must.")
    return module.get_config(arg)
