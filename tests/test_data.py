"""Tests of lowrank.data: the config, loading, the file readers and the TFDS route."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import socket
import tarfile
import time
from collections import Counter
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lowrank import data
from lowrank.data import files as dl
from lowrank.data import sources

DEBIAN = Path(sources.DEBIAN_FASHION_MNIST_DIR)
HAVE_DEBIAN = (DEBIAN / "train-images-idx3-ubyte.gz").is_file()
needs_debian = pytest.mark.skipif(
    not HAVE_DEBIAN,
    reason=f"Debian's Fashion-MNIST files are not in {DEBIAN} "
    "(sudo apt-get install dataset-fashion-mnist)",
)

# torchvision's values (train) and the published values for the test files (torchvision's raw_data).
FASHION_RAW_MD5 = {
    "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
}


def cfg_for(name: str = "fashion_mnist", **fields):
    cfg = data.default_data_config()
    cfg.name = name
    for key, value in fields.items():
        cfg[key] = value
    return cfg


@pytest.fixture
def offline(monkeypatch):
    """Makes any network access raise at once (and records the attempts)."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError(f"network disabled in this test: {args[:1]}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    return attempts


# ------------------------------------------------------------------ writers of small files


def idx_bytes(array: np.ndarray, dtype_code: int = 0x08) -> bytes:
    header = bytes([0, 0, dtype_code, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    return header + array.astype(np.uint8).tobytes()


def write_idx_set(folder: Path, n_train=12, n_test=5, gz=True, seed=0) -> dl.Arrays:
    rng = np.random.default_rng(seed)
    arrays = (
        rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, n_train).astype(np.uint8),
        rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, n_test).astype(np.uint8),
    )
    names = [*sources.IDX_FILES["train"], *sources.IDX_FILES["test"]]
    order = (0, 1, 2, 3)
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in zip(order, names, strict=True):
        raw = idx_bytes(arrays[i])
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(raw))
        else:
            (folder / name).write_bytes(raw)
    return arrays


def cifar_batch(n: int, rng: np.random.Generator, bytes_keys: bool) -> tuple[dict, np.ndarray]:
    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    rows = images.transpose(0, 3, 1, 2).reshape(n, 3072)  # the release's channel-major rows
    labels = rng.integers(0, 10, n).tolist()
    keys = (b"data", b"labels") if bytes_keys else ("data", "labels")
    return {keys[0]: rows, keys[1]: labels}, images


def write_cifar(folder: Path, as_tarball: bool, bytes_keys: bool = True, drop: str | None = None):
    rng = np.random.default_rng(1)
    batches, images, labels = {}, {}, {}
    for b in (*sources.CIFAR10_TRAIN_BATCHES, "test_batch"):
        d, x = cifar_batch(3, rng, bytes_keys)
        batches[b], images[b] = pickle.dumps(d, protocol=2), x
        labels[b] = np.asarray(d[b"labels" if bytes_keys else "labels"], np.int32)
    folder.mkdir(parents=True, exist_ok=True)
    if as_tarball:
        with tarfile.open(folder / sources.CIFAR10_TARBALL, "w:gz") as tar:
            for b, payload in batches.items():
                if b == drop:
                    continue
                info = tarfile.TarInfo(f"{sources.CIFAR10_FOLDER}/{b}")
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    else:
        (folder / sources.CIFAR10_FOLDER).mkdir()
        for b, payload in batches.items():
            (folder / sources.CIFAR10_FOLDER / b).write_bytes(payload)
    train = sources.CIFAR10_TRAIN_BATCHES
    return (
        np.concatenate([images[b] for b in train]),
        np.concatenate([labels[b] for b in train]),
        images["test_batch"],
        labels["test_batch"],
    )


def write_svhn(folder: Path, n_train=12, n_test=4, x_shape=None):
    import scipy.io

    rng = np.random.default_rng(2)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for fname, n in (("train_32x32.mat", n_train), ("test_32x32.mat", n_test)):
        images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        digits = np.arange(n) % 10  # every digit, 0 included
        y = np.where(digits == 0, 10, digits).reshape(n, 1).astype(np.uint8)
        x = images.transpose(1, 2, 3, 0) if x_shape is None else np.zeros(x_shape, np.uint8)
        scipy.io.savemat(folder / fname, {"X": x, "y": y})
        out += [images, digits.astype(np.int32)]
    return tuple(out)


