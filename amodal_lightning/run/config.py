"""Finding, composing and reporting on the Hydra configs in ``conf/``.

The configs live in the repository's top-level ``conf/``. A source checkout (or an editable install) reads them
there; a regular install ships the same files inside the package as ``amodal_lightning/conf``.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path

from hydra.errors import CompactHydraException, ConfigCompositionException, OverrideParseException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from amodal_lightning.errors import AmodalError, ConfigError, causes, file_error_message, find_cause
from amodal_lightning.run.schema import first_line, refuse_added_keys, register_schemas

log = logging.getLogger(__name__)

HYDRA_VERSION_BASE = "1.3"
# Exit status for errors the user can fix (bad config value, malformed data), as argparse uses.
USAGE_ERROR_EXIT_CODE = 2
# Hydra's messages end with where it searched; the one-line message stops before that.
SEARCH_PATH_HEADER = "Config search path"
# Detail lines of an OmegaConf error that repeat what the first line says.
DETAIL_PREFIXES = ("full_key:", "object_type=", "reference_type=")


def config_dir() -> Path:
    """Absolute path of the Hydra config folder: the checkout's ``conf/`` or the installed package copy."""
    checkout = Path(__file__).resolve().parent.parent.parent / "conf"
    if (checkout / "train.yaml").is_file():
        return checkout
    return Path(str(resources.files("amodal_lightning") / "conf"))


def compose(config_name: str = "train", overrides: Sequence[str] = ()) -> DictConfig:
    """Compose a config outside ``@hydra.main`` (tests, notebooks), with ``paths.output_dir`` left to the caller.
    Its schemas check it as Hydra's own composition does (:mod:`amodal_lightning.run.schema`)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    register_schemas()
    with initialize_config_dir(config_dir=str(config_dir()), version_base=HYDRA_VERSION_BASE):
        cfg = hydra_compose(config_name=config_name, overrides=list(overrides))
    refuse_added_keys(cfg)
    return cfg


def to_container(cfg: DictConfig) -> dict:
    """The fully resolved config as plain Python containers (what is saved beside checkpoints)."""
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)


# The config key an error message starts with: `key=value: ...`, `key: ...` or `key, other: ...`.
_LEADING_KEY = re.compile(r"^([A-Za-z_]\w*(?:\.\w+)*)(?=[=:,])")


# Arguments a config fills from another group's key (conf/train.yaml), by the path they are given at: errors name
# that key.
GIVEN_KEYS = {"data": {"image_size": "model.image_size"}}


def at_path(path: str, message: str, root_keys: Sequence[str] = ()) -> str:
    """``message`` of an error raised inside what ``path`` configures, with its leading argument named by its full
    config key (``val_fraction=...`` -> ``data.val_fraction=...``; an argument the entry point fills, such as the
    data's ``image_size``, by the key it comes from). A message that already starts with a key of the config's root
    (``task.crop=...``) is left as it is."""
    match = _LEADING_KEY.match(message)
    if not match or match.group(1).split(".")[0] in root_keys:
        return message
    given = GIVEN_KEYS.get(path, {}).get(match.group(1))
    if given:
        return given + message[match.end(1) :]
    return f"{path}.{message}"


def _config_error_in(exc: BaseException) -> ConfigError | None:
    """The ConfigError behind ``exc``, looking through Hydra's instantiation wrapper."""
    return find_cause(exc, ConfigError)


def instantiate_at(cfg: DictConfig, path: str, **kwargs):
    """Instantiate the config node at ``path`` (``data``, ``model.module``); a :class:`ConfigError` raised inside,
    which names the argument at fault, is raised again naming the full config key. The one place config paths are
    added to the errors of what the configs build."""
    from hydra.utils import instantiate

    try:
        return instantiate(OmegaConf.select(cfg, path), _convert_="all", **kwargs)
    except Exception as exc:  # noqa: BLE001 - re-raised as it is unless a config error is behind it
        error = _config_error_in(exc)
        if error is None:
            raise
        raise ConfigError(at_path(path, str(error), list(cfg.keys()))) from None


def one_line(exc: BaseException) -> str:
    """A Hydra error as one line: its lines joined, without the search path and repeated details."""
    lines = []
    for line in str(exc).splitlines():
        line = " ".join(line.split())
        if line.startswith(SEARCH_PATH_HEADER):
            break
        if line and not line.startswith(DETAIL_PREFIXES):
            lines.append(line)
    return " ".join(lines) or type(exc).__name__


def _user_error_message(exc: BaseException) -> str | None:
    """The one-line message of an error the user caused, looking through Hydra's wrappers: a value or key a schema
    refuses names its full key; a command line Hydra cannot compose (an option that does not exist, a key that is
    not there, broken syntax) is Hydra's message on one line."""
    composing = None
    for cause in causes(exc):
        if isinstance(cause, AmodalError):
            return str(cause)
        if (message := file_error_message(cause)) is not None:
            return message  # a folder that cannot be made, a file that cannot be written: the user's to fix
        if isinstance(cause, OmegaConfBaseException):
            key = getattr(cause, "full_key", None)
            text = first_line(cause)
            return f"{key}: {text}" if key and not text.startswith(key) else text
        if isinstance(cause, COMPOSITION_ERRORS) and composing is None:
            composing = cause
    if composing is None:
        return None
    message = one_line(composing)
    override = getattr(composing, "override", None)  # a command-line argument Hydra cannot read names it
    return f"{override}: {message}" if override and override not in message else message


class SweepJobError(CompactHydraException):
    """A job of a multirun ended in a user error (bad value, non-finite loss): the sweep records it and goes on.

    Hydra prints a compact exception as its message alone, so a sweep that ends on one still ends in one line.
    """


# Errors of composing a config from the command line (a missing option, a key not there, broken syntax), and a sweep's
# record of a job that ended in a user error.
COMPOSITION_ERRORS = (ConfigCompositionException, OverrideParseException, SweepJobError)


@contextlib.contextmanager
def user_errors_as_one_line(in_sweep: bool = False) -> Iterator[None]:
    """Report config and data errors as one line and exit with status 2; let real bugs raise.

    In a sweep job (``in_sweep``) the line goes to the job's log and a :class:`SweepJobError` marks the job failed
    instead of exiting: one trial that diverges or gets an impossible value must not end the other trials. Optuna
    records the trial as failed and goes on; Hydra's basic sweeper runs the remaining jobs, then reports the error.
    """
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - re-raised unless it is the user's error
        message = _user_error_message(exc)
        if message is None:
            raise
        if in_sweep:
            log.error("error: %s", message)
            raise SweepJobError(message) from None
        print(f"error: {message}", file=sys.stderr)
        sys.exit(USAGE_ERROR_EXIT_CODE)


def in_multirun() -> bool:
    """True inside a job of a Hydra multirun (``-m`` or a sweep config)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
