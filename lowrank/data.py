"""The paper's datasets as host arrays, loaded once, plus on-device standardization and batching.

Sources, tried in this order by ``data.source='auto'``:

1. local standard files in ``data.local_dir`` (MNIST / Fashion-MNIST IDX, CIFAR-10 python
   tarball, SVHN ``.mat``), see `lowrank.datasets_local`;
2. for ``fashion_mnist``, Debian's ``dataset-fashion-mnist`` files in
   ``/usr/share/datasets/fashion-mnist`` (found with no configuration);
3. TensorFlow Datasets: a prepared copy in ``data.data_dir`` (or ``$TFDS_DATA_DIR``), else a
   download when the download host answers within 2 seconds and ``data.download`` is on.

``digits`` always comes from scikit-learn. Nothing waits on the network: offline, loading
either succeeds from files or fails at once with a message that says what was looked for,
where, and the ways to get the files.

Standardization statistics come from the final training split (after `pad_to_32`, the
validation hold-out and `train_subset`), in [0, 1] pixel units. Importing this module does
not import TensorFlow (only the TFDS route does).
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from lowrank import datasets_local as dl
from lowrank.datasets_local import (
    DEBIAN_FASHION_MNIST_DIR,
    BatchSizeError,
    CorruptDataError,
    DataConfigError,
    DataError,
    DataNotFoundError,
    UnknownDatasetError,
)

__all__ = [
    "DATASET_NAMES",
    "DEBIAN_FASHION_MNIST_DIR",
    "NUM_CLASSES",
    "SOURCES",
    "BatchSizeError",
    "CorruptDataError",
    "DataConfigError",
    "DataError",
    "DataNotFoundError",
    "Dataset",
    "UnknownDatasetError",
    "default_data_config",
    "describe_remainder",
    "epoch_permutation",
    "load_dataset",
    "standardize",
    "steps_per_epoch",
    "validate_data_config",
]

log = logging.getLogger(__name__)

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


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """A dataset as host NumPy arrays; move it to the device once (``jax.device_put``).

    Attributes:
      name: the dataset name.
      train_images: uint8 (N, H, W, C).
      train_labels: int32 (N,).
      test_images: uint8 (M, H, W, C).
      test_labels: int32 (M,).
      num_classes: number of classes.
      mean: float32 (C,), per-channel mean of the training images in [0, 1] units.
      std: float32 (C,), per-channel standard deviation, same units.
      val_images: uint8 (V, H, W, C), or None without a validation split.
      val_labels: int32 (V,), or None.
      source: where the arrays were read from, for logs.
    """

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    num_classes: int
    mean: np.ndarray
    std: np.ndarray
    val_images: np.ndarray | None = None
    val_labels: np.ndarray | None = None
    source: str = ""

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(H, W, C) of one image."""
        return tuple(self.train_images.shape[1:])

    @property
    def num_train(self) -> int:
        """Number of training examples."""
        return int(self.train_images.shape[0])

    def describe(self) -> str:
        """Returns a one-line summary for logs."""
        val = f" / {len(self.val_labels)} val" if self.val_labels is not None else ""
        return (
            f"{self.name}: {self.num_train} train{val} / {len(self.test_labels)} test, "
            f"{self.input_shape}, {self.num_classes} classes, from {self.source}"
        )


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


# ----------------------------------------------------------------------------- loading


def _load_digits() -> dl.Arrays:
    from sklearn.datasets import load_digits  # lazily: scikit-learn is slow to import

    digits = load_digits()
    # Pixels are integers 0..16; scale to 0..255 like the other datasets' uint8 images.
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    labels = digits.target.astype(np.int32)
    n_train = len(labels) - DIGITS_TEST_SIZE
    return images[:n_train], labels[:n_train], images[n_train:], labels[n_train:]


