"""Convert any data source to a folder layout: ``python -m amodal_lightning.data.convert data=<source> ...
layout=objects|sas output=DIR``.

Every image of the source (every split: nothing is held out) is read at its own size, through the source's own
checked reader (the one training and ``evaluate`` read through), and written in the per-object layout
(:func:`~amodal_lightning.data.object_folders.write_object_folder`) or in SAS's layer layout
(:func:`~amodal_lightning.data.sas_folders.write_image_layers`, with the objects' masks in ``{output}_instances``).
SAS's layout needs layers: an image whose depth order is unknown is left out of it and counted. An image that
cannot be read (an annotation whose mask does not decode, an image file cut short) is named in one line on stderr
and left out; the others are written, and the command exits with status 1.
"""

from __future__ import annotations

from amodal_lightning.run.openmp import apply_spin_settings

apply_spin_settings()  # before torch or Lightning load OpenMP, which reads its wait settings once

import logging
import sys
from pathlib import Path
from typing import TextIO

from omegaconf import DictConfig, OmegaConf

from amodal_lightning.data import object_folders, sas_folders
from amodal_lightning.data.datasets import ImageCollection
from amodal_lightning.data.sources.base import source_from_config
from amodal_lightning.errors import ConfigError, DataError
from amodal_lightning.run.command_line import entry_point
from amodal_lightning.run.config import user_errors_as_one_line

log = logging.getLogger(__name__)
LAYOUTS = ("objects", "sas")
# Exit status when some image could not be read (the others were written).
UNREADABLE_EXIT_CODE = 1


def convert(images: ImageCollection, layout: str, output: str | Path, problems: TextIO | None = None) -> dict[str, int]:
    """Write every image of ``images`` in ``layout`` under ``output``; returns the counts written and left out. An
    image that cannot be read is left out, its one-line reason written to ``problems`` (stderr)."""
    if layout not in LAYOUTS:
        raise ConfigError(f"layout={layout!r}: expected one of {list(LAYOUTS)}")
    problems = problems or sys.stderr
    output = Path(output)
    counts = {"images": 0, "objects": 0, "left_out_without_layers": 0, "left_out_unreadable": 0}
    for index in range(len(images)):
        try:
            record = images[index]
        except DataError as err:
            print(err, file=problems)
            counts["left_out_unreadable"] += 1
            continue
        if layout == "objects":
            object_folders.write_object_folder(output, record)
        elif record.layers is None:
            counts["left_out_without_layers"] += 1
            continue
        else:
            sas_folders.write_image_layers(output, record.image_id, record.image, record.layers)
            if record.amodal is not None:
                sas_folders.write_instances(
                    output,
                    record.image_id,
                    amodal=record.amodal,
                    visible=record.visible,
                    layer=record.instance_layer,
                    depth_order=record.depth_order,
                )
        counts["images"] += 1
        counts["objects"] += record.num_objects
    return counts


@entry_point("convert")
def main(cfg: DictConfig) -> None:
    """Hydra entry point."""
    with user_errors_as_one_line():
        if cfg.get("data") is None or "source" not in cfg.data:
            raise ConfigError("data: name the source to convert, e.g. data=kins data.annotations=FILE data.images=DIR")
        data = OmegaConf.to_container(cfg.data, resolve=True, throw_on_missing=True)
        # Generated scenes are made at image_size; every other source is read at its images' own size.
        source = source_from_config(data, image_size=cfg.image_size)
        counts = convert(source.images(None, None), cfg.layout, cfg.output)
        left_out = [
            f"{counts[key]} image(s) {why}"
            for key, why in (("left_out_without_layers", "without layers"), ("left_out_unreadable", "unreadable"))
            if counts[key]
        ]
        log.info(
            "Wrote %d image(s) with %d object(s) to %s in the %s layout%s",
            counts["images"],
            counts["objects"],
            cfg.output,
            cfg.layout,
            f"; left out {', '.join(left_out)}" if left_out else "",
        )
    if counts["left_out_unreadable"]:
        sys.exit(UNREADABLE_EXIT_CODE)


if __name__ == "__main__":
    main()
