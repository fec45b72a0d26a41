"""Check a data root: ``python -m amodal_lightning.data.check data=sas|objects data.root=DIR [deep=true]``.

Prints one line per malformed sample on stdout (``path: reason``, so ``> bad.txt`` keeps a clean list) and a
summary per root on stderr; exits with status 1 when there is any problem, 2 for a bad config or a missing root.
It runs the scanner of the layout that ``data.source`` names, the one training runs at setup
(:func:`~amodal_lightning.data.sas_folders.scan_sas_root` for SAS folders,
:func:`~amodal_lightning.data.object_folders.scan_object_root` for per-object folders), so it reports exactly what
training would refuse at setup; ``deep=true`` also decodes every file with the function the loader calls
(:func:`~amodal_lightning.data.sas_folders.load_layer`, :func:`~amodal_lightning.data.object_folders.load_objects`),
so it names every file training would refuse when loading it, in the same line.
"""

from __future__ import annotations

from amodal_lightning.run.openmp import apply_spin_settings

apply_spin_settings()  # before torch or Lightning load OpenMP, which reads its wait settings once

import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from omegaconf import DictConfig

from amodal_lightning.data.coco_amodal import scan_coco_annotations
from amodal_lightning.data.coco_formats import FORMATS as ANNOTATION_FORMATS
from amodal_lightning.data.object_folders import scan_object_root
from amodal_lightning.data.sas_folders import RootScan, scan_sas_root
from amodal_lightning.errors import ConfigError
from amodal_lightning.run.command_line import entry_point
from amodal_lightning.run.config import user_errors_as_one_line

# Exit status when the check found malformed samples (2, a usage error, is left to bad configs).
PROBLEMS_EXIT_CODE = 1
SAS = "sas"
OBJECTS = "objects"


def _scan_sas(root: str | Path, require_masks: bool, deep: bool) -> RootScan:
    return scan_sas_root(root, require_masks=require_masks, deep=deep)


def _scan_objects(root: str | Path, require_masks: bool, deep: bool) -> RootScan:
    # The masks an inference input may lack are the amodal ones: prediction needs only the visible masks.
    return scan_object_root(root, require_amodal=require_masks, deep=deep)


# The scanner of each data.source that lives in folders.
SCANNERS = {SAS: _scan_sas, OBJECTS: _scan_objects}


def check_roots(
    roots: Iterable[str | Path],
    *,
    deep: bool = False,
    require_masks: bool = True,
    source: str = SAS,
    out: TextIO | None = None,
    summary_out: TextIO | None = None,
) -> int:
    """Scan each root in the layout of ``source`` (``"sas"`` or ``"objects"``), write its problems to ``out``
    (stdout) and its summary to ``summary_out`` (stderr); returns the number of problems.

    ``require_masks=False`` checks an inference root: SAS folders need only ``image.png``, per-object folders only
    the visible masks.
    """
    if source not in SCANNERS:
        raise ConfigError(f"data.source={source}: only {' and '.join(SCANNERS)} roots can be checked")
    scanner = SCANNERS[source]
    out = out or sys.stdout
    summary_out = summary_out or sys.stderr
    total = 0
    for root in roots:
        start = time.perf_counter()
        scan = scanner(root, require_masks, deep)
        for problem in scan.problems:
            print(problem, file=out)
        print(f"{root}: {scan.summary()}, checked in {time.perf_counter() - start:.1f} s", file=summary_out)
        total += len(scan.problems)
    return total


def check_annotations(
    data: DictConfig, *, deep: bool = False, out: TextIO | None = None, summary_out: TextIO | None = None
) -> int:
    """Scan an annotation-file source (``data.annotations`` beside ``data.images``) the way training reads it; write
    its problems to ``out`` and its summary to ``summary_out``; returns the number of problems."""
    out = out or sys.stdout
    summary_out = summary_out or sys.stderr
    for key in ("annotations", "images"):
        if not data.get(key):
            raise ConfigError(f"data.{key}: required to check a data.source={data.source} file")
    start = time.perf_counter()
    scan = scan_coco_annotations(
        data.annotations, data.images, deep, source=data.source, include_stuff=bool(data.get("include_stuff", False))
    )
    for problem in scan.problems:
        print(problem, file=out)
    print(f"{data.annotations}: {scan.summary()}, checked in {time.perf_counter() - start:.1f} s", file=summary_out)
    return len(scan.problems)


def roots_of(data: DictConfig) -> list[str]:
    """The roots a data config reads: ``data.root``, and ``data.noise_root`` when set (SAS noise folders)."""
    if data.get("source") not in SCANNERS:
        raise ConfigError(
            f"data.source={data.get('source')}: not a layout on disk; pass data=sas or data=objects with "
            f"data.root=DIR, or one of {list(ANNOTATION_FORMATS)} with data.annotations=FILE data.images=DIR"
        )
    return [str(root) for root in (data.root, data.get("noise_root")) if root]


@entry_point("check")
def main(cfg: DictConfig) -> None:
    """Hydra entry point: check the configured roots and exit with status 1 when any sample is malformed."""
    with user_errors_as_one_line():
        if cfg.data.get("source") in ANNOTATION_FORMATS:
            problems = check_annotations(cfg.data, deep=cfg.deep)
        else:
            problems = check_roots(
                roots_of(cfg.data), deep=cfg.deep, require_masks=cfg.require_masks, source=cfg.data.source
            )
    if problems:
        sys.exit(PROBLEMS_EXIT_CODE)


if __name__ == "__main__":
    main()
