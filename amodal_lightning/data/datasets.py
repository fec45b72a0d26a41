"""Torch-side samples: image collections, the per-(image, layer) Dataset, and the noise-mixing sampler.

A sample is a dict of the canonical batch format documented in :mod:`amodal_lightning.data.datamodule`; the key
names are the constants below. Collections hold whole images (:class:`LayeredImage`), either in memory (generated
scenes) or lazily on disk (SAS folders), and :class:`LayerDataset` turns them into one sample per image and layer,
each image's terminal empty layer included.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from amodal_lightning.data import sas_folders
from amodal_lightning.data.scenes import Scene

IMAGE = "image"
OCCLUSION = "occlusion"
TARGET = "target"
LAYER = "layer"
IMAGE_ID = "image_id"
BATCH_KEYS = (IMAGE, OCCLUSION, TARGET, LAYER, IMAGE_ID)
PIXEL_MAX = 255.0


@dataclass(frozen=True, eq=False)
class LayeredImage:
    """A whole image and its ordered layers: what sequential prediction and evaluation walk through.

    ``image`` uint8 (H,W,3); ``layers`` bool (K,H,W), front layer first, terminal empty layer not included.
    Per-instance ground truth, where known (generated scenes, or SAS roots written with instances): ``amodal`` and
    ``visible`` bool (N,H,W), ``instance_layer`` int64 (N,), ``depth_order`` int64 (N,) object indices from the
    front; all None otherwise.
    """

    image_id: str
    image: np.ndarray
    layers: np.ndarray
    amodal: np.ndarray | None = None
    visible: np.ndarray | None = None
    instance_layer: np.ndarray | None = None
    depth_order: np.ndarray | None = None

    @property
    def num_layers(self) -> int:
        """Number of non-empty layers K; the image gives K + 1 training samples."""
        return len(self.layers)

    def occlusion(self, layer: int) -> np.ndarray:
        """Cumulative occlusion mask of ``layer``: union of the layers before it, bool (H,W)."""
        return self.layers[:layer].any(axis=0) if layer else np.zeros(self.image.shape[:2], dtype=bool)

    def target(self, layer: int) -> np.ndarray:
        """Mask of ``layer``, empty for the terminal layer K: bool (H,W)."""
        return self.layers[layer] if layer < self.num_layers else np.zeros(self.image.shape[:2], dtype=bool)

    @classmethod
    def from_scene(cls, image_id: str, scene: Scene) -> LayeredImage:
        """A generated scene with all its ground truth."""
        return cls(
            image_id=image_id,
            image=scene.image,
            layers=scene.layer_masks(),
            amodal=scene.amodal,
            visible=scene.visible,
            instance_layer=scene.layer,
            depth_order=scene.depth_order,
        )


def to_sample(image: np.ndarray, occlusion: np.ndarray, target: np.ndarray, layer: int, image_id: str) -> dict:
    """Numpy arrays of one sample -> the canonical sample dict (tensors; batched by the default collate)."""
    return {
        IMAGE: torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(PIXEL_MAX),
        OCCLUSION: torch.from_numpy(np.ascontiguousarray(occlusion)).float().unsqueeze(0),
        TARGET: torch.from_numpy(np.ascontiguousarray(target)).float().unsqueeze(0),
        LAYER: torch.tensor(layer, dtype=torch.int64),
        IMAGE_ID: image_id,
    }


class ImageCollection(Sequence):
    """Images of one split: indexable as :class:`LayeredImage`, and able to load a single (image, layer) sample."""

    def image_id(self, index: int) -> str:
        """Id of image ``index``."""
        raise NotImplementedError

    def num_samples(self, index: int) -> int:
        """Samples of image ``index``: its layers plus the terminal one."""
        raise NotImplementedError

    def sample(self, index: int, layer: int) -> dict:
        """The canonical sample dict of layer ``layer`` of image ``index``."""
        raise NotImplementedError


class InMemoryImages(ImageCollection):
    """Images held in memory (generated scenes)."""

    def __init__(self, images: Sequence[LayeredImage]):
        self.images = list(images)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index):
        return self.images[index]

    def image_id(self, index: int) -> str:
        return self.images[index].image_id

    def num_samples(self, index: int) -> int:
        return self.images[index].num_layers + 1

    def sample(self, index: int, layer: int) -> dict:
        image = self.images[index]
        return to_sample(image.image, image.occlusion(layer), image.target(layer), layer, image.image_id)


class SasImages(ImageCollection):
    """Images of a SAS root, read lazily and resized to ``image_size``; instances come from ``{root}_instances``."""

    def __init__(self, root: str | Path, records: Sequence[sas_folders.ImageRecord], image_size: int | None):
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
        return LayeredImage(
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

    def num_samples(self, index: int) -> int:
        return len(self.records[index].folders)

    def sample(self, index: int, layer: int) -> dict:
        record = self.records[index]
        image, occlusion, target = sas_folders.load_layer(record, layer, self.image_size)
        return to_sample(image, occlusion, target, layer, record.image_id)


class LayerDataset(Dataset):
    """One sample per (image, layer) of a collection, each image's terminal empty layer included (as in SAS).

    ``front_layer_repeats`` > 1 lists each image's layer-0 sample that many times (SAS: once): layer 0 decides
    every later layer of sequential inference, so a recipe can spend more of its steps on it.
    """

    def __init__(self, images: ImageCollection, front_layer_repeats: int = 1):
        self.images = images
        counts = np.array([images.num_samples(i) for i in range(len(images))], dtype=np.int64)
        image_index = np.repeat(np.arange(len(images)), counts)
        # Layer of each flat sample: its position within its image's run of samples.
        starts = np.repeat(np.cumsum(counts) - counts, counts)
        layer = np.arange(len(image_index)) - starts
        extra = np.flatnonzero(layer == 0).repeat(front_layer_repeats - 1)
        self._image_index = np.concatenate([image_index, image_index[extra]])
        self._layer = np.concatenate([layer, layer[extra]])

    def __len__(self) -> int:
        return len(self._image_index)

    def __getitem__(self, index: int) -> dict:
        return self.images.sample(int(self._image_index[index]), int(self._layer[index]))

    def image_ids(self) -> set[str]:
        """Ids of the images this dataset draws from."""
        return {self.images.image_id(i) for i in range(len(self.images))}


class NoiseMixingSampler(Sampler[int]):
    """Indices into ``ConcatDataset([clean, noise])``: each draw is a noise sample with probability ``noise_rate``.

    An epoch has ``num_clean`` draws: a fresh permutation of the clean samples in which each position is replaced,
    with probability ``noise_rate``, by a uniformly drawn noise sample. The draws depend only on ``seed`` and the
    epoch given to :meth:`set_epoch` (which Lightning calls, also through its distributed wrapper).
    """

    def __init__(self, num_clean: int, num_noise: int, noise_rate: float, seed: int = 0):
        self.num_clean = num_clean
        self.num_noise = num_noise
        self.noise_rate = noise_rate
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose draws the next iteration yields."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_clean

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        clean = rng.permutation(self.num_clean)
        from_noise = rng.random(self.num_clean) < self.noise_rate
        noise = self.num_clean + rng.integers(self.num_noise, size=self.num_clean)
        return iter(np.where(from_noise, noise, clean).tolist())
