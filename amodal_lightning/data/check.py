"""Check a data source: ``python -m amodal_lightning.data.check data=<name> data.root=DIR [deep=true]`` (or, for an
annotation file, ``data.annotations=FILE data.images=DIR``).

Prints one line per problem on stdout (``path: reason``, so ``> bad.txt`` keeps a clean list) and a summary per
place checked on stderr; exits with status 1 when there is any problem, 2 for a bad config or a missing root. It
builds the source the data config names and runs its own check (:meth:`Source.check
<amodal_lightning.data.sources.base.Source.check>`), the scan training runs at setup, so it reports exactly what
training would refuse at setup; ``deep=true`` also decodes every file with the function the loader calls, so it
names every file training would refuse when loading it, in the same line.
"""

from __future__ import annotations

from amodal_lightning.run.openmp import apply_spin_settings

apply_spin_settings()  # before torch or Lightning load OpenMP, which reads its wait settings once

import sys
import time
from typing import TextIO

from omegaconf import DictConfig, OmegaConf

from amodal_lightning.data.sources.base import Source, source_from_config
from amodal_lightning.errors import ConfigError
from amodal_lightning.run.command_line import entry_point
from amodal_lightning.run.config import user_errors_as_one_line

# Exit status when the check found problems (2, a usage error, is left to bad configs).
PROBLEMS_EXIT_CODE = 1


def check_source(
    source: Source,
    *,
    deep: bool = False,
    require_masks: bool = True,
    out: TextIO | None = None,
    summary_out: TextIO | None = None,
) -> int:
    """Check ``source``, write its problems to ``out`` (stdout), one line each, and a summary per place checked to
    ``summary_out`` (stderr); returns the number of problems.

    ``require_masks=False`` checks a prediction input of a folder layout: SAS folders need only ``image.png``,
    per-object folders only the visible masks.
    """
    out = out or sys.stdout
    summary_out = summary_out or sys.stderr
    start = time.perf_counter()
    scans = source.check(deep, require_masks=require_masks)
    total = 0
    for scan in scans:
        for problem in scan.problems:
            print(problem, file=out)
        total += len(scan.problems)
    seconds = time.perf_counter() - start
    for scan in scans:
        print(f"{scan.location}: {scan.summary()}, checked in {seconds:.1f} s", file=summary_out)
    if not scans:
        print(f"{source.describe()}: nothing on disk to check", file=summary_out)
    return total


@entry_point("check")
def main(cfg: DictConfig) -> None:
    """Hydra entry point: check the configured source and exit with status 1 when it has any problem."""
    with user_errors_as_one_line():
        if cfg.get("data") is None:
            raise ConfigError("data: name the source to check, e.g. data=sas data.root=DIR")
        # A key the user must give (data.root=???) is refused in one line naming it.
        source = source_from_config(OmegaConf.to_container(cfg.data, resolve=True, throw_on_missing=True))
        problems = check_source(source, deep=cfg.deep, require_masks=cfg.require_masks)
    if problems:
        sys.exit(PROBLEMS_EXIT_CODE)


if __name__ == "__main__":
    main()
