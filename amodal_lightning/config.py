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

from hydra.errors import CompactHydraException
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from amodal_lightning.errors import AmodalError, ConfigError, file_error_message

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


TASK_GROUP = "task"
MODEL_TASK_KEY = "model.module.task"


def resolve_task(cfg: DictConfig) -> dict:
    """Put the ``task`` group's settings where the module and the data module read them (in place), so the saved
    run config shows what both used; returns them. The model's own ``model.module.task`` keeps the input
    convention; a task name set there instead of in the group is refused in one line."""
    task = OmegaConf.to_container(cfg.get(TASK_GROUP) or {}, resolve=True)
    model_task = cfg.model.module.get("task") or {}
    if "name" in model_task and model_task.name != task.get("name", model_task.name):
        raise ConfigError(
            f"{MODEL_TASK_KEY}.name={model_task.name}: the task is chosen with task=<name> now "
            f"(task={task.get('name')} is set)"
        )
    with open_dict(cfg):
        cfg.model.module.task = OmegaConf.merge(model_task, task)
        cfg.data.task = task
    return task


def _user_error_message(exc: BaseException) -> str | None:
    """The one-line message of an error the user caused, looking through Hydra's instantiation wrapper."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, AmodalError):
            return str(exc)
        if (message := file_error_message(exc)) is not None:
            return message  # a folder that cannot be made, a file that cannot be written: the user's to fix
        if isinstance(exc, OmegaConfBaseException):
            key = getattr(exc, "full_key", None)
            text = str(exc).splitlines()[0]
            return f"{key}: {text}" if key and key not in text else text
        exc = exc.__cause__ or exc.__context__
    return None


class SweepJobError(CompactHydraException):
    """A job of a multirun ended in a user error (bad value, non-finite loss): the sweep records it and goes on.

    Hydra prints a compact exception as its message alone, so a sweep that ends on one still ends in one line.
    """


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
