"""OpenMP wait settings for the command-line entry points, applied before torch loads OpenMP.

How long torch's OpenMP threads spin at the end of a parallel region before they sleep: libgomp's own default
(Linux) spins ~300k iterations, fastest on idle cores but up to 25x slower when other processes want the cores
(DataLoader workers, other jobs); sleeping at once (``OMP_WAIT_POLICY=PASSIVE``) is safe but slower on idle cores. A
short spin keeps most of both (see results/2026-11-29-openmp-waits.md). libomp (macOS) reads ``KMP_BLOCKTIME``
instead: 0 ms keeps it passive there.

Importing ``amodal_lightning`` changes nothing; each entry point (``train``, ``predict``, ``evaluate``,
``data.check``, ``convert_sas`` and the benchmarks) calls :func:`apply_spin_settings` at the top of its module,
before it imports torch or Lightning, because OpenMP reads these variables once, when torch loads it.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

# The short spin: the user's own OMP_WAIT_POLICY or spin settings always win.
OMP_SPIN_SETTINGS = {"GOMP_SPINCOUNT": "1000", "KMP_BLOCKTIME": "0"}
WAIT_POLICY_VARIABLE = "OMP_WAIT_POLICY"


def apply_spin_settings(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Set the short OpenMP spin in ``environ`` (default ``os.environ``) unless the user chose how threads wait.

    Leaves everything alone when ``OMP_WAIT_POLICY`` is set, and never overrides a spin variable already set.
    Returns the variables it set. Has an effect only when called before torch is imported.
    """
    env = os.environ if environ is None else environ
    if WAIT_POLICY_VARIABLE in env:
        return {}
    applied = {}
    for name, value in OMP_SPIN_SETTINGS.items():
        if name not in env:
            env[name] = value
            applied[name] = value
    return applied