def _try_tfds(cfg: ml_collections.ConfigDict, looked: list[str]) -> tuple[dl.Arrays, str] | None:
    from lowrank import datasets_tfds as dt  # lazily: imports TFDS only when used

    name = cfg.name
    data_dir = dt.default_data_dir(cfg.data_dir)
    try:
        if dt.is_prepared(name, data_dir):
            return dt.load_arrays(name, data_dir), f"TFDS in {data_dir}"
    except DataNotFoundError as e:  # TFDS not importable
        looked.append(f"TFDS: {e}")
        return None
    looked.append(f"TFDS: {name} is not prepared in {data_dir} (data.data_dir / TFDS_DATA_DIR)")
    if cfg.source == "tfds":
        # Prepare TFDS offline from source files already on this machine, if any.
        folders = [cfg.local_dir] if cfg.local_dir else []
        if name == "fashion_mnist":
            folders.append(DEBIAN_FASHION_MNIST_DIR)
        for folder in folders:
            try:
                dt.prepare_from_local(name, folder, data_dir, verify=cfg.verify)
            except DataNotFoundError as e:
                looked.append(f"TFDS offline preparation: {e}")
                continue
            return dt.load_arrays(name, data_dir), f"TFDS in {data_dir} (prepared from {folder})"
    if not cfg.download:
        looked.append("TFDS download: off (data.download=False)")
        return None
    if not dt.can_download(name):
        looked.append(
            f"TFDS download: the download host did not answer within {dt.CONNECT_TIMEOUT_S:g} s "
            "(offline?)"
        )
        return None
    dt.download_and_prepare(name, data_dir)
    return dt.load_arrays(name, data_dir), f"TFDS in {data_dir} (downloaded)"


def _load_raw(cfg: ml_collections.ConfigDict) -> tuple[dl.Arrays, str]:
    name, source = cfg.name, cfg.source
    if name == "digits":
        return _load_digits(), "scikit-learn (load_digits; last 360 examples = test)"
    looked: list[str] = []
    if source in ("auto", "local"):
        if cfg.local_dir:
            try:
                return dl.read_local(name, cfg.local_dir, cfg.verify), f"files in {cfg.local_dir}"
            except DataNotFoundError as e:
                looked.append(f"local files: {e}")
        else:
            looked.append("local files: data.local_dir is not set")
    if source in ("auto", "debian") and name == "fashion_mnist":
        try:
            arrays = dl.read_idx_dataset(name, DEBIAN_FASHION_MNIST_DIR, cfg.verify)
            return arrays, f"Debian's dataset-fashion-mnist ({DEBIAN_FASHION_MNIST_DIR})"
        except DataNotFoundError as e:
            looked.append(f"Debian package dataset-fashion-mnist: {e}")
    if source in ("auto", "tfds"):
        found = _try_tfds(cfg, looked)
        if found is not None:
            return found
    hint = cfg.data_dir or "~/tensorflow_datasets"
    raise DataNotFoundError(
        f"Dataset {name!r} not found (data.source={source!r}). Looked for:\n"
        + "\n".join(f"  - {line}" for line in looked)
        + f"\nWays to get it:\n{dl.how_to_get(name, hint)}"
    )


def _pick(labels: np.ndarray, n: int, mode: str, rng: np.random.Generator) -> np.ndarray:
    """Returns sorted indices of `n` examples, class-stratified or uniformly random."""
    if mode == "random":
        return np.sort(rng.choice(len(labels), size=n, replace=False))
    classes, counts = np.unique(labels, return_counts=True)
    quota = counts * (n / len(labels))
    take = np.floor(quota).astype(np.int64)
    # Hand the rounding remainder to the classes with the largest fractional parts.
    extra = np.argsort(-(quota - take), kind="stable")[: n - int(take.sum())]
    take[extra] += 1
    chosen = [
        rng.choice(np.flatnonzero(labels == c), size=k, replace=False)
        for c, k in zip(classes, take, strict=True)
    ]
    return np.sort(np.concatenate(chosen))


def _pad_to_32(images: np.ndarray) -> np.ndarray:
    h, w = images.shape[1:3]
    if h > 32 or w > 32:
        raise DataConfigError(
            f"data.pad_to_32=True but the images are {h}×{w}, larger than 32×32; set "
            "data.pad_to_32=False."
        )
    top, left = (32 - h) // 2, (32 - w) // 2
    pad = ((0, 0), (top, 32 - h - top), (left, 32 - w - left), (0, 0))
    return np.pad(images, pad)


