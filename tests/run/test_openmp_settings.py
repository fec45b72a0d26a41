"""The entry points' OpenMP wait settings: a short spin by default, whatever the user set wins, and importing the
package itself changes nothing."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from amodal_lightning.run.openmp import OMP_SPIN_SETTINGS, apply_spin_settings

# Each test starts fresh interpreters that import torch.
pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")
ENTRY_POINTS = (
    "amodal_lightning.train",
    "amodal_lightning.predict",
    "amodal_lightning.evaluate",
    "amodal_lightning.data.check",
    "amodal_lightning.convert_sas",
    "amodal_lightning.score",
    "amodal_lightning.demo.__main__",
)


def _clean_env(**given: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in VARIABLES}
    env.update(given, PYTHONPATH=str(REPO_ROOT))
    return env


def settings_after_import(module: str = "amodal_lightning.train", **given: str) -> dict:
    """The wait variables a fresh interpreter sees after importing ``module``, starting from ``given``."""
    code = f"import os, json, {module}; print(json.dumps({{k: os.environ.get(k) for k in {VARIABLES!r}}}))"
    result = subprocess.run(
        [sys.executable, "-c", code], env=_clean_env(**given), capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout.splitlines()[-1])


def test_importing_the_package_leaves_the_environment_unchanged():
    code = (
        "import json, os; before = dict(os.environ); import amodal_lightning, amodal_lightning.run.config; "
        "print(json.dumps(sorted(set(os.environ.items()) ^ set(before.items()))))"
    )
    result = subprocess.run([sys.executable, "-c", code], env=_clean_env(), capture_output=True, text=True, check=True)
    assert json.loads(result.stdout) == []


def test_a_short_spin_by_default():
    assert settings_after_import() == {"OMP_WAIT_POLICY": None, "GOMP_SPINCOUNT": "1000", "KMP_BLOCKTIME": "0"}


@pytest.mark.parametrize("module", ENTRY_POINTS)
def test_each_entry_point_applies_it_before_torch_loads(module):
    code = (
        "import os, sys, json; import " + module + "; "
        "print(json.dumps([os.environ.get('GOMP_SPINCOUNT'), 'torch' in sys.modules]))"
    )
    # The setting is made at the top of the module: torch is imported after it, so a fresh process that imports
    # the module has both; the order is checked below in the module's source.
    result = subprocess.run([sys.executable, "-c", code], env=_clean_env(), capture_output=True, text=True, check=True)
    assert json.loads(result.stdout.splitlines()[-1])[0] == OMP_SPIN_SETTINGS["GOMP_SPINCOUNT"]
    source = (REPO_ROOT / (module.replace(".", "/") + ".py")).read_text()
    call = source.index("apply_spin_settings()")
    for heavy in ("import torch", "import lightning", "from lightning", "from torch"):
        assert heavy not in source or source.index(heavy) > call, f"{module}: {heavy!r} comes before the setting"


@pytest.mark.parametrize("policy", ["PASSIVE", "ACTIVE"])
def test_the_users_wait_policy_is_left_alone(policy):
    assert settings_after_import(OMP_WAIT_POLICY=policy) == {
        "OMP_WAIT_POLICY": policy,
        "GOMP_SPINCOUNT": None,
        "KMP_BLOCKTIME": None,
    }


def test_the_users_spin_count_wins():
    assert settings_after_import(GOMP_SPINCOUNT="20")["GOMP_SPINCOUNT"] == "20"


def test_apply_returns_what_it_set_and_only_that():
    env = {"KMP_BLOCKTIME": "5"}
    assert apply_spin_settings(env) == {"GOMP_SPINCOUNT": "1000"}
    assert env == {"KMP_BLOCKTIME": "5", "GOMP_SPINCOUNT": "1000"}
    assert apply_spin_settings({"OMP_WAIT_POLICY": "PASSIVE"}) == {}
