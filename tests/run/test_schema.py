"""Config schemas: how a schema types a node and fills its defaults, that every default is declared once (no config
file repeats its schema's), and that no library module reads ``conf/`` when it is imported."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import os
import subprocess
import sys
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from omegaconf import MISSING, OmegaConf

from amodal_lightning.data.datamodule import AmodalDataModule
from amodal_lightning.data.scenes import SceneGenerator
from amodal_lightning.data.sources.scenes import SplitSizes
from amodal_lightning.diffusion import GaussianDiffusion, build_diffusion, respace
from amodal_lightning.errors import ConfigError
from amodal_lightning.models.sampling import InferenceConfig
from amodal_lightning.models.settings import DiffusionSettings, UNetSettings, ValidationConfig
from amodal_lightning.models.unet import UNetModel
from amodal_lightning.run.config import compose, config_dir
from amodal_lightning.run.schema import (
    GROUP_SEPARATOR,
    SCHEMA_GROUP,
    SCHEMAS,
    checked_type,
    passes_kwargs,
    schema_of,
    settings_from,
    signature_schema,
)
from amodal_lightning.tasks.conventions import InputConvention
from amodal_lightning.tasks.instance import InstanceTask

PACKAGE = Path(__file__).resolve().parents[2] / "amodal_lightning"


@pytest.mark.parametrize(
    ("annotation", "expected"),
    [
        (int, int),
        (bool, bool),
        (int | None, typing.Optional[int]),  # noqa: UP045 - what OmegaConf reads
        (str | None, typing.Optional[str]),  # noqa: UP045
        (int | str, Any),  # "an int or auto": the reader checks it
        (int | float | None, Any),
        (dict, Any),
        (list[int], Any),
        (ValidationConfig | Mapping | None, ValidationConfig),
        (ValidationConfig | Mapping[str, Any] | None, ValidationConfig),
        (InputConvention | str, Any),  # an object or its name: not a node of settings
        (Path | None, Any),
    ],
)
def test_what_omegaconf_checks_of_an_annotation(annotation, expected):
    assert checked_type(annotation) == expected


class Built:
    """What a config node builds, for the schema derived from its signature."""

    def __init__(
        self,
        size: int,
        rate: float = 0.5,
        name: str | None = None,
        validation: ValidationConfig | Mapping | None = None,
        sizes: tuple = (1, 2),
        given: object = None,
        *args,
        **kwargs,
    ):
        pass


def test_a_signature_is_a_schema():
    schema = signature_schema(Built, given=("given",))
    node = OmegaConf.structured(schema)
    assert list(node) == ["_target_", "size", "rate", "name", "validation", "sizes"]
    assert OmegaConf.is_missing(node, "_target_") and OmegaConf.is_missing(node, "size")  # the config gives them
    assert node.rate == 0.5 and node.name is None and list(node.sizes) == [1, 2]
    assert node.validation == OmegaConf.structured(ValidationConfig)  # typed by the dataclass, with its defaults
    for key, value in [("size", "big"), ("rate", "fast"), ("validation", {"num_batches": "all"})]:
        with pytest.raises(Exception) as info:  # noqa: PT011 - OmegaConf's own error types
            OmegaConf.merge(node, {key: value})
        assert info.value.full_key.startswith(key)
    with pytest.raises(Exception, match="given"):  # noqa: PT011
        OmegaConf.merge(node, {"given": 1})


class Base:
    def __init__(self, size: int, depth: int = 3, *, mode: str = "a"):
        pass


class Extended(Base):
    """Passes its **options on to Base's constructor."""

    def __init__(self, size: int, rate: float = 0.5, **options):
        super().__init__(size, **options)


class Unrelated:
    def __init__(self, root: str, count: int = 2, size: str = "big"):
        pass


def test_kwargs_a_class_passes_to_its_base_are_the_bases_arguments():
    node = OmegaConf.structured(signature_schema(Extended))
    assert list(node) == ["_target_", "size", "rate", "depth", "mode"]  # the class's own first, then its base's
    assert node.depth == 3 and node.mode == "a"
    with pytest.raises(Exception) as info:  # noqa: PT011 - OmegaConf's own error type
        OmegaConf.merge(node, {"depth": "deep"})
    assert info.value.full_key == "depth"


