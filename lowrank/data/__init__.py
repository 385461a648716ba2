"""The paper's datasets as host arrays, loaded once, plus on-device standardization and batching.

Sources, tried in this order by ``data.source='auto'``:

1. local standard files in ``data.local_dir`` (MNIST / Fashion-MNIST IDX, CIFAR-10 python
   tarball, SVHN ``.mat``), see `lowrank.data.files`;
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

from lowrank.data.batches import describe_remainder, epoch_permutation, standardize, steps_per_epoch
from lowrank.data.errors import (
    BatchSizeError,
    CorruptDataError,
    DataConfigError,
    DataError,
    DataNotFoundError,
    UnknownDatasetError,
)
from lowrank.data.load import Dataset, load_dataset
from lowrank.data.sources import DEBIAN_FASHION_MNIST_DIR
from lowrank.data.spec import (
    DATASET_NAMES,
    NUM_CLASSES,
    SOURCES,
    SPLITS,
    check_split_sizes,
    default_data_config,
    expected_num_train,
    validate_data_config,
)

__all__ = [
    "DATASET_NAMES",
    "DEBIAN_FASHION_MNIST_DIR",
    "NUM_CLASSES",
    "SOURCES",
    "SPLITS",
    "BatchSizeError",
    "CorruptDataError",
    "DataConfigError",
    "DataError",
    "DataNotFoundError",
    "Dataset",
    "UnknownDatasetError",
    "check_split_sizes",
    "default_data_config",
    "describe_remainder",
    "epoch_permutation",
    "expected_num_train",
    "load_dataset",
    "standardize",
    "steps_per_epoch",
    "validate_data_config",
]
