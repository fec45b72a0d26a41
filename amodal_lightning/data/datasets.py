"""Torch-side samples: image collections, the Dataset of a task's samples, and the training samplers and loader.

Collections hold whole images (:class:`~amodal_lightning.data.record.ImageRecord`), either in memory (generated
scenes) or lazily on disk (SAS folders, per-object folders, annotation files); each source
(:mod:`amodal_lightning.data.sources`) gives its images as one; a task (:mod:`amodal_lightning.tasks`) says how many
samples each image gives and makes them, and :class:`TaskDataset` flattens that into one index. Samples are dicts
in the batch format of :mod:`amodal_lightning.batch`. Training draws them in an order that depends only on a seed
and the epoch (:class:`EpochSampler`), through a loader whose position a checkpoint keeps (:class:`ResumableLoader`),
so that a resumed run draws what the interrupted one would have.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence

import numpy as np
import torch
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from torch.utils.data import DataLoader, Dataset, DistributedSampler, get_worker_info

from amodal_lightning.batch import (
    IMAGE,
    IMAGE_ID,
    LAYER,
    OCCLUSION,
    PIXEL_MAX,
    RGB_KEYS,
    TARGET,
    image_tensor,
    mask_tensor,
)
from amodal_lightning.data.record import ImageRecord
from amodal_lightning.errors import DataError

log = logging.getLogger(__name__)

# With skip_bad, a sample that fails to load is replaced by the one this many positions on (a prime: the replacement
# is unrelated to the failed sample, and the same in every run), trying at most MAX_REPLACEMENTS in a row.
REPLACEMENT_STRIDE = 7919
MAX_REPLACEMENTS = 8
# Skipped-sample counters: one slot per loader worker and one for the main process, in shared memory, so the main
# process can count what its workers skipped without a lock.
MAX_COUNTED_WORKERS = 256
# 32-bit words of a draw's seed: two for torch (64 bits), one for numpy's global generator, one for Python's.
DRAW_SEED_WORDS = 4
# Keys of the training loader's state in a checkpoint (ResumableLoader.state_dict).
LOADER_EPOCH = "epoch"
LOADER_POSITION = "position"
LOADER_BATCH_SIZE = "batch_size"
LOADER_PROCESSES = "processes"


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
    """Images of one split, indexable as :class:`ImageRecord` (loaded on access for sources on disk).

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
    """Images held in memory: records already made (generated scenes, or any list of records)."""

    def __init__(self, images: Sequence[ImageRecord]):
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


class TaskDataset(Dataset):
    """Every sample a task makes of a collection's images, in one flat index: image by image, in the task's order.

    ``task`` is any task (:mod:`amodal_lightning.tasks`): its ``num_samples(images, index)`` and
    ``sample(images, index, within)`` are all this reads.

    ``front_repeats`` > 1 lists each image's first sample that many times (for the layer task: layer 0, which
    decides every later layer of sequential inference, so a recipe can spend more of its steps on it).
    ``cache`` keeps every sample once made (compactly: uint8 RGB, bool masks), for sources held in memory whose
    samples cost more to make than to keep (the instance task's crops of generated scenes).
    ``skip_bad`` replaces a sample whose files fail to load (a :class:`DataError` naming the file) by another one,
    counts it (:attr:`skipped`) and logs the first (once, whichever process meets it); an image whose samples cannot
    even be counted (an annotation whose mask does not decode) gives none, and is counted once. Without it the
    error stops the run.
    """

    def __init__(
        self, images: ImageCollection, task, front_repeats: int = 1, cache: bool = False, skip_bad: bool = False
    ):
        self.images = images
        self.task = task
        self.skip_bad = bool(skip_bad)
        self._skipped = torch.zeros(MAX_COUNTED_WORKERS + 1, dtype=torch.int64).share_memory_()
        # Whether the first skip has been logged, in shared memory too: once per run, not once per loader worker.
        self._logged_skip = torch.zeros(1, dtype=torch.bool).share_memory_()
        counts = np.array([self._num_samples(i) for i in range(len(images))], dtype=np.int64)
        image_index = np.repeat(np.arange(len(images)), counts)
        # Position of each flat sample within its image's run of samples.
        starts = np.repeat(np.cumsum(counts) - counts, counts)
        within = np.arange(len(image_index)) - starts
        extra = np.flatnonzero(within == 0).repeat(front_repeats - 1)
        self._image_index = np.concatenate([image_index, image_index[extra]])
        self._within = np.concatenate([within, within[extra]])
        self._cache: dict[tuple[int, int], dict] | None = {} if cache else None

    def _num_samples(self, index: int) -> int:
        """The task's samples of image ``index``; none, counted as skipped, when they cannot be counted and
        ``skip_bad`` is set."""
        try:
            return self.task.num_samples(self.images, index)
        except DataError as exc:
            if not self.skip_bad:
                raise
            self._count_skip(exc)
            return 0

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
        if not bool(self._logged_skip[0]):
            # Once per run (the workers share the flag): a root with many bad files must not flood the log; the
            # metric counts them all.
            self._logged_skip[0] = True
            log.warning("data.skip_bad_samples: %s; replaced by another sample (counted in data/skipped_samples)", exc)

    def _sample(self, index: int) -> dict:
        key = int(self._image_index[index]), int(self._within[index])
        if self._cache is None:
            return self.task.sample(self.images, *key)
        if key not in self._cache:
            self._cache[key] = _compact(self.task.sample(self.images, *key))
        return _expand(self._cache[key])


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