def test_kwargs_that_go_to_a_receiver_are_its_arguments():
    node = OmegaConf.structured(signature_schema(Extended, given=("rate",), recursive=False, receiver=Unrelated))
    # The receiver's size is the target's (both name it): typed and defaulted by the target.
    assert list(node) == ["_target_", "_recursive_", "size", "root", "count"]
    assert node._recursive_ is False and OmegaConf.is_missing(node, "size") and OmegaConf.is_missing(node, "root")
    assert node.count == 2
    settings = OmegaConf.structured(
        signature_schema(Unrelated, given=("root",), with_target=False, bases=(SplitSizes,), name="Settings")
    )
    assert list(settings) == ["num_train", "num_val", "num_test", "count", "size"]


def received(depth: int = 3, *, mode: str = "a", given: int = 0):
    pass


@passes_kwargs(received, given=("given",))
def passing(size: int, rate: float = 0.5, **options):
    received(given=size, **options)


@passes_kwargs(passing, given=("size",))
def passing_on(count: int = 2, **options):
    passing(count, **options)


def not_passing(count: int = 2, **options):
    pass


def test_kwargs_a_function_declares_it_passes_on_are_its_receivers_arguments():
    assert list(OmegaConf.structured(signature_schema(passing))) == ["_target_", "size", "rate", "depth", "mode"]
    # Followed down the chain, less what each passes itself.
    node = OmegaConf.structured(signature_schema(passing_on, with_target=False))
    assert list(node) == ["count", "rate", "depth", "mode"]
    assert (node.count, node.rate, node.depth, node.mode) == (2, 0.5, 3, "a")
    with pytest.raises(Exception) as info:  # noqa: PT011 - OmegaConf's own error type
        OmegaConf.merge(node, {"depth": "deep"})
    assert info.value.full_key == "depth"
    # A function that declares nothing: its **kwargs add nothing.
    assert list(OmegaConf.structured(signature_schema(not_passing, with_target=False))) == ["count"]


def test_optional_arguments_may_be_null_and_are_by_default():
    node = OmegaConf.structured(signature_schema(Base, with_target=False, optional=("size", "depth")))
    assert node.size is None and node.depth is None and node.mode == "a"
    assert OmegaConf.merge(node, {"size": 4}).size == 4
    with pytest.raises(Exception) as info:  # noqa: PT011 - OmegaConf's own error type
        OmegaConf.merge(node, {"size": "big"})
    assert info.value.full_key == "size"
    with pytest.raises(TypeError, match="sise"):
        signature_schema(Base, optional=("sise",))


def test_the_network_and_diffusion_settings_are_the_signatures_of_what_they_build():
    """model.module.unet is UNetModel's arguments, its channel counts null; model.module.diffusion is
    build_diffusion's and, through respace, GaussianDiffusion's, but what each passes itself."""
    unet = OmegaConf.structured(UNetSettings)
    network = inspect.signature(UNetModel).parameters
    assert list(unet) == list(network)
    assert unet.in_channels is None and unet.out_channels is None
    diffusion = OmegaConf.structured(DiffusionSettings)
    chain = [*inspect.signature(build_diffusion).parameters, *inspect.signature(GaussianDiffusion).parameters]
    assert list(diffusion) == [key for key in chain if key not in ("options", "betas", "timestep_map")]
    assert set(inspect.signature(respace).parameters) - set(diffusion) == {"base", "use_timesteps", "options"}
    for node, key, value in [(unet, "model_channels", "abc"), (diffusion, "diffusion_steps", "many")]:
        with pytest.raises(Exception) as info:  # noqa: PT011 - OmegaConf's own error type
            OmegaConf.merge(node, {key: value})
        assert info.value.full_key == key


def test_settings_from_fills_the_defaults_and_names_the_key_of_a_mistake():
    assert settings_from(InferenceConfig, {"steps": 7}, "inference") == InferenceConfig(steps=7)
    assert settings_from(InferenceConfig, None, "inference") == InferenceConfig()
    settings = ValidationConfig(num_batches=3)
    assert settings_from(ValidationConfig, settings, "validation") is settings
    for mapping, key in [
        ({"stepz": 7}, "inference.stepz"),
        ({"steps": "many"}, "inference.steps"),
        ({"merge_parts": "sometimes"}, "inference.merge_parts"),
    ]:
        with pytest.raises(ConfigError, match=rf"^{key}: ") as info:
            settings_from(InferenceConfig, mapping, "inference")
        assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match=r"^model.module.validation.inference.eta: "):
        settings_from(ValidationConfig, {"inference": {"eta": "none"}}, "model.module.validation")


def test_every_schema_is_a_dataclass_omegaconf_takes():
    for name in SCHEMAS:
        assert dataclasses.is_dataclass(schema_of(name)), name
        OmegaConf.structured(schema_of(name))  # every field's type is one OmegaConf checks