# ------------------------------------------------------------------ Fashion-MNIST (Debian)


@pytest.fixture(scope="module")
def fashion():
    if not HAVE_DEBIAN:
        pytest.skip(f"Debian's Fashion-MNIST files are not in {DEBIAN}")
    return data.load_dataset(cfg_for("fashion_mnist"))


@needs_debian
def test_fashion_mnist_debian_raw_md5s():
    for base, expected in FASHION_RAW_MD5.items():
        raw = gzip.decompress((DEBIAN / f"{base}.gz").read_bytes())
        assert hashlib.md5(raw).hexdigest() == expected, base
        assert sources.KNOWN_MD5["fashion_mnist"][base] == expected


@needs_debian
def test_fashion_mnist_from_debian(fashion):
    ds = fashion
    assert ds.train_images.shape == (60000, 28, 28, 1)
    assert ds.test_images.shape == (10000, 28, 28, 1)
    assert ds.train_images.dtype == np.uint8 and ds.train_labels.dtype == np.int32
    assert ds.input_shape == (28, 28, 1) and ds.num_classes == 10
    np.testing.assert_array_equal(np.bincount(ds.train_labels), np.full(10, 6000))
    np.testing.assert_array_equal(np.bincount(ds.test_labels), np.full(10, 1000))
    assert ds.val_images is None and ds.val_labels is None
    assert "Debian" in ds.source
    # The well-known Fashion-MNIST statistics (0.2860, 0.3530).
    np.testing.assert_allclose(ds.mean, [0.28604], atol=1e-4)
    np.testing.assert_allclose(ds.std, [0.35302], atol=1e-4)
    assert ds.mean.dtype == np.float32 and ds.mean.shape == (1,)


@needs_debian
def test_fashion_mnist_source_debian_with_subset(fashion):
    ds = data.load_dataset(cfg_for("fashion_mnist", source="debian", train_subset=100))
    np.testing.assert_array_equal(np.bincount(ds.train_labels), np.full(10, 10))
    np.testing.assert_array_equal(ds.test_images, fashion.test_images)


@needs_debian
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_tfds_prepares_fashion_mnist_offline_and_matches_idx(tmp_path, offline):
    """TFDS prepares Fashion-MNIST from Debian's files, offline, and gives the IDX arrays."""
    pytest.importorskip("tensorflow", reason="TFDS needs TensorFlow to prepare datasets")
    tfds = pytest.importorskip("tensorflow_datasets")

    def snapshot() -> dict[str, tuple[int, int]]:
        root = Path(tfds.__file__).parent
        return {
            str(p): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in root.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
        }

    before = snapshot()
    cfg = cfg_for("fashion_mnist", source="tfds", data_dir=str(tmp_path / "tfds"))
    ds = data.load_dataset(cfg)
    assert ds.source.startswith("TFDS") and str(DEBIAN) in ds.source
    assert not offline, f"the network was touched: {offline}"
    assert snapshot() == before, "an installed TFDS file was modified"
    assert (tmp_path / "tfds" / "fashion_mnist").is_dir()

    expected = dl.read_idx_dataset("fashion_mnist", DEBIAN)
    got = (ds.train_images, ds.train_labels, ds.test_images, ds.test_labels)
    for a, b in zip(expected, got, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)

    # Now prepared: a second load reads it back without preparing again.
    again = data.load_dataset(cfg)
    assert "prepared from" not in again.source
    np.testing.assert_array_equal(again.train_images, ds.train_images)


# ------------------------------------------------------------------ digits


