"""Config schemas: the dataclasses that give a config node its keys, their types and their defaults.

Hydra composes each config on top of its schemas, structured configs in Hydra's ConfigStore (group ``schema``): a
config names its schema first in its defaults list (``- /schema@_here_: inference``), so that the YAML holds only
what that choice changes, and OmegaConf refuses a value of the wrong type, or a key the schema does not have, naming
the full key (``optimizer.lr``), whether it comes from a file or from the command line.

A schema is a dataclass, or is derived from the class (or function) that the config node builds
(:func:`signature_schema`): one field per keyword argument, typed by its annotation where OmegaConf can check that
type, with the argument's default. Either way each default is declared once, in code, where programmatic callers
and older checkpoints find it too; code that takes settings as a mapping reads them through
:func:`settings_from`, which checks them against the same schema.

OmegaConf (2.3) types are ``bool``, ``int``, ``float``, ``str``, their ``Optional`` and nested dataclasses: a
value of several kinds ("an int or ``auto``") is ``Any``, and its range check stays in the code that reads it.

A config group adopts a schema in two lines: its dataclass (or the class its ``_target_`` names) in
:data:`SCHEMAS`, and ``- /schema@_here_: <name>`` first in the defaults list of each of its options (``@<key>``
for a node inside the option, as ``conf/model/*.yaml`` do for ``module``). Then its YAML drops every value the
schema already holds, and the code that takes it as a mapping reads it with :func:`settings_from`.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable, Collection, Mapping
from typing import Any, TypeVar

from hydra.utils import get_object
from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from amodal_lightning.errors import ConfigError

# The ConfigStore group that holds every schema: a config starts from one with `- /schema@<package>: <name>`.
SCHEMA_GROUP = "schema"
# Every schema, by its name in that group: the dotted path of a dataclass, or of the class (or function) whose
# signature is the schema. Named by path, as a config's `_target_` names what it builds, so that these plumbing
# modules import nothing above them; the objects are imported when a config is first composed.
SCHEMAS = {
    # Entry configs' own keys (their groups are typed by the groups' schemas).
    "train": "amodal_lightning.run.entry_configs.TrainConfig",
    "predict": "amodal_lightning.run.entry_configs.PredictConfig",
    "evaluate": "amodal_lightning.run.entry_configs.EvaluateConfig",
    "score": "amodal_lightning.run.entry_configs.ScoreConfig",
    "check": "amodal_lightning.run.entry_configs.CheckConfig",
    "convert": "amodal_lightning.run.entry_configs.ConvertConfig",
    "demo": "amodal_lightning.run.entry_configs.DemoConfig",
    # Groups and nodes.
    "inference": "amodal_lightning.models.sampling.InferenceConfig",
    "instance_split": "amodal_lightning.inference.layer_instances.InstanceSettings",
    "optimizer": "amodal_lightning.models.settings.OptimizerConfig",
    "model": "amodal_lightning.models.settings.ModelConfig",
    "module": "amodal_lightning.models.module.AmodalDiffusionModule",
    "ema": "amodal_lightning.callbacks.ema.EMA",
    "trainer": "lightning.pytorch.Trainer",
}
# Arguments of a schema's class that the entry point passes itself, not the config: left out of the schema.
GIVEN_ARGUMENTS = {"trainer": ("callbacks", "logger")}
# Nodes that hold the task's config by reference and build the task themselves (amodal_lightning.task_config): their
# schema sets `_recursive_: false`, so that Hydra, whoever instantiates them, leaves the task's config a config.
NOT_RECURSIVE = ("module",)
TARGET_KEY = "_target_"
RECURSIVE_KEY = "_recursive_"
# Annotations OmegaConf checks as they are; anything else is typed Any.
CHECKED_TYPES = (bool, int, float, str)

Settings = TypeVar("Settings")


@functools.cache
def register_schemas() -> None:
    """Put every schema of :data:`SCHEMAS` into Hydra's ConfigStore (once per process), before a config that names
    one is composed."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    for name in SCHEMAS:
        store.store(group=SCHEMA_GROUP, name=name, node=schema_of(name))


