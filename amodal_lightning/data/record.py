"""The per-image record every data source yields, whatever task reads it.

A source (generated scenes, SAS layer folders, per-object folders, COCO-style annotation files) gives one
:class:`ImageRecord` per image; a task (:mod:`amodal_lightning.tasks`) decides which samples it makes of it (one per
layer, one per object) and inference and evaluation read their ground truth from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from amodal_lightning.data.scenes import Scene


@dataclass(frozen=True, eq=False)
class ImageRecord:
    """A whole image with its objects and, where the depth order is known, its SAS layers.

    ``image`` uint8 (H,W,3); ``layers`` bool (K,H,W), front layer first, terminal empty layer not included; None
    when the depth order is unknown (the layer task then skips the image). Per-object ground truth, where known:
    ``amodal`` and ``visible`` bool (N,H,W), ``instance_layer`` int64 (N,) (each object's SAS layer),
    ``depth_order`` int64 (N,) object indices from the front, ``object_ids`` int64 (N,) the source's own ids
    (annotation ids of a COCO-style file); ``whole`` uint8 (N,H,W,4) each object's whole appearance, RGBA: its own
    pixels over all of its amodal mask as if nothing were in front of it, alpha 255 there and 0 (RGB 0) elsewhere;
    None otherwise.
    """

    image_id: str
    image: np.ndarray
    layers: np.ndarray | None
    amodal: np.ndarray | None = None
    visible: np.ndarray | None = None
    instance_layer: np.ndarray | None = None
    depth_order: np.ndarray | None = None
    object_ids: np.ndarray | None = None
    whole: np.ndarray | None = None

    @property
    def num_layers(self) -> int:
        """Number of non-empty layers K; the layer task makes K + 1 samples of the image."""
        return 0 if self.layers is None else len(self.layers)

    @property
    def num_objects(self) -> int:
        """Number of objects N whose visible mask is known (0 without per-object ground truth)."""
        return 0 if self.visible is None else len(self.visible)

    def occlusion(self, layer: int) -> np.ndarray:
        """Cumulative occlusion mask of ``layer``: union of the layers before it, bool (H,W)."""
        return self.layers[:layer].any(axis=0) if layer else np.zeros(self.image.shape[:2], dtype=bool)

    def target(self, layer: int) -> np.ndarray:
        """Mask of ``layer``, empty for the terminal layer K: bool (H,W)."""
        return self.layers[layer] if layer < self.num_layers else np.zeros(self.image.shape[:2], dtype=bool)

    @classmethod
    def from_scene(cls, image_id: str, scene: Scene, with_whole: bool = True) -> ImageRecord:
        """A generated scene with its ground truth; ``with_whole`` false leaves out the objects' whole appearance
        (four bytes a pixel per object, held in memory only for tasks that read it)."""
        return cls(
            image_id=image_id,
            image=scene.image,
            layers=scene.layer_masks(),
            amodal=scene.amodal,
            visible=scene.visible,
            instance_layer=scene.layer,
            depth_order=scene.depth_order,
            whole=scene.whole if with_whole else None,
        )
