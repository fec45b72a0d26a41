"""Known third-party start-up messages that tell the user nothing about their run, silenced by the entry points."""

from __future__ import annotations

import logging
import warnings

# Lightning's advertisement for its hosted logger, printed whenever a Trainer is built without it.
LITLOGGER_TIP = "try installing [litlogger]"
# The loggers Lightning's rank_zero_info writes through (each Lightning package points it at its own).
RANK_ZERO_LOGGERS = (
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
    "lightning_utilities.core.rank_zero",
)
# Deprecations inside third-party code (not ours to fix, nothing for the user to change), as message regexes.
KNOWN_DEPRECATIONS = (r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",)


class _DropLitLoggerTip(logging.Filter):
    """Drops the one log record that advertises litlogger."""

    def filter(self, record: logging.LogRecord) -> bool:
        return LITLOGGER_TIP not in record.getMessage()


def silence_known_noise() -> None:
    """Filter the litlogger tip and the known third-party deprecation warnings; idempotent."""
    for name in RANK_ZERO_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropLitLoggerTip) for f in logger.filters):
            logger.addFilter(_DropLitLoggerTip())
    for message in KNOWN_DEPRECATIONS:
        warnings.filterwarnings("ignore", message=message)
