"""User-facing errors: each carries one line that names the key or file and what was expected.

Entry points catch :class:`AmodalError` and print its message alone (no traceback), so raising one of these is
how code tells the user they gave us something we cannot use.
"""


class AmodalError(Exception):
    """Base class for errors caused by the user's input (config or data), reported as one line."""


class ConfigError(AmodalError, ValueError):
    """A config key has a value we cannot honour."""


class DataError(AmodalError, ValueError):
    """A data file or folder is missing or malformed."""


class CheckpointError(AmodalError, ValueError):
    """A checkpoint file is neither ours nor a SAS checkpoint we can convert."""


class NonFiniteLossError(AmodalError, FloatingPointError):
    """Training produced a NaN or infinite loss; the run stopped without saving the broken state."""
