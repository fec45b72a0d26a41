"""The package list in pyproject.toml covers every subpackage, and the configs ship with the package."""

import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib is in the standard library from Python 3.11")
def test_every_subpackage_and_the_configs_are_packaged():
    import tomllib

    setuptools_cfg = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packaged = set(setuptools_cfg["packages"])
    on_disk = {
        ".".join(init.parent.relative_to(REPO_ROOT).parts)
        for init in (REPO_ROOT / "amodal_lightning").rglob("__init__.py")
    }
    assert on_disk - packaged == set(), "add these to [tool.setuptools] packages"
    assert setuptools_cfg["package-dir"]["amodal_lightning.conf"] == "conf"
    assert (REPO_ROOT / "conf" / "train.yaml").is_file()
