"""The data config: its fields, the datasets and their standard splits, validation."""

from __future__ import annotations

import difflib

import ml_collections
import numpy as np

from lowrank.data.errors import DataConfigError, UnknownDatasetError

DATASET_NAMES = ("cifar10", "mnist", "fashion_mnist", "svhn_cropped", "digits")
# The standard splits: training and test examples, image shape (H, W, C).
SPLITS = {
    "cifar10": (50_000, 10_000, (32, 32, 3)),
    "mnist": (60_000, 10_000, (28, 28, 1)),
    "fashion_mnist": (60_000, 10_000, (28, 28, 1)),
    "svhn_cropped": (73_257, 26_032, (32, 32, 3)),
    "digits": (1_437, 360, (8, 8, 1)),
}
NUM_CLASSES = {name: 10 for name in DATASET_NAMES}
SOURCES = ("auto", "local", "debian", "tfds", "sklearn")
SUBSET_MODES = ("stratified", "random")

# scikit-learn's digits: 1797 examples; the last 360 (20 %) are the test set, the first 1437
# the training set, i.e. `train_test_split(..., test_size=360, shuffle=False)`. The order of
# the file is fixed, so this split never changes; each class has 33–37 test examples.
DIGITS_TEST_SIZE = 360


def default_data_config() -> ml_collections.ConfigDict:
    """Returns the data config (the ``data`` field of a run config)."""
    cfg = ml_collections.ConfigDict()
    # One of DATASET_NAMES: cifar10, mnist, fashion_mnist, svhn_cropped, digits.
    cfg.name = "fashion_mnist"
    # Where to load from. auto: data.local_dir if set, then Debian's files (fashion_mnist),
    # then TFDS (prepared in data_dir, or downloaded if reachable). local: only local_dir.
    # debian: only /usr/share/datasets/fashion-mnist. tfds: only TFDS (prepared, downloaded,
    # or prepared offline from local_dir / Debian's files). sklearn: digits.
    cfg.source = "auto"
    # TFDS data directory; None → $TFDS_DATA_DIR, else ~/tensorflow_datasets.
    cfg.data_dir = ml_collections.config_dict.placeholder(str)
    # Folder (or folder with a <name>/ subfolder) holding the standard distribution files.
    cfg.local_dir = ml_collections.config_dict.placeholder(str)
    # Let TFDS download when its download host answers a 2-second connect test.
    cfg.download = True
    # Check sizes and the MD5 of the raw content of known files (off: accept modified copies).
    cfg.verify = True
    # Zero-pad 28×28 images to 32×32 (as the authors' code does for MNIST-like data).
    cfg.pad_to_32 = False
    # 0 = the whole training split; else keep this many training examples (quick runs).
    cfg.train_subset = 0
    # How train_subset and validation_size pick examples: stratified (class proportions
    # kept) or random.
    cfg.subset_mode = "stratified"
    # 0 = no validation split; else hold out this many training examples for validation.
    cfg.validation_size = 0
    # Seed of the subset and validation choice (not of training).
    cfg.seed = 0
    return cfg


def _suggest(value: str, allowed: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(str(value), allowed, n=1, cutoff=0.5)
    return f" Did you mean {close[0]!r}?" if close else ""


def validate_data_config(cfg: ml_collections.ConfigDict) -> None:
    """Refuses a bad data config before anything loads or compiles.

    Raises:
      UnknownDatasetError: `name` is not one of DATASET_NAMES.
      DataConfigError: another field has a value that is not allowed.
    """
    if cfg.name not in DATASET_NAMES:
        raise UnknownDatasetError(
            f"data.name={cfg.name!r} is not a known dataset; known: "
            f"{', '.join(DATASET_NAMES)}.{_suggest(cfg.name, DATASET_NAMES)}"
        )
    if cfg.source not in SOURCES:
        raise DataConfigError(
            f"data.source={cfg.source!r} is not allowed; use one of {', '.join(SOURCES)}."
            f"{_suggest(cfg.source, SOURCES)}"
        )
    if cfg.name == "digits" and cfg.source not in ("auto", "sklearn"):
        raise DataConfigError(
            f"data.source={cfg.source!r} cannot load 'digits': it ships with scikit-learn; "
            "use data.source='auto' or 'sklearn'."
        )
    if cfg.source == "sklearn" and cfg.name != "digits":
        raise DataConfigError(
            f"data.source='sklearn' only loads 'digits', not {cfg.name!r}; use 'auto'."
        )
    if cfg.source == "debian" and cfg.name != "fashion_mnist":
        raise DataConfigError(
            f"data.source='debian' only has 'fashion_mnist' (package dataset-fashion-mnist), "
            f"not {cfg.name!r}; use 'auto', 'local' or 'tfds'."
        )
    if cfg.source == "local" and not cfg.local_dir:
        raise DataConfigError(
            "data.source='local' needs data.local_dir: the folder with the standard files, "
            "e.g. --config.data.local_dir=/data/cifar10."
        )
    for field in ("train_subset", "validation_size", "seed"):
        value = cfg[field]
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
            raise DataConfigError(
                f"data.{field}={value!r} must be an integer ≥ 0"
                + (" (0 = all)." if field == "train_subset" else ".")
            )
    if cfg.subset_mode not in SUBSET_MODES:
        raise DataConfigError(
            f"data.subset_mode={cfg.subset_mode!r} is not allowed; use one of "
            f"{', '.join(SUBSET_MODES)}."
        )
    check_split_sizes(cfg, SPLITS[cfg.name][0])


def check_split_sizes(cfg: ml_collections.ConfigDict, n_train: int) -> None:
    """Refuses a validation split or training subset that ``n_train`` examples cannot give.

    Raises:
      DataConfigError: naming the field and the available size.
    """
    if cfg.validation_size and cfg.validation_size >= n_train:
        raise DataConfigError(
            f"data.validation_size={cfg.validation_size} must be smaller than the "
            f"{n_train} training examples of {cfg.name!r}."
        )
    left = n_train - cfg.validation_size
    if cfg.train_subset and cfg.train_subset > left:
        after = (
            f" left after data.validation_size={cfg.validation_size}" if cfg.validation_size else ""
        )
        raise DataConfigError(
            f"data.train_subset={cfg.train_subset} exceeds the {left} training examples of "
            f"{cfg.name!r}{after}; use a smaller subset or 0 for all."
        )


def expected_num_train(cfg: ml_collections.ConfigDict) -> int:
    """The number of training examples :func:`load_dataset` will return for ``cfg`` (from
    the standard split sizes, before anything is read)."""
    n = SPLITS[cfg.name][0] - cfg.validation_size
    return min(n, cfg.train_subset) if cfg.train_subset else n
