"""The command line of a Hydra entry point, checked before anything is built: one line for every mistake in it.

Hydra reports a bad override (an unknown key, a missing config option, broken syntax) in several lines of its own,
and takes ``model.lr=abc`` as the string ``"abc"``, which then fails deep inside the optimiser. :func:`entry_point`
replaces ``@hydra.main``: it composes the command line once first and reports both kinds of mistake as one
``error:`` line naming the key (exit status 2), then hands over to Hydra.

A value's expected kind is the kind of the key's default (the config composed with the same config groups but
without the command line's values): a key whose default is a number takes a number, one whose default is true or
false takes true or false. Keys that take either a number or a word are listed in :data:`WORD_VALUED_KEYS`.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence
from typing import Any

import hydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from amodal_lightning.errors import ConfigError
from amodal_lightning.run.config import compose, config_dir, refuse_moved_keys, user_errors_as_one_line

HYDRA_VERSION_BASE = "1.3"
# Keys whose default is a number or a boolean but which also take a word: Lightning's `devices=auto` (or "0,1"),
# `deterministic=warn`.
WORD_VALUED_KEYS = frozenset({"trainer.devices", "trainer.deterministic"})
# Hydra's own settings are checked by Hydra.
HYDRA_KEY_PREFIX = "hydra"
# Hydra's messages end with where it searched; the one-line message stops before that.
SEARCH_PATH_HEADER = "Config search path"
# Detail lines of an OmegaConf error that repeat what the first line says.
DETAIL_PREFIXES = ("full_key:", "object_type=", "reference_type=")
BOOLEAN, NUMBER, TEXT = "true or false", "a number", "text"
# Only scalar defaults fix a kind: text, lists and mappings take several shapes. A scalar key may still take a
# mapping (`compile: true`, or a mapping of torch.compile arguments): only scalars of another kind are refused.
CHECKED_KINDS = (BOOLEAN, NUMBER)
REFUSED_KINDS = (BOOLEAN, NUMBER, TEXT)


def one_line(exc: BaseException) -> str:
    """A Hydra or OmegaConf error as one line: its lines joined, without the search path and repeated details."""
    lines = []
    for line in str(exc).splitlines():
        line = " ".join(line.split())
        if line.startswith(SEARCH_PATH_HEADER):
            break
        if line and not line.startswith(DETAIL_PREFIXES):
            lines.append(line)
    return " ".join(lines) or type(exc).__name__


def _is_group(override: Override) -> bool:
    """Whether the override picks a config group option (``model=unet64``) rather than setting a value."""
    return (config_dir() / override.key_or_group.replace(".", "/")).is_dir()


def _kind(value: Any) -> str | None:
    """The kind of a config value, as the error message names it; None for null."""
    if value is None:
        return None
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, (int, float)):
        return NUMBER
    if isinstance(value, str):
        return TEXT
    return "a list" if OmegaConf.is_list(value) or isinstance(value, list) else "a mapping"


def check_value_kinds(cfg: DictConfig, reference: DictConfig, overrides: Sequence[Override]) -> None:
    """Refuse a value override whose kind differs from the key's default (see the module docstring)."""
    # The last override of a key is the one that holds (`inference.steps=2 ... inference.steps=abc`).
    last = {override.key_or_group: override for override in overrides}
    for override in last.values():
        key = override.key_or_group
        if override.is_delete() or key.replace("/", ".").split(".")[0] == HYDRA_KEY_PREFIX or key in WORD_VALUED_KEYS:
            continue
        default = OmegaConf.select(reference, key, throw_on_resolution_failure=False)
        expected = _kind(default)
        if expected not in CHECKED_KINDS:
            continue
        value = OmegaConf.select(cfg, key, throw_on_resolution_failure=False)
        if _kind(value) not in REFUSED_KINDS or _kind(value) == expected:
            continue
        raise ConfigError(
            f"{override.input_line}: {key} takes {expected} (its default is {default}), not {_kind(value)}"
        )


def check_command_line(config_name: str, argv: Sequence[str]) -> None:
    """Compose ``argv`` as Hydra would and check its values' kinds; raise :class:`ConfigError` in one line.

    Command lines with Hydra's own flags (``--help``, ``--cfg``, ``-m``) or sweeps are left to Hydra.
    """
    argv = list(argv)
    if any(arg.startswith("-") for arg in argv):
        return
    parser = OverridesParser.create()
    overrides = []
    for arg in argv:
        try:
            overrides += parser.parse_overrides([arg])
        except HydraException as exc:
            raise ConfigError(f"{arg}: not an override Hydra can read ({one_line(exc)})") from None
    if any(override.is_sweep_override() for override in overrides):
        return
    try:
        cfg = compose(config_name, argv)
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(one_line(exc)) from None
    values = [override for override in overrides if not _is_group(override)]
    if not values:
        return
    try:
        reference = compose(config_name, [override.input_line for override in overrides if _is_group(override)])
    except (HydraException, OmegaConfBaseException):
        return  # the groups alone do not compose (a value the groups need is set on the command line): no defaults
    check_value_kinds(cfg, reference, values)


def entry_point(config_name: str) -> Callable[[Callable[[DictConfig], Any]], Callable[..., Any]]:
    """``@hydra.main`` for ``conf/{config_name}.yaml``, with the command line checked first (one ``error:`` line)."""

    def decorate(task_function: Callable[[DictConfig], Any]) -> Callable[..., Any]:
        hydra_main = hydra.main(
            version_base=HYDRA_VERSION_BASE, config_path=str(config_dir()), config_name=config_name
        )(task_function)

        @functools.wraps(task_function)
        def main(cfg_passthrough: DictConfig | None = None) -> Any:
            if cfg_passthrough is None:
                with user_errors_as_one_line():
                    # A key that moved is named with its new place, also on command lines left to Hydra.
                    refuse_moved_keys(sys.argv[1:])
                    check_command_line(config_name, sys.argv[1:])
            return hydra_main(cfg_passthrough)

        return main

    return decorate
