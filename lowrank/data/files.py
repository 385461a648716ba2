"""Readers for the standard distribution files of the paper's datasets, and the data errors.

Everything here is plain NumPy (SciPy for SVHN's ``.mat`` files, imported lazily): no
TensorFlow, no network. Each reader checks what it can: the IDX magic number and the sizes
its header announces, image and label counts that agree, and, where the canonical content
is known, the MD5 of the raw (decompressed) file, so a recompressed copy of the right data
is accepted and a truncated or altered one is refused.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import tarfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from lowrank.data.errors import CorruptDataError, DataConfigError, DataNotFoundError
from lowrank.data.sources import (
    CIFAR10_FOLDER,
    CIFAR10_TARBALL,
    CIFAR10_TRAIN_BATCHES,
    IDX_FILES,
    KNOWN_MD5,
    LOCAL_FILES_HELP,
    SVHN_FILES,
)
from lowrank.data.spec import SPLITS

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def md5_hex(data: bytes) -> str:
    """Returns the hexadecimal MD5 digest of `data`."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _check_md5(data: bytes, expected: str | None, path: Path | str, what: str) -> None:
    if expected is None:
        return
    got = md5_hex(data)
    if got != expected:
        raise CorruptDataError(
            f"{path}: the raw content of {what} has MD5 {got}, expected {expected} (the "
            "canonical release). The file is truncated, altered or a different version: "
            "download it again. If you use a modified copy on purpose, set "
            "--config.data.verify=False."
        )


def read_bytes(path: Path | str) -> bytes:
    """Reads a file, decompressing it when its name ends in ``.gz``."""
    path = Path(path)
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise CorruptDataError(
                f"{path}: not a valid gzip file ({e}); download it again."
            ) from e
    return raw


