"""The standard distribution files of each dataset: names, MD5s, where they come from."""

from __future__ import annotations

DEBIAN_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"

# MD5 of the raw, decompressed files. Fashion-MNIST: torchvision's values, verified on the
# Debian files (all four match the values torchvision records). MNIST: the values published
# alongside the original files (torchvision, PyTorch's CI scripts). CIFAR-10: the extracted
# python batches (torchvision). SVHN: the .mat files themselves (torchvision).
KNOWN_MD5: dict[str, dict[str, str]] = {
    "fashion_mnist": {
        "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    },
    "mnist": {
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    },
    "cifar10": {
        "data_batch_1": "c99cafc152244af753f735de768cd75f",
        "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
        "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
        "data_batch_4": "634d18415352ddfa80567beed471001a",
        "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
        "test_batch": "40351d587109b95175f43aff81a1287e",
    },
    "svhn_cropped": {
        "train_32x32.mat": "e26dedcc434d2e4c54c9b2d4a06d8373",
        "test_32x32.mat": "eb5a983be6a315427106f1b164d9cef3",
    },
}

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
CIFAR10_TARBALL = "cifar-10-python.tar.gz"
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
SVHN_FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat"}

# What a user puts in `data.local_dir`, and where the files come from.
LOCAL_FILES_HELP = {
    "mnist": (
        "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
        "t10k-labels-idx1-ubyte.gz (or the same names uncompressed), from "
        "https://storage.googleapis.com/cvdf-datasets/mnist/"
    ),
    "fashion_mnist": (
        "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
        "t10k-labels-idx1-ubyte.gz (or the same names uncompressed), from "
        "https://github.com/zalandoresearch/fashion-mnist"
    ),
    "cifar10": (
        f"{CIFAR10_TARBALL} (or its extracted folder {CIFAR10_FOLDER}/), from "
        "https://www.cs.toronto.edu/~kriz/cifar.html"
    ),
    "svhn_cropped": (
        "train_32x32.mat and test_32x32.mat, from http://ufldl.stanford.edu/housenumbers/"
    ),
}


def how_to_get(name: str, data_dir_hint: str = "~/tensorflow_datasets") -> str:
    """Returns the ways to get dataset `name` onto an offline machine, as numbered lines."""
    ways = []
    if name == "fashion_mnist":
        ways.append(
            "install Debian's package (found automatically, no config needed): "
            f"sudo apt-get install dataset-fashion-mnist   (puts the files in "
            f"{DEBIAN_FASHION_MNIST_DIR})"
        )
    ways.append(
        "prepare it with TensorFlow Datasets on a machine with internet, copy the folder here "
        "and point data.data_dir (or TFDS_DATA_DIR) at it:\n"
        f"     python -c \"import tensorflow_datasets as tfds; tfds.builder('{name}', "
        f"data_dir='{data_dir_hint}').download_and_prepare()\"\n"
        f"     then --config.data.data_dir={data_dir_hint}"
    )
    if name in LOCAL_FILES_HELP:
        ways.append(
            "put the standard distribution files in a folder and set "
            f"--config.data.local_dir=/that/folder (files: {LOCAL_FILES_HELP[name]})"
        )
    return "\n".join(f"  {i}. {w}" for i, w in enumerate(ways, 1))
