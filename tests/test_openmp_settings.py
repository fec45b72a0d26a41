"""The package's OpenMP wait settings: a short spin by default, and whatever the user set wins."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")


def settings_after_import(**given: str) -> dict:
    """The wait variables a fresh interpreter sees after ``import amodal_lightning``, starting from ``given``."""
    env = {k: v for k, v in os.environ.items() if k not in VARIABLES}
    env.update(given, PYTHONPATH=str(REPO_ROOT))
    code = f"import os, json, amodal_lightning; print(json.dumps({{k: os.environ.get(k) for k in {VARIABLES!r}}}))"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def test_a_short_spin_by_default():
    assert settings_after_import() == {"OMP_WAIT_POLICY": None, "GOMP_SPINCOUNT": "1000", "KMP_BLOCKTIME": "0"}


@pytest.mark.parametrize("policy", ["PASSIVE", "ACTIVE"])
def test_the_users_wait_policy_is_left_alone(policy):
    assert settings_after_import(OMP_WAIT_POLICY=policy) == {
        "OMP_WAIT_POLICY": policy, "GOMP_SPINCOUNT": None, "KMP_BLOCKTIME": None
    }


def test_the_users_spin_count_wins():
    assert settings_after_import(GOMP_SPINCOUNT="20")["GOMP_SPINCOUNT"] == "20"