def parse_idx(data: bytes, source: Path | str = "<bytes>") -> np.ndarray:
    """Parses the bytes of an IDX file (MNIST's format) holding unsigned bytes.

    Args:
      data: the raw, decompressed content.
      source: where the bytes came from, for error messages.

    Returns:
      A uint8 array with the shape the header announces.

    Raises:
      CorruptDataError: bad magic number, a type other than unsigned byte, or a payload
        whose size differs from the one the header announces.
    """
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise CorruptDataError(
            f"{source}: bad IDX magic number {data[:4].hex() or '(empty file)'}; an IDX file "
            "starts with bytes 00 00 08 <ndim>. The file is not an MNIST-format file or is "
            "damaged: download it again."
        )
    dtype_code, ndim = data[2], data[3]
    if dtype_code != 0x08:
        raise CorruptDataError(
            f"{source}: IDX element type 0x{dtype_code:02x}; only unsigned bytes (0x08) are "
            "expected for image and label files."
        )
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise CorruptDataError(f"{source}: truncated IDX header ({len(data)} bytes).")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape))
    got = len(data) - header
    if got != expected:
        raise CorruptDataError(
            f"{source}: the IDX header announces shape {shape} ({expected} bytes of data) but "
            f"the file holds {got}; it is truncated or damaged: download it again."
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def read_idx(path: Path | str, expected_md5: str | None = None) -> np.ndarray:
    """Reads an IDX file (``.gz`` or uncompressed), checking the raw content's MD5 if given."""
    data = read_bytes(path)
    _check_md5(data, expected_md5, path, "this IDX file")
    return parse_idx(data, path)


def _find(folders: Iterable[Path], names: Sequence[str]) -> Path | None:
    for folder in folders:
        for name in names:
            if (folder / name).is_file():
                return folder / name
    return None


def _candidate_folders(folder: Path | str, name: str) -> list[Path]:
    # Accept both the folder itself and a subfolder named after the dataset, so one
    # local_dir can hold several datasets.
    folder = Path(os.path.expanduser(folder))
    return [folder, folder / name]


def find_local_files(name: str, folder: Path | str) -> dict[str, Path]:
    """Locates the standard files of `name` in `folder` (or `folder/name`).

    Returns:
      For IDX datasets, keys ``train_images``, ``train_labels``, ``test_images``,
      ``test_labels``; for CIFAR-10 ``tarball`` or ``folder``; for SVHN ``train``, ``test``.

    Raises:
      DataNotFoundError: naming every file looked for and where.
    """
    folders = _candidate_folders(folder, name)
    where = " or ".join(str(f) for f in folders)
    if name in ("mnist", "fashion_mnist"):
        found, missing = {}, []
        for split, (images, labels) in IDX_FILES.items():
            for kind, base in (("images", images), ("labels", labels)):
                path = _find(folders, (f"{base}.gz", base))
                if path is None:
                    missing.append(f"{base}.gz (or {base})")
                else:
                    found[f"{split}_{kind}"] = path
        if missing:
            raise DataNotFoundError(f"{name}: missing {', '.join(missing)} in {where}.")
        return found
    if name == "cifar10":
        tarball = _find(folders, (CIFAR10_TARBALL,))
        if tarball is not None:
            return {"tarball": tarball}
        for f in folders:
            if all(
                (f / CIFAR10_FOLDER / b).is_file() for b in (*CIFAR10_TRAIN_BATCHES, "test_batch")
            ):
                return {"folder": f / CIFAR10_FOLDER}
        raise DataNotFoundError(
            f"{name}: missing {CIFAR10_TARBALL} (or the folder {CIFAR10_FOLDER}/ with "
            f"data_batch_1..5 and test_batch) in {where}."
        )
    if name == "svhn_cropped":
        found, missing = {}, []
        for split, fname in SVHN_FILES.items():
            path = _find(folders, (fname,))
            if path is None:
                missing.append(fname)
            else:
                found[split] = path
        if missing:
            raise DataNotFoundError(f"{name}: missing {', '.join(missing)} in {where}.")
        return found
    raise DataConfigError(
        f"data.source='local' does not support {name!r}; local files exist for "
        f"{sorted(LOCAL_FILES_HELP)}."
    )


Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _check_pair(images: np.ndarray, labels: np.ndarray, what: str) -> None:
    if images.shape[0] != labels.shape[0]:
        raise CorruptDataError(
            f"{what}: {images.shape[0]} images but {labels.shape[0]} labels; one of the files "
            "is truncated or from another release: download them again."
        )


def _check_canonical(name: str, arrays: Arrays, where: str) -> None:
    n_train, n_test, shape = SPLITS[name]
    x_train, _, x_test, _ = arrays
    for split, x, n in (("train", x_train, n_train), ("test", x_test, n_test)):
        if x.shape != (n, *shape):
            raise CorruptDataError(
                f"{name} {split} split from {where}: shape {x.shape}, expected {(n, *shape)} "
                "for the canonical release. Use the complete original files, or set "
                "--config.data.verify=False to load a different version on purpose."
            )


def read_idx_dataset(name: str, folder: Path | str, verify: bool = True) -> Arrays:
    """Reads MNIST or Fashion-MNIST from IDX files in `folder`.

    Args:
      name: ``mnist`` or ``fashion_mnist`` (selects the known MD5s).
      folder: folder with the four standard files, gzipped or not.
      verify: check the raw MD5s and the canonical sizes.

    Returns:
      ``(train_images (N,28,28,1) uint8, train_labels int32, test_images, test_labels)``.
    """
    files = find_local_files(name, folder)
    md5s = KNOWN_MD5.get(name, {}) if verify else {}
    out = []
    for split in ("train", "test"):
        x_path, y_path = files[f"{split}_images"], files[f"{split}_labels"]
        x = read_idx(x_path, md5s.get(IDX_FILES[split][0]))
        y = read_idx(y_path, md5s.get(IDX_FILES[split][1]))
        if x.ndim != 3 or y.ndim != 1:
            raise CorruptDataError(
                f"{x_path} / {y_path}: IDX shapes {x.shape} and {y.shape}; expected images "
                "(N, H, W) and labels (N,). Are the image and label files swapped?"
            )
        _check_pair(x, y, f"{x_path} / {y_path}")
        out += [x[..., None], y.astype(np.int32)]
    arrays = tuple(out)
    if verify:
        _check_canonical(name, arrays, str(folder))
    return arrays


def _unpickle_cifar(data: bytes, what: str) -> tuple[np.ndarray, np.ndarray]:
    # The CIFAR-10 python release is a pickle of a dict (bytes keys). Unpickling runs code
    # from the file: only point local_dir at files you trust.
    try:
        batch = pickle.loads(data, encoding="bytes")
        # The release was pickled by Python 2 (bytes keys); a re-pickled copy has str keys.
        batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
        x = np.asarray(batch["data"], dtype=np.uint8)
        y = np.asarray(batch["labels"], dtype=np.int32)
    except Exception as e:
        raise CorruptDataError(
            f"{what}: not a readable CIFAR-10 python batch ({type(e).__name__}: {e}); "
            "download the archive again."
        ) from e
    if x.ndim != 2 or x.shape[1] != 32 * 32 * 3:
        raise CorruptDataError(f"{what}: data of shape {x.shape}, expected (N, 3072).")
    _check_pair(x, y, what)
    # Rows are channel-major (1024 red, 1024 green, 1024 blue): → (N, 32, 32, 3).
    return x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), y


