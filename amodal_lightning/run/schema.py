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

A group whose options build different classes (``task``: one class per task; ``data``: one source class per data
config) has one schema per class, in a group of its own under ``schema``: ``task/instance`` of :data:`SCHEMAS` is
``instance`` of the ConfigStore group ``schema/task``, which ``conf/task/instance.yaml`` starts from with
``- /schema/task@_here_: instance``. A data config builds the data module, whose ``**source_settings`` go to the
source its ``source._target_`` names: its schema names both classes, and holds the keyword arguments of both.

A node of settings that a class reads as a mapping (``data.synthetic``, ``model.module.unet``) is typed by a schema
derived the same way, ``with_target=False``, that the reading class annotates its argument with (``SyntheticSettings |
Mapping``): the class's schema then holds that node as a nested, typed one. Two declarations let a signature say
what it cannot say itself: ``optional`` names arguments a config may leave null for the reader to fill in (the
network's channel counts, which the module sets from the task), and :func:`passes_kwargs` on a function names
where its ``**kwargs`` go (``build_diffusion``'s to ``respace``'s, ``respace``'s to ``GaussianDiffusion``'s), so
that its schema holds the keyword arguments of the whole chain.

A group with no schema (a task or a source of one's own, docs/extending.md) composes as it is: its keys are checked
when its object is built.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable, Collection, Mapping
from typing import Any, TypeVar

from hydra.utils import get_object
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from amodal_lightning.errors import ConfigError

# The ConfigStore group that holds every schema: a config starts from one with `- /schema@<package>: <name>`.
SCHEMA_GROUP = "schema"
# Separates a group from a schema's name in it (`task/instance`), as in Hydra's group paths.
GROUP_SEPARATOR = "/"
DATA_MODULE = "amodal_lightning.data.datamodule.AmodalDataModule"
# Every schema, by its name in that group: the dotted path of a dataclass, or of the class (or function) whose
# signature is the schema. Named by path, as a config's `_target_` names what it builds, so that these plumbing
# modules import nothing above them; the objects are imported when a config is first composed.
SCHEMAS = {
    # Entry configs' own keys (their groups are typed by the groups' schemas).
    "train": "amodal_lightning.run.entry_configs.TrainConfig",
    "predict": "amodal_lightning.run.entry_configs.PredictConfig",
    "evaluate": "amodal_lightning.run.entry_configs.EvaluateConfig",
    "score": "amodal_lightning.score.ScoreConfig",
    "check": "amodal_lightning.run.entry_configs.CheckConfig",
    "convert": "amodal_lightning.run.entry_configs.ConvertConfig",
    "demo": "amodal_lightning.run.entry_configs.DemoConfig",
    # Groups and nodes.
    "held_out": "amodal_lightning.data.sources.base.HeldOut",
    "inference": "amodal_lightning.models.sampling.InferenceConfig",
    "instance_split": "amodal_lightning.inference.layer_instances.InstanceSettings",
    "optimizer": "amodal_lightning.models.settings.OptimizerConfig",
    "model": "amodal_lightning.models.settings.ModelConfig",
    "module": "amodal_lightning.models.module.AmodalDiffusionModule",
    "ema": "amodal_lightning.callbacks.ema.EMA",
    "trainer": "lightning.pytorch.Trainer",
    # Groups whose options build different classes: `<group>/<name>` is `<name>` of the ConfigStore group
    # `schema/<group>`, named after the option that starts from it.
    "task/layers": "amodal_lightning.tasks.layers.LayersTask",
    "task/instance": "amodal_lightning.tasks.instance.InstanceTask",
    "task/gestalt": "amodal_lightning.tasks.gestalt.GestaltTask",
    # A pair: the data module and the source class its **source_settings go to (the data options' `source._target_`;
    # conf/data/cocoa.yaml and the other annotation formats extend annotation_file).
    "data/synthetic": (DATA_MODULE, "amodal_lightning.data.sources.scenes.GeneratedScenes"),
    "data/sas": (DATA_MODULE, "amodal_lightning.data.sources.sas.SasFolders"),
    "data/objects": (DATA_MODULE, "amodal_lightning.data.sources.objects.ObjectFolders"),
    "data/annotation_file": (DATA_MODULE, "amodal_lightning.data.sources.annotations.AnnotationFile"),
}
# Arguments of a schema's class that the code building it passes itself, not the config: left out of the schema. By
# schema name or by group (every task: the data module passes the model's input size).
GIVEN_ARGUMENTS = {"trainer": ("callbacks", "logger"), "task": ("image_size",)}
# Nodes that hold the task's config by reference and build the task themselves (amodal_lightning.task_config): their
# schema sets `_recursive_: false`, so that Hydra, whoever instantiates them, leaves the task's config a config. By
# schema name or by group.
NOT_RECURSIVE = ("module", "data")
TARGET_KEY = "_target_"
RECURSIVE_KEY = "_recursive_"
# Annotations OmegaConf checks as they are; anything else is typed Any.
CHECKED_TYPES = (bool, int, float, str)
# The attribute :func:`passes_kwargs` sets on a function: ``(receiver, arguments the function gives it itself)``.
KWARGS_RECEIVER = "__kwargs_receiver__"

Settings = TypeVar("Settings")
Function = TypeVar("Function", bound=Callable)


def passes_kwargs(receiver: Callable, given: Collection[str] = ()) -> Callable[[Function], Function]:
    """Declare that the decorated function passes its ``**kwargs`` on to ``receiver`` (a class or function) and
    gives ``receiver``'s arguments ``given`` itself: :func:`signature_schema` follows the ``**kwargs`` there, so the
    function's schema holds ``receiver``'s other keyword arguments too (and, where ``receiver`` declares the same,
    those of whatever it passes its own to)."""

    def declare(function: Function) -> Function:
        setattr(function, KWARGS_RECEIVER, (receiver, tuple(given)))
        return function

    return declare


@functools.cache
def register_schemas() -> None:
    """Put every schema of :data:`SCHEMAS` into Hydra's ConfigStore (once per process), before a config that names
    one is composed."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    for name in SCHEMAS:
        group, _, option = name.rpartition(GROUP_SEPARATOR)
        store.store(group=GROUP_SEPARATOR.join(filter(None, (SCHEMA_GROUP, group))), name=option, node=schema_of(name))


def schema_of(name: str) -> type:
    """The dataclass of the schema ``name`` of :data:`SCHEMAS`: derived from a signature where it names a class, from
    two (:func:`signature_schema`'s ``receiver``) where it names a pair."""
    group = name.partition(GROUP_SEPARATOR)[0]
    given = GIVEN_ARGUMENTS.get(name, GIVEN_ARGUMENTS.get(group, ()))
    recursive = name not in NOT_RECURSIVE and group not in NOT_RECURSIVE
    entry = SCHEMAS[name]
    if isinstance(entry, tuple):
        builder, receiver = (get_object(path) for path in entry)
        return signature_schema(builder, given, recursive=recursive, receiver=receiver)
    target = get_object(entry)
    if dataclasses.is_dataclass(target):
        return target
    return signature_schema(target, given, recursive=recursive)


def _is_mapping_or_none(annotation: Any) -> bool:
    if annotation is type(None):
        return True
    origin = typing.get_origin(annotation) or annotation
    return inspect.isclass(origin) and issubclass(origin, Mapping)


def _nested_schema(annotation: Any) -> type | None:
    """The dataclass an annotation names, alone or in a union with mappings and None (``ValidationConfig | Mapping |
    None``: its settings, as the dataclass or as a mapping). A union with other kinds (``InputConvention | str``:
    an object or its name) is not a node of settings."""
    if dataclasses.is_dataclass(annotation):
        return annotation
    args = typing.get_args(annotation)
    schemas = [arg for arg in args if dataclasses.is_dataclass(arg)]
    others = [arg for arg in args if not dataclasses.is_dataclass(arg)]
    return schemas[0] if len(schemas) == 1 and all(map(_is_mapping_or_none, others)) else None


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


def _type_hints(function: Callable) -> dict[str, Any]:
    try:
        return typing.get_type_hints(function)
    except (NameError, TypeError):  # an annotation that does not resolve: those arguments are typed Any
        return {}


def _takes_kwargs(parameters: Mapping[str, inspect.Parameter]) -> bool:
    return any(parameter.kind is parameter.VAR_KEYWORD for parameter in parameters.values())


def _signatures(target: Callable, follow_kwargs: bool) -> list[tuple[Mapping[str, inspect.Parameter], dict]]:
    """``(parameters, type hints)`` of what ``target`` takes: its constructor's (a class) or its own (a function),
    then, while it takes ``**kwargs`` and ``follow_kwargs``, those of what it passes them to: for a constructor, the
    next constructor up the class's MRO (GestaltTask's ``**instance_options`` go to InstanceTask's); for a function,
    the receiver it declares with :func:`passes_kwargs`, less the arguments it gives that receiver itself."""
    if not inspect.isclass(target):
        parameters = inspect.signature(target).parameters
        found = [(parameters, _type_hints(target))]
        declared = getattr(target, KWARGS_RECEIVER, None)
        if follow_kwargs and declared is not None and _takes_kwargs(parameters):
            receiver, given = declared
            for received, hints in _signatures(receiver, follow_kwargs=True):
                found.append(({key: p for key, p in received.items() if key not in given}, hints))
        return found
    found = []
    for klass in target.__mro__:
        if klass is object or "__init__" not in vars(klass):
            continue
        init = vars(klass)["__init__"]
        parameters = inspect.signature(init).parameters
        found.append((parameters, _type_hints(init)))
        if not (follow_kwargs and _takes_kwargs(parameters)):
            break
    # A class whose constructor is not its own Python code (a C type): the signature Python reports for it.
    return found or [(inspect.signature(target).parameters, _type_hints(target.__init__))]


def _field(kind: Any, default: Any) -> dataclasses.Field:
    if dataclasses.is_dataclass(kind) and default in (None, inspect.Parameter.empty):
        return dataclasses.field(default_factory=kind)
    if default is inspect.Parameter.empty:
        return dataclasses.field(default=MISSING)
    if isinstance(default, (list, dict, tuple)):
        return dataclasses.field(default_factory=functools.partial(_copy, default))
    return dataclasses.field(default=default)


def signature_schema(
    target: Callable,
    given: Collection[str] = (),
    recursive: bool = True,
    *,
    receiver: Callable | None = None,
    with_target: bool = True,
    bases: tuple[type, ...] = (),
    optional: Collection[str] = (),
    name: str | None = None,
) -> type:
    """A dataclass schema of what ``target`` (a class or function) takes: ``_target_`` (the config names what it
    builds), and one field per keyword argument, of :func:`checked_type` of its annotation, with the argument's
    default (none: MISSING, the config must give it; None for an argument typed by a dataclass: that dataclass's
    defaults). ``*args`` and the ``given`` arguments (passed by the code that builds it) are not part of it: a key
    the schema does not name is refused.

    ``**kwargs`` are followed where they go: with a ``receiver`` (a class or function), to it (the data module's
    ``**source_settings`` to its source), whose keyword arguments follow ``target``'s own (``target``'s where both
    name one); otherwise, for a class, to its base class's constructor, up the MRO (GestaltTask's to InstanceTask's;
    a class whose base takes nothing adds nothing). ``recursive`` false adds ``_recursive_: false``: Hydra then
    passes the node's nested configs to ``target`` as configs instead of building them. ``with_target`` false
    leaves ``_target_`` out (a node of settings that a class reads, not one Hydra builds); ``bases`` are dataclasses
    whose fields come first (``name`` names the dataclass, for messages). The ``optional`` arguments may be null, and
    are by default, whatever their annotation and default say: the code that reads the node fills them in (the
    network's channel counts, which the module sets from the task)."""
    signatures = _signatures(target, follow_kwargs=receiver is None)
    if receiver is not None:
        signatures += _signatures(receiver, follow_kwargs=True)
    specs: list[tuple] = []
    if with_target:
        specs.append((TARGET_KEY, str, dataclasses.field(default=MISSING)))
    if not recursive:
        specs.append((RECURSIVE_KEY, bool, dataclasses.field(default=False)))
    named = {field.name for base in bases for field in dataclasses.fields(base)}
    unknown = set(optional) - {key for parameters, _ in signatures for key in parameters}
    if unknown:
        raise TypeError(f"optional={sorted(unknown)}: not arguments of {target.__qualname__}")
    for parameters, hints in signatures:
        for key, parameter in parameters.items():
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD) or key == "self":
                continue
            if key in given or key in named:
                continue
            named.add(key)
            if key in optional:
                kind, default = _optional(checked_type(hints.get(key, Any))), None
            else:
                kind, default = checked_type(hints.get(key, Any)), parameter.default
            specs.append((key, kind, _field(kind, default)))
    if name is None:
        parts = [target] if receiver is None else [target, receiver]
        name = "_".join(part.__qualname__.replace(".", "_") for part in parts) + "Schema"
    return dataclasses.make_dataclass(name, specs, bases=bases)


def _optional(kind: Any) -> Any:
    """``kind`` allowing None (OmegaConf's ``Optional``); ``Any`` allows it already."""
    return kind if kind is Any else typing.Optional[kind]  # noqa: UP045 - OmegaConf reads typing.Optional


def _copy(value):
    return type(value)(value)


def first_line(err: BaseException) -> str:
    """The first line of an error's message (OmegaConf's further lines repeat the key and the types)."""
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def refuse_added_keys(cfg: Any, path: str = "") -> None:
    """Refuse, in one line naming it, a key of a composed config that the schema typing its node lacks. Composition
    refuses such a key from a file or a plain override; ``+key=value`` adds it anyway (Hydra opens the node for
    additions), so the commands check the composed config once more."""
    if not isinstance(cfg, DictConfig):
        return
    schema = OmegaConf.get_type(cfg)
    names = {field.name for field in dataclasses.fields(schema)} if dataclasses.is_dataclass(schema) else None
    for key in cfg.keys():
        full_key = f"{path}.{key}" if path else str(key)
        if names is not None and key not in names:
            raise ConfigError(f"{full_key}: not a key of {schema.__name__}; expected one of {sorted(names)}")
        refuse_added_keys(cfg._get_node(key), full_key)


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
