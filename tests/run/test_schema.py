"""Config schemas: how a schema types a node and fills its defaults, that every default is declared once (no config
file repeats its schema's), and that no library module reads ``conf/`` when it is imported."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from omegaconf import MISSING, OmegaConf

from amodal_lightning.errors import ConfigError
from amodal_lightning.models.sampling import InferenceConfig
from amodal_lightning.models.settings import ValidationConfig
from amodal_lightning.run.config import config_dir
from amodal_lightning.run.schema import SCHEMA_GROUP, SCHEMAS, checked_type, schema_of, settings_from, signature_schema

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
                if group != SCHEMA_GROUP:
                    continue
                own = config if package == "_here_" else config.get(package, {})
                repeated = list(_repeated_defaults(own, _schema_node(name), ""))
                assert not repeated, f"{path.relative_to(config_dir())} repeats the defaults of {name}: {repeated}"
                checked += 1
    assert checked >= 12, "the files that start from a schema were found"


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