def test_digits():
    from sklearn.datasets import load_digits

    ds = data.load_dataset(cfg_for("digits"))
    assert ds.train_images.shape == (1437, 8, 8, 1) and ds.test_images.shape == (360, 8, 8, 1)
    assert ds.train_images.dtype == np.uint8 and ds.train_labels.dtype == np.int32
    assert ds.train_images.max() == 255 and ds.train_images.min() == 0
    ref = load_digits()
    scaled = np.rint(ref.images * 255 / 16).astype(np.uint8)[..., None]
    np.testing.assert_array_equal(ds.test_images, scaled[-360:])
    np.testing.assert_array_equal(ds.train_labels, ref.target[:1437])
    assert set(np.unique(ds.test_labels)) == set(range(10))
    assert ds.num_classes == 10 and ds.input_shape == (8, 8, 1)


def test_subset_validation_padding_and_stats():
    cfg = cfg_for("digits", train_subset=500, validation_size=200, pad_to_32=True, seed=3)
    ds = data.load_dataset(cfg)
    assert ds.train_images.shape == (500, 32, 32, 1)
    assert ds.val_images.shape == (200, 32, 32, 1) and ds.val_labels.shape == (200,)
    assert ds.test_images.shape == (360, 32, 32, 1)
    # Zero border of 12 pixels around the 8×8 digits.
    assert ds.train_images[:, :12].max() == 0 and ds.train_images[:, 20:].max() == 0
    # Stratified: class proportions of the 1437 training examples are kept to ±1.
    full = data.load_dataset(cfg_for("digits"))
    share = np.bincount(full.train_labels, minlength=10) / full.num_train
    assert np.abs(np.bincount(ds.train_labels, minlength=10) - 500 * share).max() <= 1
    assert np.abs(np.bincount(ds.val_labels, minlength=10) - 200 * share).max() <= 1

    # Train and validation are disjoint pieces of the original training split (as multisets).
    def keys(images, labels):
        return Counter(r.tobytes() + bytes([lab]) for r, lab in zip(images, labels, strict=True))

    full_keys = keys(full.train_images, full.train_labels)
    inner = (slice(None), slice(12, 20), slice(12, 20))
    used = keys(ds.train_images[inner], ds.train_labels) + keys(ds.val_images[inner], ds.val_labels)
    assert all(full_keys[k] >= n for k, n in used.items())
    # Statistics come from the final (padded, subset) training split.
    x = ds.train_images.astype(np.float64) / 255
    np.testing.assert_allclose(ds.mean, [x.mean()], rtol=1e-6)
    np.testing.assert_allclose(ds.std, [x.std()], rtol=1e-6)
    # Seeded: same seed, same subset; another seed, another one.
    again = data.load_dataset(cfg)
    np.testing.assert_array_equal(again.train_images, ds.train_images)
    other = data.load_dataset(cfg_for("digits", train_subset=500, seed=4))
    assert not np.array_equal(other.train_labels, ds.train_labels)
    rand = data.load_dataset(cfg_for("digits", train_subset=100, subset_mode="random"))
    assert rand.num_train == 100


# ------------------------------------------------------------------ local-file readers


@pytest.mark.parametrize("gz", [True, False])
def test_idx_reader(tmp_path, gz):
    arrays = write_idx_set(tmp_path / "mnist", gz=gz)
    # verify=False: small files are not the canonical release.
    cfg = cfg_for("mnist", source="local", local_dir=str(tmp_path), verify=False)
    ds = data.load_dataset(cfg)
    np.testing.assert_array_equal(ds.train_images[..., 0], arrays[0])
    np.testing.assert_array_equal(ds.train_labels, arrays[1])
    np.testing.assert_array_equal(ds.test_images[..., 0], arrays[2])
    np.testing.assert_array_equal(ds.test_labels, arrays[3])
    assert ds.train_labels.dtype == np.int32 and ds.input_shape == (28, 28, 1)