def _schema_node(name: str):
    return OmegaConf.to_container(OmegaConf.structured(schema_of(name)), resolve=False)


def _repeated_defaults(own, default, path: str):
    """Keys of ``own`` (a config file's values) whose value is the schema's default ``default``."""
    if isinstance(own, dict) and isinstance(default, dict):
        for key, value in own.items():
            if key in default and key != "_target_":
                yield from _repeated_defaults(value, default[key], f"{path}.{key}".lstrip("."))
    elif own == default and default != MISSING:
        yield path


# Nodes a file writes out in full on purpose, defaults included: unet64 is SAS's network and diffusion, flag for
# flag, so that it reads as SAS's configuration and stays SAS's whatever a default in code becomes.
WRITTEN_IN_FULL = {"model/unet64.yaml": ("module.unet", "module.diffusion")}


def test_no_config_file_repeats_its_schemas_defaults():
    """A file starting from a schema holds only what its choice changes: the default lives in the schema."""
    checked = 0
    for path in sorted(config_dir().rglob("*.yaml")):
        config = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
        for entry in config.get("defaults") or []:
            if not isinstance(entry, dict):
                continue
            for group_and_package, name in entry.items():
                group, _, package = group_and_package.lstrip("/").partition("@")
                if group.split(GROUP_SEPARATOR)[0] != SCHEMA_GROUP:
                    continue
                name = GROUP_SEPARATOR.join([*group.split(GROUP_SEPARATOR)[1:], name])
                own = config if package == "_here_" else config.get(package, {})
                full = WRITTEN_IN_FULL.get(path.relative_to(config_dir()).as_posix(), ())
                repeated = [
                    key
                    for key in _repeated_defaults(own, _schema_node(name), "")
                    if not any(f"{package}.{key}".startswith(f"{node}.") for node in full)
                ]
                assert not repeated, f"{path.relative_to(config_dir())} repeats the defaults of {name}: {repeated}"
                checked += 1
    assert checked >= 23, "the files that start from a schema were found"


