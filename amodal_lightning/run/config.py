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

from hydra.errors import CompactHydraException
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from amodal_lightning.errors import AmodalError, ConfigError, causes, file_error_message, find_cause

log = logging.getLogger(__name__)

# Exit status for errors the user can fix (bad config value, malformed data), as argparse uses.
USAGE_ERROR_EXIT_CODE = 2


def config_dir() -> Path:
    """Absolute path of the Hydra config folder: the checkout's ``conf/`` or the installed package copy."""
    checkout = Path(__file__).resolve().parent.parent.parent / "conf"
    if (checkout / "train.yaml").is_file():
        return checkout
    return Path(str(resources.files("amodal_lightning") / "conf"))


def compose(config_name: str = "train", overrides: Sequence[str] = ()) -> DictConfig:
    """Compose a config outside ``@hydra.main`` (tests, notebooks), with ``paths.output_dir`` left to the caller.
    A key that moved is refused in one line naming its new place (:func:`refuse_moved_keys`)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    refuse_moved_keys(overrides)
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=list(overrides))


def to_container(cfg: DictConfig) -> dict:
    """The fully resolved config as plain Python containers (what is saved beside checkpoints)."""
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)


TASK_GROUP = "task"
MODEL_TASK_KEY = "model.module.task"
MODEL_IMAGE_SIZE_KEY = "model.image_size"

# Keys that moved, by their old spelling: a command-line override of one is refused in one line naming the new key.
_PANEL_SAMPLING = {
    "callbacks.layer_panel": ("sampler", "ensemble_size", "combine", "empty_fraction", "merge_disjoint", "max_layers"),
    "callbacks.instance_panel": ("sampler", "ensemble_size", "batch_size"),
}
MOVED_KEYS = {
    "model.max_steps": "trainer.max_steps",
    "model.max_time": "trainer.max_time",
    "model.gradient_clip_val": "trainer.gradient_clip_val",
    "model.global_batch_size": "data.batch_size",
    "model.front_layer_repeats": "data.front_layer_repeats",
    "model.lr": "model.module.optimizer.lr",
    "model.weight_decay": "model.module.optimizer.weight_decay",
    "model.ema_decay": "callbacks.ema.decay",
    "model.module.validation.sample_steps": "model.module.validation.inference.steps",
    "model.module.validation.sampler": "model.module.validation.inference.sampler",
    "model.module.validation.eta": "model.module.validation.inference.eta",
    "data.image_size": MODEL_IMAGE_SIZE_KEY,
    **{f"{panel}.sample_steps": "callbacks.panel.inference.steps" for panel in _PANEL_SAMPLING},
    **{f"{panel}.{key}": f"callbacks.panel.inference.{key}" for panel, keys in _PANEL_SAMPLING.items() for key in keys},
}
# The key of a command-line override: after any +, ++ or ~ and before =.
_OVERRIDE_KEY = re.compile(r"^[+~]*([^=@]+)")
# The config key an error message starts with: `key=value: ...`, `key: ...` or `key, other: ...`.
_LEADING_KEY = re.compile(r"^([A-Za-z_]\w*(?:\.\w+)*)(?=[=:,])")


def refuse_moved_keys(overrides: Sequence[str]) -> None:
    """Refuse an override of a key that moved (``model.max_steps=...``) in one line naming where it lives now."""
    for override in overrides:
        match = _OVERRIDE_KEY.match(override.strip())
        key = match.group(1).strip() if match else ""
        if key in MOVED_KEYS:
            raise ConfigError(f"{key}: moved to {MOVED_KEYS[key]}")


# Arguments an entry point fills from another group's key, by the path they are given at: errors name that key.
GIVEN_KEYS = {"data": {"image_size": MODEL_IMAGE_SIZE_KEY}}


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


TARGET_KEY = "_target_"
# Groups whose entries are each one object to build.
BUILT_GROUPS = ("callbacks", "logger")


def drop_unbuilt_entries(cfg: DictConfig) -> list[str]:
    """Remove (in place) the entries of the callbacks and logger groups that have nothing to build: a recipe's
    setting for a callback the chosen group leaves out (the EMA decay with ``callbacks=none``). Returns their keys."""
    dropped = []
    with open_dict(cfg):
        for name in BUILT_GROUPS:
            group = cfg.get(name)
            if not isinstance(group, DictConfig):
                continue
            for key in [k for k, entry in group.items() if isinstance(entry, DictConfig) and TARGET_KEY not in entry]:
                del group[key]
                dropped.append(f"{name}.{key}")
    return dropped


def resolve_model_inputs(cfg: DictConfig) -> int:
    """Give the data the model's image size (in place): the data group does not read the model group, the entry
    point passes it. Returns the size."""
    size = cfg.model.get("image_size")
    with open_dict(cfg):
        cfg.data.image_size = size
    return size


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
    for cause in causes(exc):
        if isinstance(cause, AmodalError):
            return str(cause)
        if (message := file_error_message(cause)) is not None:
            return message  # a folder that cannot be made, a file that cannot be written: the user's to fix
        if isinstance(cause, OmegaConfBaseException):
            key = getattr(cause, "full_key", None)
            text = str(cause).splitlines()[0]
            return f"{key}: {text}" if key and key not in text else text
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