class EpochSampler(DistributedSampler):
    """Training draws whose order depends only on ``seed`` and the epoch, split over processes, resumable part-way.

    Each epoch is a fresh order of the whole dataset (:meth:`epoch_order`, a subclass's), padded as torch's
    ``DistributedSampler`` pads it (by repeating its start) to a multiple of ``num_replicas``; process ``rank`` takes
    every ``num_replicas``-th draw from position ``rank``. Being a ``DistributedSampler``, Lightning uses it as it is
    under DDP instead of wrapping it. Each draw is yielded as ``(index, draw)``: the dataset index and the draw's
    number in the whole run (``epoch x padded epoch size + position``), which seeds whatever making the sample draws
    at random (:class:`SeededDraws`). :meth:`resume_at` makes the next iteration start part-way into an epoch
    (:class:`ResumableLoader` calls it when a run resumes from a checkpoint).
    """

    def __init__(self, size: int, seed: int = 0, num_replicas: int = 1, rank: int = 0):
        # The base class needs only the dataset's length, and no process group when given the replicas and rank.
        super().__init__(range(size), num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        self.start = 0

    def epoch_order(self, epoch: int) -> np.ndarray:
        """Dataset indices of ``epoch``'s draws, in order, before padding and the split over processes."""
        raise NotImplementedError

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose draws the next iteration yields (from its start, unless resumed in it)."""
        if epoch != self.epoch:
            # A resumed position belongs to the epoch it was saved in.
            self.start = 0
        self.epoch = epoch

    def resume_at(self, epoch: int, start: int) -> None:
        """Make the next iteration yield ``epoch``'s draws of this process from its ``start``-th one."""
        self.epoch, self.start = int(epoch), int(start)

    def __iter__(self):
        order = np.resize(self.epoch_order(self.epoch), self.total_size)
        positions = np.arange(self.rank, self.total_size, self.num_replicas)[self.start :]
        draws = self.epoch * self.total_size + positions
        return zip(order[positions].tolist(), draws.tolist())


class ShuffleSampler(EpochSampler):
    """Every sample once per epoch, in a permutation seeded by ``(seed, epoch)``."""

    def epoch_order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.dataset))


class NoiseMixingSampler(EpochSampler):
    """Indices into ``ConcatDataset([clean, noise])``: each draw is a noise sample with probability ``noise_rate``.

    An epoch has ``num_clean`` draws: a fresh permutation of the clean samples in which each position is replaced,
    with probability ``noise_rate``, by a uniformly drawn noise sample. The draws depend only on ``seed`` and the
    epoch given to :meth:`set_epoch` (which Lightning calls).
    """

    def __init__(
        self, num_clean: int, num_noise: int, noise_rate: float, seed: int = 0, num_replicas: int = 1, rank: int = 0
    ):
        super().__init__(num_clean, seed, num_replicas, rank)
        self.num_clean = num_clean
        self.num_noise = num_noise
        self.noise_rate = noise_rate

    def epoch_order(self, epoch: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, epoch])
        clean = rng.permutation(self.num_clean)
        from_noise = rng.random(self.num_clean) < self.noise_rate
        noise = self.num_clean + rng.integers(self.num_noise, size=self.num_clean)
        return np.where(from_noise, noise, clean)


