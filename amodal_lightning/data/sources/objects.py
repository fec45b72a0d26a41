"""A per-object root as a source (``data=objects``): the layout is :mod:`amodal_lightning.data.object_folders`.

Images without ``order.json`` have no layers (the layer task skips them; the per-object tasks read every object);
images whose objects all have ``{k}_whole.png`` give their whole appearances, what the whole-object task trains on.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from amodal_lightning.data import object_folders
from amodal_lightning.data.datasets import ImageCollection
from amodal_lightning.data.sources.base import IndexedSource, Scan
from amodal_lightning.errors import ConfigError


class ObjectFolders(IndexedSource):
    """A per-object root, split by image id (see :class:`~amodal_lightning.data.sources.base.IndexedSource` for
    the split and index settings).

    Args:
        root: the root folder (``{image_id}/image.png``, ``{image_id}/objects/{k}_visible.png`` and
            ``{k}_amodal.png``, optional ``{k}_whole.png`` and ``{image_id}/order.json``).
    """

    name = "objects"
    # Where every object of an image has its {k}_whole.png; the whole-object task refuses an image without.
    gives_whole = True

    def __init__(
        self,
        root: str | Path,
        val_fraction: float,
        test_fraction: float,
        split_seed: int = 0,
        validate_files: bool = False,
        skip_bad_samples: bool = False,
    ):
        super().__init__(val_fraction, test_fraction, split_seed, validate_files, skip_bad_samples)
        if not root:
            raise ConfigError("root: the per-object root folder is required")
        self.root = Path(root)

    def where(self) -> str:
        return f"data.root={self.root}"

    def scan(self, deep: bool = False, *, require_masks: bool = True) -> Scan:
        # The masks a prediction input may lack are the amodal ones: prediction needs only the visible masks.
        return object_folders.scan_object_root(self.root, require_amodal=require_masks, deep=deep)

    def collection(self, records: Sequence, size: int | None, *, with_whole: bool = True) -> ImageCollection:
        return object_folders.ObjectFolderImages(self.root, records, size)
