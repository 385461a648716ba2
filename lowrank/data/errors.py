"""The data errors: each names what was looked for and how to fix it."""

from __future__ import annotations

from lowrank.errors import ConfigError


class DataError(Exception):
    """Base class of the data errors (each one is also a ValueError or FileNotFoundError)."""


class UnknownDatasetError(DataError, ConfigError):
    """A dataset name that is not one of the known ones."""


class DataConfigError(DataError, ConfigError):
    """A data or augmentation config field with a value that is not allowed."""


class DataNotFoundError(DataError, FileNotFoundError):
    """The files of a dataset are nowhere to be found (and cannot be downloaded)."""


class CorruptDataError(DataError, ValueError):
    """A data file exists but its content is not what its format or checksum says."""


class BatchSizeError(DataError, ConfigError):
    """A batch size larger than the training set."""