def _channel_stats(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # Exact: pixel values are 0..255, so per-channel histograms give mean and variance
    # without a float copy of the whole training set.
    c = images.shape[-1]
    mean, std = np.empty(c), np.empty(c)
    values = np.arange(256, dtype=np.float64) / 255.0
    for ch in range(c):
        hist = np.bincount(images[..., ch].ravel(), minlength=256).astype(np.float64)
        total = hist.sum()
        mean[ch] = hist @ values / total
        std[ch] = np.sqrt(max(hist @ (values - mean[ch]) ** 2 / total, 0.0))
    # A constant channel would divide by zero; leave it unscaled instead.
    std[std == 0] = 1.0
    return mean.astype(np.float32), std.astype(np.float32)


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


def load_dataset(cfg: ml_collections.ConfigDict) -> Dataset:
    """Loads the dataset `cfg` names (see `default_data_config`) as host arrays.

    Raises:
      UnknownDatasetError, DataConfigError: a bad config (before any loading).
      DataNotFoundError: the files are nowhere to be found and cannot be downloaded.
      CorruptDataError: a file exists but fails its format, size or MD5 check.
    """
    validate_data_config(cfg)
    (x_train, y_train, x_test, y_test), source = _load_raw(cfg)
    num_classes = NUM_CLASSES[cfg.name]
    for split, y in (("train", y_train), ("test", y_test)):
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise CorruptDataError(
                f"{cfg.name} {split} labels from {source} lie in {y.min()}..{y.max()}, outside "
                f"0..{num_classes - 1}; the files are damaged or of another dataset."
            )
    if cfg.pad_to_32:
        x_train, x_test = _pad_to_32(x_train), _pad_to_32(x_test)

    check_split_sizes(cfg, len(y_train))
    rng = np.random.default_rng(cfg.seed)
    x_val = y_val = None
    if cfg.validation_size:
        val = _pick(y_train, cfg.validation_size, cfg.subset_mode, rng)
        keep = np.ones(len(y_train), bool)
        keep[val] = False
        x_val, y_val = x_train[val], y_train[val]
        x_train, y_train = x_train[keep], y_train[keep]
    if cfg.train_subset and cfg.train_subset < len(y_train):
        sub = _pick(y_train, cfg.train_subset, cfg.subset_mode, rng)
        x_train, y_train = x_train[sub], y_train[sub]

    mean, std = _channel_stats(x_train)
    ds = Dataset(
        name=cfg.name,
        train_images=np.ascontiguousarray(x_train),
        train_labels=np.ascontiguousarray(y_train, dtype=np.int32),
        test_images=np.ascontiguousarray(x_test),
        test_labels=np.ascontiguousarray(y_test, dtype=np.int32),
        num_classes=num_classes,
        mean=mean,
        std=std,
        val_images=x_val,
        val_labels=None if y_val is None else y_val.astype(np.int32),
        source=source,
    )
    log.info("Loaded %s", ds.describe())
    return ds


# ------------------------------------------------------------------ on the device


def standardize(images: Any, mean: Any, std: Any) -> jax.Array:
    """Maps uint8 images to float32 ``(x / 255 - mean) / std``, per channel.

    Works on host or device arrays, under `jit` and `vmap`; `mean` and `std` broadcast over
    the last (channel) axis.
    """
    x = jnp.asarray(images).astype(jnp.float32) / 255.0
    return (x - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)


def steps_per_epoch(num_examples: int, batch_size: int, *, field: str = "batch_size") -> int:
    """Returns the number of full batches per epoch (the remainder is dropped).

    Args:
      num_examples: size of the training split.
      batch_size: examples per step.
      field: the config field that holds the batch size, for the error message.

    Raises:
      DataConfigError: a batch size that is not a positive integer.
      BatchSizeError: a batch size larger than the training set.
    """
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, (int, np.integer))
        or batch_size <= 0
    ):
        raise DataConfigError(f"{field}={batch_size!r} must be a positive integer.")
    if batch_size > num_examples:
        raise BatchSizeError(
            f"{field}={batch_size} is larger than the training set ({num_examples} examples), "
            f"so an epoch would have no step. Use {field} ≤ {num_examples}, or a larger "
            "training set (data.train_subset=0, a smaller data.validation_size)."
        )
    return num_examples // batch_size


def describe_remainder(num_examples: int, batch_size: int) -> str | None:
    """Says how many examples each epoch drops, or None when the batch size divides the set."""
    dropped = num_examples % batch_size
    if batch_size > num_examples or dropped == 0:
        return None
    return (
        f"batch size {batch_size} does not divide the {num_examples} training examples: each "
        f"epoch uses {num_examples - dropped} in {num_examples // batch_size} steps and drops "
        f"{dropped} ({100.0 * dropped / num_examples:.2f}%), a different random {dropped} "
        "every epoch."
    )


def epoch_permutation(rng: jax.Array, num_examples: int, batch_size: int) -> jax.Array:
    """Returns this epoch's shuffled example indices as int32 (steps, batch_size).

    `num_examples` and `batch_size` are static Python ints; `rng` may be traced (one key per
    member under `vmap`). The last ``num_examples % batch_size`` shuffled indices are dropped.
    """
    steps = steps_per_epoch(num_examples, batch_size)
    perm = jax.random.permutation(rng, num_examples)
    return perm[: steps * batch_size].reshape(steps, batch_size).astype(jnp.int32)