def test_no_library_module_reads_the_configs_when_imported(tmp_path):
    """Importing every module of the package opens no file of conf/ (the configs are read when composed)."""
    script = tmp_path / "imports.py"
    script.write_text(
        "import importlib, os, pathlib, sys\n"
        f"conf = {str(config_dir())!r}\n"
        "opened = []\n"
        "def audit(event, args):\n"
        "    if event == 'open' and isinstance(args[0], (str, bytes, pathlib.Path)):\n"
        "        path = os.path.abspath(args[0] if not isinstance(args[0], bytes) else args[0].decode())\n"
        "        if path.startswith(conf):\n"
        "            opened.append(path)\n"
        "sys.addaudithook(audit)\n"
        f"package = pathlib.Path({str(PACKAGE)!r})\n"
        "for path in sorted(package.rglob('*.py')):\n"
        "    parts = path.relative_to(package.parent).with_suffix('').parts\n"
        "    if parts[-1] == '__main__':\n"
        "        continue\n"
        "    try:\n"
        "        importlib.import_module('.'.join(p for p in parts if p != '__init__'))\n"
        "    except ModuleNotFoundError as err:  # an extra that is not installed (the demo's gradio)\n"
        "        if err.name.startswith('amodal_lightning'):\n"
        "            raise\n"
        "print('\\n'.join(opened))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(PACKAGE.parent)}
    result = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "", f"read at import: {result.stdout}"


def _defaults(cls: type, left_out: tuple[str, ...] = ()) -> dict:
    """Every keyword argument of a class with a default, its own constructor's and, where that takes ``**kwargs``,
    its bases' up the MRO, as a config holds them (tuples as lists)."""
    found = {}
    for klass in cls.__mro__:
        if "__init__" not in vars(klass) or klass is object:
            continue
        parameters = inspect.signature(vars(klass)["__init__"]).parameters
        for name, parameter in parameters.items():
            if name not in found and name not in left_out and parameter.default is not parameter.empty:
                default = parameter.default
                found[name] = list(default) if isinstance(default, tuple) else default
        if not any(parameter.kind is parameter.VAR_KEYWORD for parameter in parameters.values()):
            break
    return found


def _own_values(group: str, option: str) -> dict:
    """The values an option's file (and the options it extends, `- annotation_file`) sets itself."""
    config = OmegaConf.to_container(OmegaConf.load(config_dir() / group / f"{option}.yaml"), resolve=False)
    own = {}
    for entry in config.pop("defaults", []):
        if isinstance(entry, str) and entry != "_self_":
            own.update(_own_values(group, entry))
    return {**own, **config}


def _options(group: str) -> list[str]:
    return sorted(path.stem for path in (config_dir() / group).glob("*.yaml"))


@pytest.mark.parametrize("option", _options("task"))
def test_a_composed_task_holds_its_class_defaults(option):
    """Every option of a task, as composed, is its class's argument with its default (nothing written twice): only
    what the option's file sets, and what conf/train.yaml wires (the convention), differ."""
    cfg = compose("train", ["paths.output_dir=.", f"task={option}"])
    composed = OmegaConf.to_container(cfg.task, resolve=False)
    own = _own_values("task", option)
    cls = importlib.import_module(own["_target_"].rpartition(".")[0])
    cls = getattr(cls, own["_target_"].rpartition(".")[2])
    expected = {**_defaults(cls, left_out=("image_size",)), **own, "convention": "${model.convention}"}
    assert composed == expected


def test_the_gestalt_schema_holds_the_instance_tasks_options():
    instance, gestalt = (OmegaConf.structured(schema_of(f"task/{name}")) for name in ("instance", "gestalt"))
    assert set(instance) < set(gestalt) and "hidden_rgb_weight" in gestalt
    assert {"occluder_context", "crop", "crop_factor", "min_crop_size", "include_visible"} <= set(gestalt)
    assert set(gestalt) - {"_target_"} == {"convention", "hidden_rgb_weight", *_defaults(InstanceTask)} - {"image_size"}
    cfg = compose("train", ["paths.output_dir=.", "task=gestalt", "task.crop_factor=3", "task.crop=false"])
    assert cfg.task.crop_factor == 3.0 and cfg.task.crop is False


# What a user must give for a data option to compose whole.
USER_GIVEN = {"root": "/data", "annotations": "/data/a.json", "images": "/data/images"}


@pytest.mark.parametrize("option", _options("data"))
def test_a_composed_data_config_holds_its_classes_defaults(option):
    """A data option, as composed, holds the data module's arguments and its source's with their defaults (those of
    SceneGenerator and the split sizes under `synthetic`): only what its files set (the source, the loader choices,
    the held-out fractions, the format) differs."""
    own = _own_values("data", option)
    source_path = own["source"]["_target_"]
    source = getattr(importlib.import_module(source_path.rpartition(".")[0]), source_path.rpartition(".")[2])
    given = [f"data.{key}={value}" for key, value in USER_GIVEN.items() if key in inspect.signature(source).parameters]
    composed = OmegaConf.to_container(compose("check", [f"data={option}", *given]).data, resolve=False)
    module = _defaults(AmodalDataModule, left_out=("task",))
    required = {name: MISSING for name, p in inspect.signature(source).parameters.items() if p.default is p.empty}
    expected = {**required, **_defaults(source, ("image_size",)), **module, "task": None, "_recursive_": False}
    if "synthetic" in expected:
        expected["synthetic"] = {**dataclasses.asdict(SplitSizes()), **_defaults(SceneGenerator, ("image_size",))}
    expected.update(own)
    expected.update({f"{key}": value for key, value in USER_GIVEN.items() if f"data.{key}={value}" in given})
    assert composed == expected


def _signature_defaults(function, left_out: tuple[str, ...] = ()) -> dict:
    """The keyword arguments of ``function`` with a default, as a config holds them (tuples as lists)."""
    return {
        name: list(p.default) if isinstance(p.default, tuple) else p.default
        for name, p in inspect.signature(function).parameters.items()
        if p.default is not p.empty and name not in left_out
    }


@pytest.mark.parametrize("option", _options("model"))
def test_a_composed_model_holds_its_network_and_diffusion_defaults(option):
    """The network and diffusion of a model option, as composed, are UNetModel's and the diffusion builder's
    arguments with their defaults (the network's channel counts null): only what the option's file sets differs."""
    cfg = compose("train", ["paths.output_dir=.", f"model={option}"])
    own = _own_values("model", option)["module"]
    network = {**_signature_defaults(UNetModel), "in_channels": None, "out_channels": None, **own["unet"]}
    diffusion = {
        **_signature_defaults(build_diffusion),
        **_signature_defaults(GaussianDiffusion, left_out=("timestep_map",)),
        **own["diffusion"],
    }
    assert OmegaConf.to_container(cfg.model.module.unet, resolve=False) == network
    assert OmegaConf.to_container(cfg.model.module.diffusion, resolve=False) == diffusion
