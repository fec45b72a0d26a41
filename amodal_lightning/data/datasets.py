"""Torch-side samples: image collections, the Dataset of a task's samples, and the noise-mixing sampler.

Collections hold whole images (:class:`~amodal_lightning.data.record.LayeredImage`), either in memory (generated
scenes) or lazily on disk (SAS folders, per-object folders); a task (:mod:`amodal_lightning.tasks`) says how many
samples each image gives and makes them, and :class:`TaskDataset` flattens that into one index. Samples are dicts
in the batch format of :mod:`amodal_lightning.batch`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler, get_worker_info

from amodal_lightning.batch import IMAGE, IMAGE_ID, LAYER, OCCLUSION, PIXEL_MAX, RGB_KEYS, TARGET
from amodal_lightning.data import sas_folders
from amodal_lightning.data.record import LayeredImage
from amodal_lightning.errors import DataError

log = logging.getLogger(__name__)

BATCH_KEYS = (IMAGE, OCCLUSION, TARGET, LAYER, IMAGE_ID)
# With skip_bad, a sample that fails to load is replaced by the one this many positions on (a prime: the replacement
# is unrelated to the failed sample, and the same in every run), trying at most MAX_REPLACEMENTS in a row.
REPLACEMENT_STRIDE = 7919
MAX_REPLACEMENTS = 8
# Skipped-sample counters: one slot per loader worker and one for the main process, in shared memory, so the main
# process can count what its workers skipped without a lock.
MAX_COUNTED_WORKERS = 256


def image_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 RGB (H,W,3) -> canonical float RGB (3,H,W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(PIXEL_MAX)


def mask_tensor(mask: np.ndarray) -> torch.Tensor:
    """bool mask (H,W) -> canonical float mask (1,H,W) in {0, 1}."""
    return torch.from_numpy(np.ascontiguousarray(mask)).float().unsqueeze(0)


def to_sample(image: np.ndarray, occlusion: np.ndarray, target: np.ndarray, layer: int, image_id: str) -> dict:
    """Numpy arrays of one sample -> the canonical sample dict (tensors; batched by the default collate)."""
    return {
        IMAGE: image_tensor(image),
        OCCLUSION: mask_tensor(occlusion),
        TARGET: mask_tensor(target),
        LAYER: torch.tensor(layer, dtype=torch.int64),
        IMAGE_ID: image_id,
    }


class ImageCollection(Sequence):
    """Images of one split, indexable as :class:`LayeredImage` (loaded on access for sources on disk).

    The counts are cheap (read from an index, no mask decoded), so a task can size its dataset at setup.
    :meth:`layer_sample` builds from the whole record by default; a source that can load one layer alone (SAS
    folders) overrides it.
    """

    def image_id(self, index: int) -> str:
        """Id of image ``index``."""
        raise NotImplementedError

    def num_layers(self, index: int) -> int:
        """Non-empty layers K of image ``index`` (0 when its depth order is unknown)."""
        raise NotImplementedError

    def num_objects(self, index: int) -> int:
        """Objects of image ``index`` with per-object masks (0 when the source has none)."""
        raise NotImplementedError

    def has_layers(self, index: int) -> bool:
        """Whether image ``index``'s layers are known (its objects' depth order is; else the layer task skips it)."""
        return True

    def layer_sample(self, index: int, layer: int) -> dict:
        """The sample of layer ``layer`` (``0 .. K``, K the terminal empty layer) of image ``index``."""
        image = self[index]
        return to_sample(image.image, image.occlusion(layer), image.target(layer), layer, image.image_id)

    def num_samples(self, index: int) -> int:
        """Layer samples of image ``index``: its layers plus the terminal one."""
        return self.num_layers(index) + 1


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

    def num_layers(self, index: int) -> int:
        return self.images[index].num_layers

    def num_objects(self, index: int) -> int:
        return self.images[index].num_objects

    def has_layers(self, index: int) -> bool:
        return self.images[index].layers is not None


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


class TaskDataset(Dataset):
    """Every sample a task makes of a collection's images, in one flat index: image by image, in the task's order.

    ``front_repeats`` > 1 lists each image's first sample that many times (for the layer task: layer 0, which
    decides every later layer of sequential inference, so a recipe can spend more of its steps on it).
    ``cache`` keeps every sample once made (compactly: uint8 RGB, bool masks), for sources held in memory whose
    samples cost more to make than to keep (the instance task's crops of generated scenes).
    ``skip_bad`` replaces a sample whose files fail to load (a :class:`DataError` naming the file) by another one,
    counts it (:attr:`skipped`) and logs the first; without it the error stops the run.
    """

    def __init__(
        self, images: ImageCollection, task=None, front_repeats: int = 1, cache: bool = False, skip_bad: bool = False
    ):
        from amodal_lightning.tasks import SequentialLayersTask

        self.images = images
        self.task = task if task is not None else SequentialLayersTask()
        counts = np.array([self.task.num_samples(images, i) for i in range(len(images))], dtype=np.int64)
        image_index = np.repeat(np.arange(len(images)), counts)
        # Position of each flat sample within its image's run of samples.
        starts = np.repeat(np.cumsum(counts) - counts, counts)
        within = np.arange(len(image_index)) - starts
        extra = np.flatnonzero(within == 0).repeat(front_repeats - 1)
        self._image_index = np.concatenate([image_index, image_index[extra]])
        self._within = np.concatenate([within, within[extra]])
        self._cache: dict[tuple[int, int], dict] | None = {} if cache else None
        self.skip_bad = bool(skip_bad)
        self._skipped = torch.zeros(MAX_COUNTED_WORKERS + 1, dtype=torch.int64).share_memory_()
        self._logged_skip = False

    def __len__(self) -> int:
        return len(self._image_index)

    @property
    def skipped(self) -> int:
        """Samples replaced so far because they failed to load, by this process and its loader workers."""
        return int(self._skipped.sum())

    def __getitem__(self, index: int) -> dict:
        for attempt in range(MAX_REPLACEMENTS + 1):
            try:
                return self._sample((index + attempt * REPLACEMENT_STRIDE) % len(self))
            except DataError as exc:
                if not self.skip_bad:
                    raise
                self._count_skip(exc)
                last = exc
        raise DataError(
            f"data.skip_bad_samples: {MAX_REPLACEMENTS + 1} samples in a row failed to load; the last: {last}"
        )

    def _count_skip(self, exc: DataError) -> None:
        worker = get_worker_info()
        self._skipped[0 if worker is None else 1 + worker.id % MAX_COUNTED_WORKERS] += 1
        if not self._logged_skip:
            # Once per process: a root with many bad files must not flood the log (the metric counts them all).
            self._logged_skip = True
            log.warning("data.skip_bad_samples: %s; replaced by another sample (counted in data/skipped_samples)", exc)

    def _sample(self, index: int) -> dict:
        key = int(self._image_index[index]), int(self._within[index])
        if self._cache is None:
            return self.task.sample(self.images, *key)
        if key not in self._cache:
            self._cache[key] = _compact(self.task.sample(self.images, *key))
        return _expand(self._cache[key])

    def image_ids(self) -> set[str]:
        """Ids of the images this dataset draws from."""
        return {self.images.image_id(i) for i in range(len(self.images))}


def _compact(sample: dict) -> dict:
    """A sample with its RGB as uint8 and its masks as bool: a quarter of the memory, restored exactly (every RGB map
    of a sample is made from 8-bit pixels)."""
    out = {}
    for key, value in sample.items():
        if torch.is_tensor(value) and value.is_floating_point():
            value = (value * PIXEL_MAX).round().to(torch.uint8) if key in RGB_KEYS else value.bool()
        out[key] = value
    return out


def _expand(sample: dict) -> dict:
    """The inverse of :func:`_compact`."""
    out = {}
    for key, value in sample.items():
        if torch.is_tensor(value) and value.dtype in (torch.uint8, torch.bool):
            value = value.float().div_(PIXEL_MAX) if key in RGB_KEYS else value.float()
        out[key] = value
    return out


def LayerDataset(images: ImageCollection, front_layer_repeats: int = 1) -> TaskDataset:  # noqa: N802 - a shorthand
    """One sample per (image, layer), each image's terminal empty layer included (as in SAS)."""
    return TaskDataset(images, None, front_layer_repeats)


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
