"""The TensorFlow Datasets route: load prepared datasets, download them, or prepare them offline.

TensorFlow and TFDS are imported here only, inside the functions, so ``import lowrank.data``
stays fast. Nothing here waits on the network: a download is attempted only after a
2-second TCP connect test to the dataset's download host succeeds (and TFDS's own GCS
look-up, which can block offline, is turned off).

Offline preparation (`prepare_from_local`): TFDS's builders download their source files,
check them against the sizes and SHA-256 sums TFDS records, then generate the dataset. When
the source files are already on disk (e.g. Debian's Fashion-MNIST), we run the unmodified
builder with ``DownloadConfig(manual_dir=folder)``: its download manager takes files from
``manual_dir`` by the file names TFDS records. The only obstacle is the checksum: Debian
recompressed the ``.gz`` files, so their SHA-256 differs from TFDS's record although the
content is byte-identical. We therefore verify the raw content ourselves (the MD5s of the
canonical decompressed files, `lowrank.data.sources.KNOWN_MD5`), and only then run the builder as
an unregistered subclass whose expected checksums are those of the verified local files.
No installed file is modified, nothing is registered globally, nothing touches the network,
and the prepared dataset lands in ``data_dir/<name>/<version>`` exactly where
``tfds.builder(name, data_dir=...)`` looks for it.
"""

from __future__ import annotations

import gzip
import importlib
import logging
import os
import socket
import sys
import threading
import types
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from lowrank.data import files, sources
from lowrank.data.errors import CorruptDataError, DataConfigError, DataNotFoundError

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 2.0


def _ensure_importlib_resources() -> None:
    # TFDS 4.9.x imports the `importlib_resources` backport unconditionally but declares it
    # only for Python < 3.9 (tensorflow/datasets#11212), so every builder fails with
    # ModuleNotFoundError when the backport is absent. The standard library's
    # `importlib.resources` offers the two names TFDS uses (`abc.Traversable`, `files`);
    # alias it under the backport's name only when the backport is missing.
    try:
        importlib.import_module("importlib_resources")
    except ModuleNotFoundError:
        import importlib.resources as stdlib_resources

        try:
            abc = importlib.import_module("importlib.resources.abc")
        except ModuleNotFoundError:  # Python 3.10
            abc = importlib.import_module("importlib.abc")
        shim = types.ModuleType("importlib_resources")
        shim.abc = abc
        shim.files = stdlib_resources.files
        sys.modules["importlib_resources"] = shim
        log.warning(
            "importlib_resources is not installed; using the standard library's "
            "importlib.resources for TFDS (pip install importlib_resources to silence this)."
        )


def import_tfds() -> Any:
    """Imports and returns ``tensorflow_datasets``, with a helpful error if it is missing."""
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:
        raise DataNotFoundError(
            f"TensorFlow Datasets is not importable ({e}); install it with "
            "`pip install tensorflow-datasets tensorflow-cpu`, or use data.source='local'."
        ) from e
    _ensure_importlib_resources()
    tfds.disable_progress_bar()
    return tfds


def default_data_dir(data_dir: str | None) -> str:
    """Returns the TFDS data directory: `data_dir`, else ``$TFDS_DATA_DIR``, else TFDS's default."""
    if data_dir:
        return os.path.expanduser(data_dir)
    return os.environ.get("TFDS_DATA_DIR") or os.path.expanduser("~/tensorflow_datasets")


def builder(name: str, data_dir: str | None) -> Any:
    """Returns the TFDS builder of `name` reading from `data_dir` (see `default_data_dir`)."""
    tfds = import_tfds()
    return tfds.builder(name, data_dir=default_data_dir(data_dir))


def is_prepared(name: str, data_dir: str | None) -> bool:
    """Returns whether `name` is prepared in the TFDS data directory (no network)."""
    return bool(builder(name, data_dir).is_prepared())


def _url_infos(name: str) -> dict[str, Any]:
    tfds = import_tfds()
    return dict(tfds.builder_cls(name).url_infos or {})


def can_download(name: str, timeout_s: float = CONNECT_TIMEOUT_S) -> bool:
    """Returns whether the download host of `name` answers a TCP connect within `timeout_s`."""
    urls = list(_url_infos(name))
    if not urls:
        return False
    hosts = set()
    for url in urls:
        parsed = urllib.parse.urlparse(url)
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        hosts.add((parsed.hostname, port))
    return all(_reachable(host, port, timeout_s) for host, port in sorted(hosts))


def _reachable(host: str, port: int, timeout_s: float) -> bool:
    # Through the proxy when one is configured, as the download itself would go.
    proxies = urllib.request.getproxies()
    proxy = proxies.get("https" if port == 443 else "http")
    if proxy:
        parsed = urllib.parse.urlparse(proxy)
        host, port = parsed.hostname or host, parsed.port or port
    result: list[bool] = []

    def connect() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                result.append(True)
        except OSError:
            result.append(False)

    # The socket timeout does not cover name resolution, which can hang for much longer
    # offline; a daemon thread bounds the whole test.
    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(timeout_s + 0.5)
    return bool(result and result[0])


def download_and_prepare(name: str, data_dir: str | None) -> None:
    """Downloads and prepares `name` with TFDS (call only after `can_download`)."""
    tfds = import_tfds()
    b = builder(name, data_dir)
    log.info("TFDS: downloading and preparing %s into %s", name, b.data_dir)
    b.download_and_prepare(download_config=tfds.download.DownloadConfig(try_download_gcs=False))


