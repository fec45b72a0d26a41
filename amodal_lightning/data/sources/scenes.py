"""Generated scenes as a source (``data=synthetic``): made in memory, nothing to download, no file to check.

The scenes are :class:`~amodal_lightning.data.scenes.SceneGenerator`'s. Each split is a fixed range of scene
indices, the ranges far apart, so the splits never share a scene and the validation and test scenes stay the same
whatever the number of training scenes. Every scene has its layers and each object's amodal and visible mask and
whole appearance.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from amodal_lightning.data.datasets import ImageCollection, InMemoryImages
from amodal_lightning.data.record import ImageRecord
from amodal_lightning.data.scenes import SceneGenerator, scene_id
from amodal_lightning.data.sources.base import SPLITS, Source, check_split
from amodal_lightning.errors import ConfigError
from amodal_lightning.run.schema import signature_schema

# Splits draw scene indices from disjoint ranges this far apart.
SPLIT_STRIDE = 1_000_000_000
# The settings of `synthetic` that size the splits; its other keys are the generator's.
SPLIT_SIZES = {"train": "num_train", "val": "num_val", "test": "num_test"}


@dataclasses.dataclass
class SplitSizes:
    """Scenes per split: fixed, disjoint ranges of scene indices, so that the validation and test scenes do not
    depend on ``num_train``."""

    num_train: int = 8000
    num_val: int = 256
    num_test: int = 256


DEFAULT_SPLIT_SIZES = dataclasses.asdict(SplitSizes())
# What `synthetic` holds (the schema of `data.synthetic`): the split sizes, then every argument of SceneGenerator
# with its default, but its image_size, which is the source's (the data module gives the model's).
SyntheticSettings = signature_schema(
    SceneGenerator, given=("image_size",), with_target=False, bases=(SplitSizes,), name="SyntheticSettings"
)
SYNTHETIC_KEYS = tuple(field.name for field in dataclasses.fields(SyntheticSettings))


class GeneratedScenes(Source):
    """Layered occlusion scenes generated in memory, ``image_size`` pixels a side.

    Args:
        image_size: the scenes' side (None: :class:`SceneGenerator`'s); training makes them at the model's size
            (the data module gives it).
        synthetic: ``num_train``, ``num_val``, ``num_test`` (scenes per split, :class:`SplitSizes`), and any
            keyword of :class:`SceneGenerator` but ``image_size`` (``seed``, ``min_objects``, ``max_objects``,
            ``max_layers``, ...), passed on as it is; the keys it leaves out take their defaults
            (:data:`SyntheticSettings`, the schema of ``data.synthetic``).
    """

    name = "synthetic"
    gives_whole = True
    in_memory = True

    def __init__(self, image_size: int | None = None, synthetic: SyntheticSettings | Mapping[str, Any] | None = None):
        if dataclasses.is_dataclass(synthetic):
            synthetic = dataclasses.asdict(synthetic)
        synthetic = dict(synthetic or {})
        for key in synthetic:
            if key not in SYNTHETIC_KEYS:
                raise ConfigError(f"synthetic.{key}: unknown key; expected one of {sorted(SYNTHETIC_KEYS)}")
        self.split_sizes = {key: synthetic.get(key, default) for key, default in DEFAULT_SPLIT_SIZES.items()}
        for key, value in self.split_sizes.items():
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < SPLIT_STRIDE:
                raise ConfigError(f"synthetic.{key}={value!r}: expected 0 <= value < {SPLIT_STRIDE}")
        kwargs = {key: value for key, value in synthetic.items() if key not in DEFAULT_SPLIT_SIZES}
        if image_size is not None:
            kwargs["image_size"] = image_size
        try:
            self.generator = SceneGenerator(**kwargs)
        except ConfigError as err:
            # The scenes' size is the data's image_size, not a key of `synthetic`.
            prefix = "" if str(err).startswith("image_size=") else "synthetic: "
            raise ConfigError(f"{prefix}{err}") from None
        self.image_size = self.generator.image_size

    def _indices(self, split: str) -> range:
        offset = SPLITS.index(split) * SPLIT_STRIDE
        return range(offset, offset + self.split_sizes[SPLIT_SIZES[split]])

    def _scenes(self, split: str | None) -> list[tuple[str, int, int]]:
        """``(split name, number in the split, scene index)`` of every scene of ``split`` (None: every split's)."""
        check_split(split)
        return [
            (name, number, index)
            for name in ([split] if split else SPLITS)
            for number, index in enumerate(self._indices(name))
        ]

    def image_ids(self, split: str | None = None) -> list[str]:
        return [scene_id(name, number) for name, number, _ in self._scenes(split)]

    def images(self, split: str | None, size: int | None, *, with_whole: bool = True) -> ImageCollection:
        """The scenes of ``split`` (None: every split's, in order), made now, at the scenes' side: ``size`` must be
        None or that side (scenes are made at the size they are used at, never resized). ``with_whole=False`` leaves
        out the objects' whole appearances (four bytes a pixel per object, held only for tasks that read them)."""
        if size is not None and size != self.image_size:
            raise ConfigError(
                f"image_size={self.image_size}: generated scenes are made at the size they are used at, not resized "
                f"to {size}"
            )
        return InMemoryImages(
            [
                ImageRecord.from_scene(scene_id(name, number), self.generator.scene(index), with_whole)
                for name, number, index in self._scenes(split)
            ]
        )

    def check(self, deep: bool = False, *, require_masks: bool = True) -> list:
        """Nothing to check: the scenes are made in memory."""
        return []