@pytest.mark.parametrize("as_tarball", [True, False])
@pytest.mark.parametrize("bytes_keys", [True, False])
def test_cifar10_reader(tmp_path, as_tarball, bytes_keys):
    expected = write_cifar(tmp_path, as_tarball, bytes_keys)
    got = dl.read_cifar10(tmp_path, verify=False)
    for a, b in zip(expected, got, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    assert got[0].shape == (15, 32, 32, 3)


def test_cifar10_through_load_dataset(tmp_path):
    write_cifar(tmp_path / "cifar10", as_tarball=True)
    ds = data.load_dataset(cfg_for("cifar10", local_dir=str(tmp_path), verify=False))
    assert ds.input_shape == (32, 32, 3) and ds.mean.shape == (3,) and ds.std.shape == (3,)


def test_svhn_reader(tmp_path):
    expected = write_svhn(tmp_path)
    got = dl.read_svhn(tmp_path, verify=False)
    for a, b in zip(expected, got, strict=True):
        np.testing.assert_array_equal(a, b)
    assert got[1].dtype == np.int32 and 0 in got[1] and got[1].max() == 9


# ------------------------------------------------------------------ batching on the device


def test_standardize_jit_and_vmap():
    x = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    mean, std = np.array([0.1, 0.2, 0.3], np.float32), np.array([0.5, 0.25, 2.0], np.float32)
    want = (x / 255.0 - mean) / std
    got = jax.jit(data.standardize)(x, mean, std)
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    means = np.stack([mean, mean + 1])
    vm = jax.vmap(data.standardize, in_axes=(None, 0, None))(jnp.asarray(x), means, std)
    np.testing.assert_allclose(vm[1], (x / 255.0 - mean - 1) / std, rtol=1e-6, atol=1e-6)


def test_epoch_permutation_and_remainder():
    assert data.steps_per_epoch(10, 3) == 3
    perm = data.epoch_permutation(jax.random.key(0), 10, 3)
    assert perm.shape == (3, 3) and perm.dtype == jnp.int32
    flat = np.asarray(perm).ravel()
    assert len(set(flat)) == 9 and flat.min() >= 0 and flat.max() < 10
    # Different epochs (keys) shuffle differently; vmap over members equals separate calls.
    keys = jax.random.split(jax.random.key(1), 3)
    batched = jax.jit(jax.vmap(lambda k: data.epoch_permutation(k, 10, 3)))(keys)
    for i in range(3):
        np.testing.assert_array_equal(batched[i], data.epoch_permutation(keys[i], 10, 3))
    assert not np.array_equal(batched[0], batched[1])
    msg = data.describe_remainder(10, 3)
    assert msg is not None and "drops 1 " in msg and "10 training examples" in msg
    assert data.describe_remainder(12, 3) is None
    assert data.describe_remainder(60000, 128) is not None and "96" in data.describe_remainder(
        60000, 128
    )


# ------------------------------------------------------------------ errors that help


def test_error_unknown_dataset():
    with pytest.raises(data.UnknownDatasetError) as e:
        data.load_dataset(cfg_for("cifar100"))
    msg = str(e.value)
    assert "data.name='cifar100'" in msg and all(n in msg for n in data.DATASET_NAMES)
    assert isinstance(e.value, ValueError)
    with pytest.raises(ValueError, match="Did you mean 'svhn_cropped'"):
        data.load_dataset(cfg_for("svhn"))


@pytest.mark.parametrize(
    ("fields", "pattern"),
    [
        ({"source": "web"}, r"data.source='web' is not allowed; use one of auto, local"),
        ({"name": "digits", "source": "tfds"}, r"cannot load 'digits'.*scikit-learn"),
        ({"name": "mnist", "source": "sklearn"}, r"only loads 'digits'"),
        ({"name": "mnist", "source": "debian"}, r"only has 'fashion_mnist'"),
        ({"source": "local"}, r"needs data.local_dir"),
        ({"train_subset": -1}, r"data.train_subset=-1 must be an integer ≥ 0"),
        ({"subset_mode": "balanced"}, r"data.subset_mode='balanced'.*stratified, random"),
        ({"name": "digits", "train_subset": 5000}, r"data.train_subset=5000 exceeds the 1437"),
        ({"name": "digits", "validation_size": 1437}, r"validation_size=1437 must be smaller"),
    ],
)
def test_error_bad_config(fields, pattern):
    with pytest.raises(data.DataConfigError, match=pattern):
        data.load_dataset(cfg_for(**{"name": "fashion_mnist", **fields}))


def test_error_batch_size():
    with pytest.raises(data.BatchSizeError) as e:
        data.steps_per_epoch(300, 512, field="train.batch_size")
    msg = str(e.value)
    assert "train.batch_size=512" in msg and "300 examples" in msg and "≤ 300" in msg
    assert isinstance(e.value, ValueError)
    with pytest.raises(data.DataConfigError, match="batch_size=0 must be a positive integer"):
        data.steps_per_epoch(300, 0)
    with pytest.raises(data.BatchSizeError):
        data.epoch_permutation(jax.random.key(0), 10, 11)


def test_error_missing_local_files(tmp_path):
    with pytest.raises(data.DataNotFoundError) as e:
        data.load_dataset(cfg_for("cifar10", source="local", local_dir=str(tmp_path)))
    msg = str(e.value)
    assert isinstance(e.value, FileNotFoundError)
    assert "Looked for" in msg and str(tmp_path) in msg and "cifar-10-python.tar.gz" in msg
    assert "download_and_prepare()" in msg and "tfds.builder('cifar10'" in msg
    assert "--config.data.local_dir=" in msg
    assert "apt-get" not in msg  # only Fashion-MNIST has a Debian package


def test_error_missing_debian_files(tmp_path, monkeypatch):
    monkeypatch.setattr("lowrank.data.load.DEBIAN_FASHION_MNIST_DIR", str(tmp_path))
    with pytest.raises(data.DataNotFoundError) as e:
        data.load_dataset(cfg_for("fashion_mnist", source="debian"))
    msg = str(e.value)
    assert "sudo apt-get install dataset-fashion-mnist" in msg
    assert "train-images-idx3-ubyte.gz" in msg and str(tmp_path) in msg
    assert "tfds.builder('fashion_mnist'" in msg and "--config.data.local_dir=" in msg


@pytest.mark.timeout(60)
def test_offline_fails_fast_with_the_three_ways(tmp_path, monkeypatch, offline):
    """Offline, an unprepared TFDS dataset with download allowed fails at once."""
    pytest.importorskip("tensorflow_datasets")
    monkeypatch.setattr("lowrank.data.load.DEBIAN_FASHION_MNIST_DIR", str(tmp_path / "none"))
    cfg = cfg_for("fashion_mnist", data_dir=str(tmp_path / "tfds"), download=True)
    start = time.monotonic()
    with pytest.raises(data.DataNotFoundError) as e:
        data.load_dataset(cfg)
    assert time.monotonic() - start < 20
    assert offline, "the connect test should have been attempted"
    msg = str(e.value)
    assert "not prepared in" in msg and str(tmp_path / "tfds") in msg
    assert "did not answer within 2 s" in msg
    assert "1. install Debian's package" in msg and "2. prepare it with TensorFlow" in msg
    assert "3. put the standard distribution files" in msg
    cfg.download = False
    with pytest.raises(data.DataNotFoundError, match=r"TFDS download: off \(data.download=False\)"):
        data.load_dataset(cfg)


def test_tfds_data_dir_honours_env(monkeypatch, tmp_path):
    from lowrank.data import tfds as datasets_tfds

    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    assert datasets_tfds.default_data_dir(None) == str(tmp_path)
    assert datasets_tfds.default_data_dir("/x") == "/x"


def test_error_tfds_offline_preparation_checks_files(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    from lowrank.data import tfds as datasets_tfds

    with pytest.raises(data.DataNotFoundError, match=r"cifar-10-binary\.tar\.gz"):
        datasets_tfds.prepare_from_local("cifar10", tmp_path, str(tmp_path / "tfds"))
    write_idx_set(tmp_path / "fm")  # right names, wrong content
    with pytest.raises(
        data.CorruptDataError, match=r"raw content has MD5 [0-9a-f]{32}, expected [0-9a-f]{32}"
    ):
        datasets_tfds.prepare_from_local("fashion_mnist", tmp_path / "fm", str(tmp_path / "tfds"))


def test_error_corrupt_idx(tmp_path):
    # Wrong content under the canonical names: the raw MD5 check names file and values.
    write_idx_set(tmp_path)
    with pytest.raises(data.CorruptDataError) as e:
        data.load_dataset(cfg_for("fashion_mnist", local_dir=str(tmp_path)))
    msg = str(e.value)
    assert "train-images-idx3-ubyte.gz" in msg and "f4a8712d7a061bf5bd6d2ca38dc4d50a" in msg
    assert "download it again" in msg and "verify=False" in msg
    # Bad magic number.
    bad = tmp_path / "bad.gz"
    bad.write_bytes(gzip.compress(b"\x12\x34\x08\x03" + bytes(20)))
    with pytest.raises(data.CorruptDataError, match="bad IDX magic number 12340803"):
        dl.read_idx(bad)
    # Truncated payload.
    raw = idx_bytes(np.zeros((3, 28, 28), np.uint8))
    (tmp_path / "short").write_bytes(raw[:-5])
    with pytest.raises(data.CorruptDataError, match=r"announces shape \(3, 28, 28\) \(2352 bytes"):
        dl.read_idx(tmp_path / "short")
    # Another element type.
    (tmp_path / "int").write_bytes(idx_bytes(np.zeros((2,), np.uint8), dtype_code=0x0C))
    with pytest.raises(data.CorruptDataError, match="element type 0x0c"):
        dl.read_idx(tmp_path / "int")
    # Not gzip at all.
    (tmp_path / "nogz.gz").write_bytes(b"plain bytes")
    with pytest.raises(data.CorruptDataError, match="not a valid gzip file"):
        dl.read_idx(tmp_path / "nogz.gz")


def test_error_idx_sizes(tmp_path, monkeypatch):
    # Without MD5 checks, a non-canonical size is still refused when verify is on ...
    folder = tmp_path / "mnist"
    write_idx_set(folder)
    monkeypatch.setitem(sources.KNOWN_MD5, "mnist", {})
    with pytest.raises(
        data.CorruptDataError, match=r"shape \(12, 28, 28, 1\), expected \(60000, 28"
    ):
        dl.read_idx_dataset("mnist", folder)
    # ... and images and labels must agree in number, always.
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(idx_bytes(np.zeros(11, np.uint8)))
    )
    with pytest.raises(data.CorruptDataError, match="12 images but 11 labels"):
        dl.read_idx_dataset("mnist", folder, verify=False)
    # Labels outside the classes.
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(idx_bytes(np.full(12, 10, np.uint8)))
    )
    with pytest.raises(data.CorruptDataError, match=r"labels .* lie in 10..10, outside 0..9"):
        data.load_dataset(cfg_for("mnist", local_dir=str(tmp_path), verify=False))