def _verify_raw_content(name: str, path: Path) -> None:
    # The MD5s we know are of the raw (decompressed) canonical files.
    base = path.name[:-3] if path.name.endswith(".gz") else path.name
    expected = sources.KNOWN_MD5.get(name, {}).get(base)
    if expected is None:
        raise CorruptDataError(
            f"{path}: its SHA-256 differs from the one TFDS records and no checksum of its raw "
            "content is known to verify it instead; use the original file (or "
            "--config.data.verify=False to accept it unverified)."
        )
    data = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
    got = files.md5_hex(data)
    if got != expected:
        raise CorruptDataError(
            f"{path}: the raw content has MD5 {got}, expected {expected} (the canonical "
            "release); download it again."
        )


def prepare_from_local(
    name: str, folder: str | Path, data_dir: str | None, verify: bool = True
) -> None:
    """Prepares TFDS dataset `name` in `data_dir` from source files in `folder`, offline.

    `folder` must hold the files TFDS itself downloads, under the names TFDS records (for
    ``mnist`` / ``fashion_mnist`` the four IDX ``.gz`` files; ``cifar10`` needs
    ``cifar-10-binary.tar.gz``; ``svhn_cropped`` also ``extra_32x32.mat``). A file whose
    SHA-256 differs from TFDS's record is accepted only if the MD5 of its raw content is the
    canonical one (with `verify`; without it, any content is accepted).

    Raises:
      DataNotFoundError: a source file is missing.
      CorruptDataError: a source file fails verification.
    """
    tfds = import_tfds()
    from tensorflow_datasets.core import registered
    from tensorflow_datasets.core.download import checksums

    folder = Path(os.path.expanduser(folder))
    base_cls = tfds.builder_cls(name)
    expected_infos = dict(base_cls.url_infos or {})
    if not expected_infos:
        raise DataConfigError(f"TFDS records no source files for {name!r}.")
    local_infos = {}
    missing = [i.filename for i in expected_infos.values() if not (folder / i.filename).is_file()]
    if missing:
        raise DataNotFoundError(
            f"{name}: cannot prepare TFDS offline: missing {', '.join(missing)} in {folder}."
        )
    for url, info in expected_infos.items():
        path = folder / info.filename
        got = checksums.compute_url_info(path)
        if verify and got.checksum != info.checksum:
            _verify_raw_content(name, path)
        local_infos[url] = checksums.UrlInfo(
            size=got.size, checksum=got.checksum, filename=info.filename
        )

    # An unregistered subclass with the same name (so it writes where `tfds.builder(name)`
    # reads) whose expected checksums are those of the verified local files.
    with registered.skip_registration():
        local_cls = type(
            f"Local{base_cls.__name__}",
            (base_cls,),
            {"name": base_cls.name, "url_infos": local_infos, "__module__": base_cls.__module__},
        )
    b = local_cls(data_dir=default_data_dir(data_dir))
    log.info("TFDS: preparing %s offline from %s into %s", name, folder, b.data_dir)
    b.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(folder), try_download_gcs=False)
    )


def _idx_bytes(array: np.ndarray) -> bytes:
    # The IDX file that holds `array` (unsigned bytes), to compare with the canonical MD5s.
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def restore_source_order(
    name: str, split: str, images: np.ndarray, labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """Puts MNIST-family examples read from TFDS back into the order of the original files.

    TFDS writes examples sorted by a salted MD5 hash of their generation key (the split name
    is the salt; MNIST's builders use the example's index in the IDX file as its key), so
    the stored order is a fixed permutation of the source order. We invert it, then check
    the result by rebuilding the raw IDX content and comparing it with the canonical MD5s.

    Returns:
      ``(images, labels)`` in source order, or None when the order cannot be restored and
      verified (another dataset, a different TFDS hashing scheme, a non-canonical copy).
    """
    if name not in ("mnist", "fashion_mnist"):
        return None
    from tensorflow_datasets.core import hashing

    hasher = hashing.Hasher(split)
    order = np.argsort([hasher.hash_key(i) for i in range(len(labels))], kind="stable")
    x = np.empty_like(images)
    y = np.empty_like(labels)
    x[order] = images
    y[order] = labels
    image_file, label_file = sources.IDX_FILES[split]
    known = sources.KNOWN_MD5[name]
    if files.md5_hex(_idx_bytes(y.astype(np.uint8))) != known[label_file]:
        return None
    if files.md5_hex(_idx_bytes(x[..., 0])) != known[image_file]:
        return None
    return x, y


def load_arrays(name: str, data_dir: str | None, restore_order: bool = True) -> files.Arrays:
    """Loads the train and test splits of a prepared TFDS dataset as host arrays.

    Args:
      name: the TFDS name.
      data_dir: the TFDS data directory (see `default_data_dir`).
      restore_order: for MNIST and Fashion-MNIST, put the examples back into the order of
        the original files when that can be verified (`restore_source_order`), so the TFDS
        and local-file routes give identical arrays (and identical seeded subsets).

    Returns:
      ``(train_images uint8 (N,H,W,C), train_labels int32, test_images, test_labels)``.
    """
    tfds = import_tfds()
    b = builder(name, data_dir)
    out = []
    for split in ("train", "test"):
        ds = b.as_dataset(split=split, batch_size=-1, as_supervised=True, shuffle_files=False)
        x, y = tfds.as_numpy(ds)
        x, y = np.asarray(x, dtype=np.uint8), np.asarray(y, dtype=np.int32)
        if restore_order and name in ("mnist", "fashion_mnist"):
            restored = restore_source_order(name, split, x, y)
            if restored is None:
                log.warning(
                    "TFDS %s/%s: could not restore and verify the original example order; "
                    "keeping TFDS's order.",
                    name,
                    split,
                )
            else:
                x, y = restored
        out += [x, y]
    return tuple(out)
