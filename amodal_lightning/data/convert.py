"""Convert any data source to a folder layout: ``python -m amodal_lightning.data.convert data=<source> ...
layout=objects|sas output=DIR``.

Every image of the source (its whole file or root: nothing is held out) is read at its own size and written in the
per-object layout (:func:`~amodal_lightning.data.object_folders.write_object_folder`) or in SAS's layer layout
(:func:`~amodal_lightning.data.sas_folders.write_image_layers`, with the objects' masks in ``{output}_instances``).
SAS's layout needs layers: an image whose depth order is unknown is left out of it and counted.
"""

from __future__ import annotations

from amodal_lightning.run.openmp import apply_spin_settings

apply_spin_settings()  # before torch or Lightning load OpenMP, which reads its wait settings once

import logging
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from amodal_lightning.data import object_folders, sas_folders
from amodal_lightning.data.datasets import ImageCollection
from amodal_lightning.errors import ConfigError
from amodal_lightning.run.command_line import entry_point
from amodal_lightning.run.config import user_errors_as_one_line

log = logging.getLogger(__name__)
LAYOUTS = ("objects", "sas")
TARGET_KEY = "_target_"


def convert(images: ImageCollection, layout: str, output: str | Path) -> dict[str, int]:
    """Write every image of ``images`` in ``layout`` under ``output``; returns the counts written and left out."""
    if layout not in LAYOUTS:
        raise ConfigError(f"layout={layout!r}: expected one of {list(LAYOUTS)}")
    output = Path(output)
    counts = {"images": 0, "objects": 0, "left_out_without_layers": 0}
    for index in range(len(images)):
        record = images[index]
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
        if cfg.get("data") is None or TARGET_KEY not in cfg.data:
            raise ConfigError("data: name the source to convert, e.g. data=kins data.annotations=FILE data.images=DIR")
        data = OmegaConf.to_container(cfg.data, resolve=True)
        settings = {**data, "image_size": cfg.image_size, "task": {"name": "instance"}}
        datamodule = instantiate(OmegaConf.create(settings), _convert_="all")
        # The instance task reads images at their own size, and every object of them.
        images = datamodule.scenes("train")
        counts = convert(images, cfg.layout, cfg.output)
        log.info(
            "Wrote %d image(s) with %d object(s) to %s in the %s layout%s",
            counts["images"],
            counts["objects"],
            cfg.output,
            cfg.layout,
            f"; left out {counts['left_out_without_layers']} image(s) without layers"
            if counts["left_out_without_layers"]
            else "",
        )


if __name__ == "__main__":
    main()
