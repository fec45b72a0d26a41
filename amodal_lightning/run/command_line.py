"""The command line of a Hydra entry point: one ``error:`` line for every mistake in it.

The configs' schemas (:mod:`amodal_lightning.run.schema`) refuse a value of the wrong type and a key that does not
exist while Hydra composes the config, naming the full key (``optimizer.lr=abc``). Hydra would report that, and
any other command line it cannot compose (an option that does not exist, broken syntax), in several lines of its
own; :func:`entry_point` replaces ``@hydra.main`` so that these errors reach
:func:`~amodal_lightning.run.config.user_errors_as_one_line` instead, which prints them as one line naming the key
(exit status 2). The config is composed once, by Hydra.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import hydra
from omegaconf import DictConfig

from amodal_lightning.run.config import HYDRA_VERSION_BASE, config_dir, user_errors_as_one_line
from amodal_lightning.run.schema import refuse_added_keys, register_schemas

# Hydra prints the errors it catches (composition errors among them) itself unless this is set to 1: then it raises
# them to the caller, here the one-line report.
HYDRA_FULL_ERROR = "HYDRA_FULL_ERROR"


def entry_point(config_name: str) -> Callable[[Callable[[DictConfig], Any]], Callable[..., Any]]:
    """``@hydra.main`` for ``conf/{config_name}.yaml``, its schemas registered and a command line Hydra cannot
    compose reported in one ``error:`` line."""

    def decorate(task_function: Callable[[DictConfig], Any]) -> Callable[..., Any]:
        @functools.wraps(task_function)
        def checked(cfg: DictConfig) -> Any:
            with user_errors_as_one_line():
                refuse_added_keys(cfg)
            return task_function(cfg)

        hydra_main = hydra.main(
            version_base=HYDRA_VERSION_BASE, config_path=str(config_dir()), config_name=config_name
        )(checked)

        @functools.wraps(task_function)
        def main(cfg_passthrough: DictConfig | None = None) -> Any:
            register_schemas()
            if cfg_passthrough is not None:
                return hydra_main(cfg_passthrough)
            os.environ[HYDRA_FULL_ERROR] = "1"
            with user_errors_as_one_line():
                return hydra_main()

        return main

    return decorate