def read_cifar10(folder: Path | str, verify: bool = True) -> Arrays:
    """Reads CIFAR-10 from ``cifar-10-python.tar.gz`` or its extracted folder in `folder`."""
    files = find_local_files("cifar10", folder)
    md5s = KNOWN_MD5["cifar10"] if verify else {}
    raw: dict[str, bytes] = {}
    wanted = (*CIFAR10_TRAIN_BATCHES, "test_batch")
    if "tarball" in files:
        path = files["tarball"]
        try:
            with tarfile.open(path, "r:*") as tar:
                for member in tar.getmembers():
                    base = member.name.rsplit("/", 1)[-1]
                    if base in wanted and member.isfile():
                        f = tar.extractfile(member)
                        raw[base] = f.read() if f is not None else b""
        except (tarfile.TarError, OSError, EOFError) as e:
            raise CorruptDataError(
                f"{path}: not a readable tar.gz archive ({e}); download it again."
            ) from e
        missing = [b for b in wanted if b not in raw]
        if missing:
            raise CorruptDataError(
                f"{path}: the archive lacks {', '.join(missing)}; it is truncated or not the "
                "CIFAR-10 python release: download it again."
            )
    else:
        path = files["folder"]
        raw = {b: (path / b).read_bytes() for b in wanted}
    parts = {}
    for b in wanted:
        _check_md5(raw[b], md5s.get(b), path, b)
        parts[b] = _unpickle_cifar(raw[b], f"{path} ({b})")
    x_train = np.concatenate([parts[b][0] for b in CIFAR10_TRAIN_BATCHES])
    y_train = np.concatenate([parts[b][1] for b in CIFAR10_TRAIN_BATCHES])
    arrays = (x_train, y_train, *parts["test_batch"])
    if verify:
        _check_canonical("cifar10", arrays, str(path))
    return arrays


def read_svhn(folder: Path | str, verify: bool = True) -> Arrays:
    """Reads SVHN (cropped digits) from ``train_32x32.mat`` and ``test_32x32.mat``.

    The files store ``X`` as (32, 32, 3, N) and ``y`` as (N, 1) with the digit 0 labelled 10;
    here images become (N, 32, 32, 3) and label 10 becomes 0, as in TFDS's ``svhn_cropped``.
    """
    import scipy.io  # lazily: only this reader needs SciPy

    files = find_local_files("svhn_cropped", folder)
    md5s = KNOWN_MD5["svhn_cropped"] if verify else {}
    out = []
    for split, fname in SVHN_FILES.items():
        path = files[split]
        data = path.read_bytes()
        _check_md5(data, md5s.get(fname), path, fname)
        try:
            mat = scipy.io.loadmat(io.BytesIO(data))
            x = np.asarray(mat["X"])
            y = np.asarray(mat["y"]).reshape(-1)
        except Exception as e:
            raise CorruptDataError(
                f"{path}: not a readable SVHN .mat file ({type(e).__name__}: {e}); download "
                "it again."
            ) from e
        if x.ndim != 4 or x.shape[:3] != (32, 32, 3):
            raise CorruptDataError(f"{path}: X has shape {x.shape}, expected (32, 32, 3, N).")
        x = np.ascontiguousarray(np.transpose(x, (3, 0, 1, 2)).astype(np.uint8))
        if y.size and (y.min() < 0 or y.max() > 10):
            raise CorruptDataError(f"{path}: labels outside 0..10 ({y.min()}..{y.max()}).")
        y = np.where(y == 10, 0, y).astype(np.int32)
        _check_pair(x, y, str(path))
        out += [x, y]
    arrays = tuple(out)
    if verify:
        _check_canonical("svhn_cropped", arrays, str(folder))
    return arrays


def read_local(name: str, folder: Path | str, verify: bool = True) -> Arrays:
    """Reads dataset `name` from its standard files in `folder` (see `find_local_files`)."""
    if name in ("mnist", "fashion_mnist"):
        return read_idx_dataset(name, folder, verify)
    if name == "cifar10":
        return read_cifar10(folder, verify)
    if name == "svhn_cropped":
        return read_svhn(folder, verify)
    raise DataConfigError(
        f"no local-file reader for {name!r}; local files exist for {sorted(LOCAL_FILES_HELP)}."
    )
