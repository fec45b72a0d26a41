"""Check a SAS root: ``python -m amodal_lightning.data.check data=sas data.root=DIR [deep=true]``.

Prints one line per malformed sample on stdout (``path: reason``, so ``> bad.txt`` keeps a clean list) and a
summary per root on stderr; exits with status 1 when there is any problem, 2 for a bad config or a missing root.
It runs the scanner that training runs at setup (:func:`~amodal_lightning.data.sas_folders.scan_sas_root`), so it
reports exactly what training would refuse; ``deep=true`` also decodes every file.
"""

from __future__ import annotations

from amodal_lightning.openmp import apply_spin_settings

apply_spin_settings()  # before torch or Lightning load OpenMP, which reads its wait settings once

import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

import hydra
from omegaconf import DictConfig

from amodal_lightning.config import config_dir, user_errors_as_one_line
from amodal_lightning.data.sas_folders import scan_sas_root
from amodal_lightning.errors import ConfigError

# Exit status when the check found malformed samples (2, a usage error, is left to bad configs).
PROBLEMS_EXIT_CODE = 1


def check_roots(
    roots: Iterable[str | Path],
    *,
    deep: bool = False,
    require_masks: bool = True,
    out: TextIO | None = None,
    summary_out: TextIO | None = None,
) -> int:
    """Scan each root, write its problems to ``out`` (stdout) and its summary to ``summary_out`` (stderr); returns
    the number of problems."""
    out = out or sys.stdout
    summary_out = summary_out or sys.stderr
    total = 0
    for root in roots:
        start = time.perf_counter()
        scan = scan_sas_root(root, require_masks=require_masks, deep=deep)
        for problem in scan.problems:
            print(problem, file=out)
        print(f"{root}: {scan.summary()}, checked in {time.perf_counter() - start:.1f} s", file=summary_out)
        total += len(scan.problems)
    return total


def roots_of(data: DictConfig) -> list[str]:
    """The SAS roots a data config reads: ``data.root``, and ``data.noise_root`` when set."""
    if data.get("source") != "sas":
        raise ConfigError(
            f"data.source={data.get('source')}: only SAS folders can be checked; pass data=sas data.root=DIR"
        )
    return [str(root) for root in (data.root, data.get("noise_root")) if root]


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="check")
def main(cfg: DictConfig) -> None:
    """Hydra entry point: check the configured roots and exit with status 1 when any sample is malformed."""
    with user_errors_as_one_line():
        problems = check_roots(roots_of(cfg.data), deep=cfg.deep, require_masks=cfg.require_masks)
    if problems:
        sys.exit(PROBLEMS_EXIT_CODE)


if __name__ == "__main__":
    main()
