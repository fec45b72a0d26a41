"""Building a task from its config: the one place where a task config becomes a task object.

A task config (``conf/task/<name>.yaml``; a checkpoint's ``hyper_parameters.task``) names the task's class with
``_target_``, beside the class's options and the model's input ``convention``. A new task is therefore a module (its
class, :class:`~amodal_lightning.tasks.base.Task`) and a config; nothing here changes.

Checkpoints written before tasks were named by class store ``name`` instead (``sequential_layers``, ``instance`` or
``gestalt``) and no ``_target_``: :data:`TASKS_BY_OLD_NAME` maps those names, so such checkpoints (ours and those
``convert_sas`` wrote) load and predict as they did. A config with neither is the layer task (the model's own
``model.module.task``, which holds only the convention, when no task group is merged in).

The LightningModule and the data module build their task here, at run time and by class path, so that neither
imports the tasks, which sit above them (a task's inference drives the module). A config that holds a task config
(``model.module``, ``data``) is therefore instantiated with ``_recursive_=False``: otherwise Hydra would build the
task itself, without the data's image size, and the module's hyperparameters would hold an object instead of the
config a checkpoint needs.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping

from amodal_lightning.errors import ConfigError

TARGET_KEY = "_target_"
NAME_KEY = "name"
# The config key errors name (the `task` group; the module's and the data's copies come from it).
TASK_KEY = "task"
TASK_BASE_MODULE = "amodal_lightning.tasks.base"
TASK_BASE_CLASS = "Task"
LAYERS_TASK = "amodal_lightning.tasks.layers.LayersTask"
# Checkpoints written before tasks were named by class: their task's name -> its class.
TASKS_BY_OLD_NAME = {
    "sequential_layers": LAYERS_TASK,
    "instance": "amodal_lightning.tasks.instance.InstanceTask",
    "gestalt": "amodal_lightning.tasks.gestalt.GestaltTask",
}


def build_task(config: Mapping | None = None, **given):
    """The task a config describes (``_target_``, an old checkpoint's ``name``, or neither: the layer task), built
    with the config's options and ``given`` ones (the data module's ``image_size``). A bad class or option is a
    one-line :class:`ConfigError` naming ``task.<key>``."""
    if config is not None and not isinstance(config, Mapping):
        raise ConfigError(
            f"{TASK_KEY}: expected the task's config (a mapping with {TARGET_KEY}), got a {type(config).__name__}; a "
            f"config holding a task config is instantiated with _recursive_=False, so that the task is built here"
        )
    settings = dict(config or {})
    cls = task_class(settings.pop(TARGET_KEY, None), settings.pop(NAME_KEY, None))
    try:
        return cls(**settings, **given)
    except TypeError as err:
        raise ConfigError(f"{TASK_KEY}: {err} (the {cls.name} task takes {_options(cls)})") from None


def task_class(target: str | None = None, name: str | None = None) -> type:
    """The task class named by ``target`` (a class path) or, for old checkpoints, by ``name``; the layer task when
    neither is given. A ``name`` beside a ``target`` must be that class's own."""
    if target is None:
        if name is not None and name not in TASKS_BY_OLD_NAME:
            raise ConfigError(
                f"{TASK_KEY}.{NAME_KEY}={name!r}: unknown task; a task config names its class with {TARGET_KEY} "
                f"(conf/task/), older checkpoints one of {sorted(TASKS_BY_OLD_NAME)}"
            )
        target = TASKS_BY_OLD_NAME[name] if name is not None else LAYERS_TASK
    cls = _import_class(target)
    if name is not None and name != cls.name and TASKS_BY_OLD_NAME.get(name) != target:
        raise ConfigError(
            f"{TASK_KEY}.{NAME_KEY}={name!r}: the task of {TASK_KEY}.{TARGET_KEY}={target} is {cls.name!r}; "
            f"choose the task with task=<name> and leave out {TASK_KEY}.{NAME_KEY}"
        )
    return cls


def _import_class(target: str) -> type:
    """The class at the dotted path ``target``; one line when there is none, or it is not a task."""
    module_name, _, class_name = str(target).rpartition(".")
    where = f"{TASK_KEY}.{TARGET_KEY}={target!r}"
    try:
        module = importlib.import_module(module_name) if module_name else None
    except ModuleNotFoundError as err:
        if err.name is None or not module_name.startswith(err.name):
            raise  # the module exists but imports something missing: a bug to see whole, not a config error
        raise ConfigError(f"{where}: no module {err.name!r}; expected the class path of a task") from None
    cls = getattr(module, class_name, None)
    base = getattr(importlib.import_module(TASK_BASE_MODULE), TASK_BASE_CLASS)
    if not (inspect.isclass(cls) and issubclass(cls, base)):
        raise ConfigError(f"{where}: not a task class (a subclass of {TASK_BASE_MODULE}.{TASK_BASE_CLASS})")
    return cls


def _options(cls: type) -> str:
    """The options of a task class and of the classes it extends, for messages."""
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    options = ["convention"]
    for klass in cls.__mro__:
        if "__init__" not in vars(klass) or klass is object:
            continue
        for parameter in inspect.signature(vars(klass)["__init__"]).parameters.values():
            if parameter.kind in named and parameter.name not in ("self", "image_size", *options):
                options.append(parameter.name)
    return ", ".join(options)
