"""The one exception class for a bad config, shared by every module that checks one."""


class ConfigError(ValueError):
    """A config field holds a value that is not allowed; the message names each such field,
    its value and what is allowed."""