def seed_draw(seed: int, draw: int) -> None:
    """Seed torch's, numpy's and Python's global generators from ``(seed, draw)`` (hashed, so that neighbouring draws
    get unrelated streams)."""
    words = [int(word) for word in np.random.SeedSequence([seed, draw]).generate_state(DRAW_SEED_WORDS)]
    torch.manual_seed(words[0] << 32 | words[1])
    np.random.seed(words[2])
    random.seed(words[3])


class SeededDraws(Dataset):
    """The training samples as an :class:`EpochSampler` draws them: item ``(index, draw)`` is ``dataset[index]``.

    In a loader worker, the global generators are first seeded from ``(seed, draw)`` (:func:`seed_draw`), so whatever
    making a sample draws at random is the same for that draw whichever worker makes it, and a resumed run makes it
    again as the interrupted run would have (a persistent worker's own generator state cannot be restored, and which
    worker makes a batch starts over when a run resumes). In the main process (no workers) the sample draws from
    the run's generators, which the checkpoint restores (:class:`~amodal_lightning.callbacks.random_state.RandomState`).
    """

    def __init__(self, dataset: Dataset, seed: int = 0):
        self.dataset = dataset
        self.seed = int(seed)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: tuple[int, int]) -> dict:
        index, draw = item
        if get_worker_info() is not None:
            seed_draw(self.seed, draw)
        return self.dataset[index]


class ResumableLoader(DataLoader):
    """The training loader: its position in the epoch is kept in checkpoints, so a resumed run goes on with the
    batches the interrupted run would have drawn next.

    Lightning saves :meth:`state_dict` in the checkpoint and gives it back to :meth:`load_state_dict` on resume,
    before the first batch. The position counts the batches handed to training (not the indices sent ahead to
    workers). It is exact when the resumed run has the same per-process batch size and number of processes; with
    others the epoch goes on from the same sample, in batches grouped differently (warned, once). A loader over
    another sampler than an :class:`EpochSampler` is a plain DataLoader.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # (epoch, start) of the iteration under way and the batches it has handed out; None before the first one.
        self._iteration: tuple[int, int] | None = None
        self._delivered = 0

    def __iter__(self):
        sampler = self.sampler
        if not isinstance(sampler, EpochSampler):
            yield from super().__iter__()
            return
        self._iteration, self._delivered = (sampler.epoch, sampler.start), 0
        for batch in super().__iter__():
            self._delivered += 1
            yield batch

    def state_dict(self) -> dict:
        """Where training is in the epoch: the epoch, the draws of this process already consumed, and the layout
        (per-process batch size, processes) they were consumed in."""
        sampler = self.sampler
        if not isinstance(sampler, EpochSampler):
            return {}
        epoch, start = self._iteration or (sampler.epoch, sampler.start)
        return {
            LOADER_EPOCH: epoch,
            LOADER_POSITION: min(start + self._delivered * self.batch_size, len(sampler)),
            LOADER_BATCH_SIZE: self.batch_size,
            LOADER_PROCESSES: sampler.num_replicas,
        }

    def load_state_dict(self, state: dict) -> None:
        """Go on from the position :meth:`state_dict` saved (the next epoch when that one was finished)."""
        sampler = self.sampler
        if not isinstance(sampler, EpochSampler) or not state:
            return
        epoch, position = int(state[LOADER_EPOCH]), int(state[LOADER_POSITION])
        saved = (int(state[LOADER_BATCH_SIZE]), int(state[LOADER_PROCESSES]))
        if saved != (self.batch_size, sampler.num_replicas):
            # The draws consumed so far are the first `position x processes` of the epoch's order, whatever the rank.
            position = position * saved[1] // sampler.num_replicas
            _warn_layout_changed(saved, (self.batch_size, sampler.num_replicas), epoch, position)
        if position >= len(sampler):
            epoch, position = epoch + 1, 0
        sampler.resume_at(epoch, position)


@rank_zero_only
def _warn_layout_changed(saved: tuple[int, int], now: tuple[int, int], epoch: int, position: int) -> None:
    log.warning(
        "resume is not exact: the checkpoint was trained with %d sample(s) per batch on %d process(es), this run has "
        "%d on %d; epoch %d goes on from this process's draw %d, in batches grouped differently (keep data.batch_size, "
        "trainer.devices and trainer.accumulate_grad_batches to resume exactly)",
        *saved,
        *now,
        epoch,
        position,
    )