def test_error_corrupt_cifar_and_svhn(tmp_path):
    write_cifar(tmp_path / "a", as_tarball=True, drop="data_batch_3")
    with pytest.raises(data.CorruptDataError, match="lacks data_batch_3"):
        dl.read_cifar10(tmp_path / "a", verify=False)
    write_cifar(tmp_path / "b", as_tarball=True)
    with pytest.raises(data.CorruptDataError, match="c99cafc152244af753f735de768cd75f"):
        dl.read_cifar10(tmp_path / "b")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / sources.CIFAR10_TARBALL).write_bytes(b"not a tarball")
    with pytest.raises(data.CorruptDataError, match=r"not a readable tar\.gz archive"):
        dl.read_cifar10(tmp_path / "c")
    write_svhn(tmp_path / "d", x_shape=(28, 28, 1, 12))
    with pytest.raises(data.CorruptDataError, match=r"X has shape \(28, 28, 1, 12\)"):
        dl.read_svhn(tmp_path / "d", verify=False)
    write_svhn(tmp_path / "e")
    with pytest.raises(data.CorruptDataError, match="e26dedcc434d2e4c54c9b2d4a06d8373"):
        dl.read_svhn(tmp_path / "e")
    with pytest.raises(data.DataNotFoundError, match=r"missing train_32x32\.mat, test_32x32\.mat"):
        dl.read_svhn(tmp_path / "nothing")


def test_import_is_light():
    # `import lowrank.data` must not pull in TensorFlow (only the TFDS route does).
    import subprocess
    import sys

    code = "import sys, lowrank.data; print('tensorflow' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    assert out.stdout.strip() == "False"