def schema_of(name: str) -> type:
    """The dataclass of the schema ``name`` of :data:`SCHEMAS` (derived from a signature where it names a class)."""
    target = get_object(SCHEMAS[name])
    if dataclasses.is_dataclass(target):
        return target
    return signature_schema(target, GIVEN_ARGUMENTS.get(name, ()), recursive=name not in NOT_RECURSIVE)


def _nested_schema(annotation: Any) -> type | None:
    """The dataclass an annotation names, alone or in a union (``ValidationConfig | Mapping | None``)."""
    if dataclasses.is_dataclass(annotation):
        return annotation
    schemas = [arg for arg in typing.get_args(annotation) if dataclasses.is_dataclass(arg)]
    return schemas[0] if len(schemas) == 1 else None


def checked_type(annotation: Any) -> Any:
    """The type OmegaConf checks a value of ``annotation`` against: the annotation itself for ``bool``, ``int``,
    ``float``, ``str`` and a dataclass (also in a union with a mapping), ``Optional`` of those when it allows None,
    ``Any`` for everything else (unions of several kinds, containers, paths, objects)."""
    nested = _nested_schema(annotation)
    if nested is not None:
        return nested
    if annotation in CHECKED_TYPES:
        return annotation
    args = typing.get_args(annotation)
    if type(None) in args:
        others = [arg for arg in args if arg is not type(None)]
        if len(others) == 1 and others[0] in CHECKED_TYPES:
            return typing.Optional[others[0]]  # noqa: UP045 - OmegaConf reads typing.Optional, not X | None
    return Any


def _type_hints(target: Callable) -> dict[str, Any]:
    function = target.__init__ if inspect.isclass(target) else target
    try:
        return typing.get_type_hints(function)
    except (NameError, TypeError):  # an annotation that does not resolve: those arguments are typed Any
        return {}


def signature_schema(target: Callable, given: Collection[str] = (), recursive: bool = True) -> type:
    """A dataclass schema of what ``target`` (a class or function) takes: ``_target_`` (the config names what it
    builds), and one field per keyword argument, of :func:`checked_type` of its annotation, with the argument's
    default (none: MISSING, the config must give it; None for an argument typed by a dataclass: that dataclass's
    defaults). ``*args``, ``**kwargs`` and the ``given`` arguments (passed by the code that builds it) are not part
    of it: a key the schema does not name is refused. ``recursive`` false adds ``_recursive_: false``: Hydra then
    passes the node's nested configs to ``target`` as configs instead of building them."""
    hints = _type_hints(target)
    specs: list[tuple] = [(TARGET_KEY, str, dataclasses.field(default=MISSING))]
    if not recursive:
        specs.append((RECURSIVE_KEY, bool, dataclasses.field(default=False)))
    for name, parameter in inspect.signature(target).parameters.items():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD) or name == "self" or name in given:
            continue
        kind = checked_type(hints.get(name, Any))
        default = parameter.default
        if dataclasses.is_dataclass(kind) and default in (None, parameter.empty):
            spec = dataclasses.field(default_factory=kind)
        elif default is parameter.empty:
            spec = dataclasses.field(default=MISSING)
        elif isinstance(default, (list, dict, tuple)):
            spec = dataclasses.field(default_factory=functools.partial(_copy, default))
        else:
            spec = dataclasses.field(default=default)
        specs.append((name, kind, spec))
    return dataclasses.make_dataclass(f"{target.__qualname__.replace('.', '_')}Schema", specs)


def _copy(value):
    return type(value)(value)


def first_line(err: BaseException) -> str:
    """The first line of an error's message (OmegaConf's further lines repeat the key and the types)."""
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def settings_from(schema: type[Settings], settings: Mapping | Settings | None, key: str) -> Settings:
    """``settings`` (a config mapping; keys it lacks take the schema's defaults) as an instance of the dataclass
    ``schema``; a value of the wrong type, or a key the schema does not have, is a one-line :class:`ConfigError`
    naming ``{key}.<field>``."""
    if isinstance(settings, schema):
        return settings
    try:
        node = OmegaConf.merge(OmegaConf.structured(schema), OmegaConf.create(dict(settings or {})))
        return OmegaConf.to_object(node)
    except OmegaConfBaseException as err:
        field = getattr(err, "full_key", None)
        raise ConfigError(f"{f'{key}.{field}' if field else key}: {first_line(err)}") from None
