"""Loading a dataset as host arrays: from local files, Debian's, TFDS or scikit-learn;
subsets, validation split, standardization statistics."""

from __future__ import annotations

import dataclasses
import logging

import ml_collections
import numpy as np

from lowrank.data import files, sources
from lowrank.data.errors import CorruptDataError, DataConfigError, DataNotFoundError
from lowrank.data.sources import DEBIAN_FASHION_MNIST_DIR
from lowrank.data.spec import (
    DIGITS_TEST_SIZE,
    NUM_CLASSES,
    check_split_sizes,
    validate_data_config,
)

log = logging.getLogger(__name__)


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


def _load_digits() -> files.Arrays:
    from sklearn.datasets import load_digits  # lazily: scikit-learn is slow to import

    digits = load_digits()
    # Pixels are integers 0..16; scale to 0..255 like the other datasets' uint8 images.
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    labels = digits.target.astype(np.int32)
    n_train = len(labels) - DIGITS_TEST_SIZE
    return images[:n_train], labels[:n_train], images[n_train:], labels[n_train:]


def _try_tfds(cfg: ml_collections.ConfigDict, looked: list[str]) -> tuple[files.Arrays, str] | None:
    from lowrank.data import tfds as dt  # lazily: imports TFDS only when used

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


def _load_raw(cfg: ml_collections.ConfigDict) -> tuple[files.Arrays, str]:
    name, source = cfg.name, cfg.source
    if name == "digits":
        return _load_digits(), "scikit-learn (load_digits; last 360 examples = test)"
    looked: list[str] = []
    if source in ("auto", "local"):
        if cfg.local_dir:
            try:
                arrays = files.read_local(name, cfg.local_dir, cfg.verify)
                return arrays, f"files in {cfg.local_dir}"
            except DataNotFoundError as e:
                looked.append(f"local files: {e}")
        else:
            looked.append("local files: data.local_dir is not set")
    if source in ("auto", "debian") and name == "fashion_mnist":
        try:
            arrays = files.read_idx_dataset(name, DEBIAN_FASHION_MNIST_DIR, cfg.verify)
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
        + f"\nWays to get it:\n{sources.how_to_get(name, hint)}"
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
