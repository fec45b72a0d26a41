"""Finding, composing and reporting on the Hydra configs in ``conf/``.

The configs live in the repository's top-level ``conf/``. A source checkout (or an editable install) reads them
there; a regular install ships the same files inside the package as ``amodal_lightning/conf``.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from importlib import resources
from pathlib import Path
from typing import Iterator, Sequence

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from amodal_lightning.errors import AmodalError

log = logging.getLogger(__name__)

# Exit status for errors the user can fix (bad config value, malformed data), as argparse uses.
USAGE_ERROR_EXIT_CODE = 2


def config_dir() -> Path:
    """Absolute path of the Hydra config folder: the checkout's ``conf/`` or the installed package copy."""
    checkout = Path(__file__).resolve().parent.parent / "conf"
    if (checkout / "train.yaml").is_file():
        return checkout
    return Path(str(resources.files("amodal_lightning") / "conf"))


def compose(config_name: str = "train", overrides: Sequence[str] = ()) -> DictConfig:
    """Compose a config outside ``@hydra.main`` (tests, notebooks), with ``paths.output_dir`` left to the caller."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=list(overrides))


def to_container(cfg: DictConfig) -> dict:
    """The fully resolved config as plain Python containers (what is saved beside checkpoints)."""
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)


def _user_error_message(exc: BaseException) -> str | None:
    """The one-line message of an error the user caused, looking through Hydra's instantiation wrapper."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, AmodalError):
            return str(exc)
        if isinstance(exc, OmegaConfBaseException):
            key = getattr(exc, "full_key", None)
            text = str(exc).splitlines()[0]
            return f"{key}: {text}" if key and key not in text else text
        exc = exc.__cause__ or exc.__context__
    return None


@contextlib.contextmanager
def user_errors_as_one_line() -> Iterator[None]:
    """Report config and data errors as one line on stderr and exit with status 2; let real bugs raise."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - re-raised unless it is the user's error
        message = _user_error_message(exc)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        sys.exit(USAGE_ERROR_EXIT_CODE)
