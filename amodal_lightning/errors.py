"""User-facing errors: each carries one line that names the key or file and what was expected.

Entry points catch :class:`AmodalError` and print its message alone (no traceback), so raising one of these is
how code tells the user they gave us something we cannot use.
"""

from collections.abc import Iterator
from typing import TypeVar

_Error = TypeVar("_Error", bound=BaseException)


def causes(exc: BaseException | None) -> Iterator[BaseException]:
    """``exc`` and the exceptions behind it (``__cause__``, else ``__context__``), each once, outermost first: how
    an error raised inside Hydra's instantiation or a loader worker is found again."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def find_cause(exc: BaseException | None, kind: type[_Error]) -> _Error | None:
    """The first exception of type ``kind`` in :func:`causes` of ``exc``, or None."""
    return next((cause for cause in causes(exc) if isinstance(cause, kind)), None)


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


class StorageError(AmodalError, OSError):
    """A file could not be written or read for a reason outside the program: a full disk, a missing permission, a
    file where a folder must be."""


def file_error_message(exc: BaseException) -> str | None:
    """One line for an operating-system error about a named file (``PATH: No space left on device``), else None."""
    if isinstance(exc, OSError) and not isinstance(exc, AmodalError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or type(exc).__name__}"
    return None
