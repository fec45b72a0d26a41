"""Serve the demo page: ``python -m amodal_lightning.demo ckpt_path=PATH [port=N] [device=cpu] [inference.steps=10]``.

A thin Hydra entry point (``conf/demo.yaml``): check that the ``[demo]`` extra is installed, then load the checkpoint,
build the page and serve it until Ctrl+C (:func:`amodal_lightning.demo.app.serve`).
"""

from __future__ import annotations

from amodal_lightning.run.openmp import apply_spin_settings

apply_spin_settings()  # before torch or Lightning load OpenMP, which reads its wait settings once

import importlib
import sys

from omegaconf import DictConfig

from amodal_lightning.run.command_line import entry_point
from amodal_lightning.run.config import USAGE_ERROR_EXIT_CODE, user_errors_as_one_line

# What the demo imports beyond the core install: the `[demo]` extra of pyproject.toml.
DEMO_PACKAGES = ("gradio", "scipy")
INSTALL_COMMAND = 'pip install -e ".[demo]"'


def require_demo_packages() -> None:
    """Exit with one line naming the install command when a package of the ``[demo]`` extra is missing."""
    for name in DEMO_PACKAGES:
        try:
            importlib.import_module(name)
        except ImportError:
            print(f"error: the demo needs {name}, which is not installed: {INSTALL_COMMAND}", file=sys.stderr)
            sys.exit(USAGE_ERROR_EXIT_CODE)


@entry_point("demo")
def _serve(cfg: DictConfig) -> None:
    """Hydra entry point."""
    from amodal_lightning.demo.app import serve

    with user_errors_as_one_line():
        serve(cfg)


def main() -> None:
    """The command line: the extra is checked first, then Hydra composes ``conf/demo.yaml`` with the overrides."""
    require_demo_packages()
    _serve()


if __name__ == "__main__":
    main()
