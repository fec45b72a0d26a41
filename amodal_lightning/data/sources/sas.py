"""A SAS-layout root as a source (``data=sas``): the layout is :mod:`amodal_lightning.data.sas_folders`.

Images are read lazily and resized to the size asked for (bilinear images, nearest-neighbour masks); each object's
masks come from ``{root}_instances`` where they were written. SAS's noise folders (the same layout under a root of
their own, ``noise_root``) are the source's noise images, which training mixes in at ``data.noise_rate``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from amodal_lightning.data import sas_folders
from amodal_lightning.data.datasets import ImageCollection, to_sample
from amodal_lightning.data.record import ImageRecord
from amodal_lightning.data.sources.base import IndexedSource, Scan
from amodal_lightning.errors import ConfigError


class SasImages(ImageCollection):
    """Images of a SAS root, read lazily and resized to ``image_size`` (None: their own size); instances come from
    ``{root}_instances``. A layer sample loads that layer's folder alone."""

    def __init__(self, root: str | Path, records: Sequence[sas_folders.LayerFolders], image_size: int | None):
        self.root = Path(root)
        self.records = list(records)
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        record = self.records[index]
        image, layers = sas_folders.load_layers(record, self.image_size)
        instances = sas_folders.read_instances(self.root, record.image_id, self.image_size) or {}
        return ImageRecord(
            image_id=record.image_id,
            image=image,
            layers=layers,
            amodal=instances.get("amodal"),
            visible=instances.get("visible"),
            instance_layer=instances.get("layer"),
            depth_order=instances.get("depth_order"),
        )

    def image_id(self, index: int) -> str:
        return self.records[index].image_id

    def num_layers(self, index: int) -> int:
        return len(self.records[index].folders) - 1

    def num_objects(self, index: int) -> int:
        # SAS folders hold no objects; the instances file beside the root does, where it was written.
        instances = sas_folders.read_instances(self.root, self.records[index].image_id)
        return 0 if instances is None else len(instances["visible"])

    def layer_sample(self, index: int, layer: int) -> dict:
        record = self.records[index]
        image, occlusion, target = sas_folders.load_layer(record, layer, self.image_size)
        return to_sample(image, occlusion, target, layer, record.image_id)


class SasFolders(IndexedSource):
    """A SAS root, split by image id (see :class:`~amodal_lightning.data.sources.base.IndexedSource` for the
    split and index settings).

    Args:
        root: the root folder (``{image_id}_{L}/image.png, mask.png, newmask.png``).
        noise_root: a root of SAS-layout noise folders, read only when training mixes noise in.
    """

    name = "sas"

    def __init__(
        self,
        root: str | Path,
        val_fraction: float,
        test_fraction: float,
        split_seed: int = 0,
        validate_files: bool = False,
        skip_bad_samples: bool = False,
        noise_root: str | Path | None = None,
    ):
        super().__init__(val_fraction, test_fraction, split_seed, validate_files, skip_bad_samples)
        if not root:
            raise ConfigError("root: the SAS root folder is required")
        self.root = Path(root)
        self.noise_root = Path(noise_root) if noise_root else None

    def where(self) -> str:
        return f"data.root={self.root}"

    def scan(self, deep: bool = False, *, require_masks: bool = True) -> Scan:
        return sas_folders.scan_sas_root(self.root, require_masks=require_masks, deep=deep)

    def collection(self, records: Sequence, size: int | None, *, with_whole: bool = True) -> ImageCollection:
        return SasImages(self.root, records, size)

    def check(self, deep: bool = False, *, require_masks: bool = True) -> list[Scan]:
        """The root's scan, and the noise root's when one is set."""
        scans = [self.scan(deep, require_masks=require_masks)]
        if self.noise_root is not None:
            scans.append(sas_folders.scan_sas_root(self.noise_root, require_masks=require_masks, deep=deep))
        return scans

    def noise_images(self, size: int | None) -> ImageCollection:
        """Every image of the noise root, indexed as the root is (problems refused, or left out with
        ``skip_bad_samples``)."""
        if self.noise_root is None:
            raise ConfigError("data.noise_root: required when data.noise_rate > 0 (a root of SAS noise folders)")
        records = self.usable(sas_folders.scan_sas_root(self.noise_root, deep=self.validate_files))
        return SasImages(self.noise_root, records, size)
