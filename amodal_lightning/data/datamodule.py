"""``AmodalDataModule``: the images of a source as the samples of a task, in splits, loaders and batches.

The source (:mod:`amodal_lightning.data.sources`) gives the images of each split; the task
(:mod:`amodal_lightning.tasks`) says how many samples an image gives and makes them (the layer task: one per layer
plus the terminal empty-mask sample, as in SAS; the per-object tasks: one crop per object), at the size it loads
images at (``task.load_size``). The batch format, the same for every source, is :mod:`amodal_lightning.batch`;
scaling to a network's input convention is the model's job. This module keeps what is left: the loaders, the
division of the global batch over devices, the training order, noise mixing and orientation augmentation.

``batch_size`` is the global batch: each device loads ``batch_size // (world_size * accumulate_grad_batches)``. The
training order depends only on ``shuffle_seed`` and the epoch, and the training loader's position is kept in
checkpoints, so a run resumed part-way through an epoch draws the batches the interrupted run would have. A source's
noise images (SAS noise folders), when ``noise_rate > 0``, replace that fraction of the training draws (never
validation or test). Whole validation and test images, for sequential evaluation and panels, come from
:meth:`AmodalDataModule.images`.
"""

from __future__ import annotations

import os

import lightning as L
import torch
from torch.utils.data import ConcatDataset, DataLoader

from amodal_lightning.batch import IMAGE, SPATIAL_KEYS
from amodal_lightning.data.datasets import (
    ImageCollection,
    NoiseMixingSampler,
    ResumableLoader,
    SeededDraws,
    ShuffleSampler,
    TaskDataset,
)
from amodal_lightning.data.record import ImageRecord
from amodal_lightning.data.sources.base import SPLITS, Source, build_source
from amodal_lightning.errors import ConfigError, DataError
from amodal_lightning.orientations import IDENTITY, ORIENTATION_SETS, check_orientations, orient
from amodal_lightning.task_config import build_task

# Splits each Lightning stage needs (None: all of them).
STAGE_SPLITS = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}
AUTO = "auto"
# num_workers=auto gives each device's loader at most this many workers: enough to decode SAS PNGs for one GPU,
# while more only multiplies processes and memory on large hosts.
MAX_AUTO_WORKERS = 8
# pin_memory=auto pins for these devices only: pinned host memory speeds copies to a GPU and does nothing on a CPU.
PIN_MEMORY_DEVICES = ("cuda",)
# The data module's own settings that a source may take too (the size generated scenes are made at).
SHARED_SETTINGS = ("image_size",)


def auto_num_workers(in_memory: bool, devices_per_node: int, cpu_count: int | None = None) -> int:
    """Loader workers per device for ``num_workers=auto``: none for a source held in memory (a sample is a few
    array copies, a worker process only adds overhead); for sources on disk the cores this process may use, shared
    among the node's devices and leaving one for the training process, at most :data:`MAX_AUTO_WORKERS`.

    Under SLURM each task (one per device) already has its own cores (``--cpus-per-task``), so they are not shared
    again.
    """
    if in_memory:
        return 0
    cores = cpu_count if cpu_count is not None else len(os.sched_getaffinity(0))
    sharing = 1 if "SLURM_CPUS_PER_TASK" in os.environ else max(1, devices_per_node)
    return max(0, min(MAX_AUTO_WORKERS, (cores - 1) // sharing))


def _auto_or_int(key: str, value) -> int | str:
    if value == AUTO:
        return AUTO
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = -1
    if number < 0 or isinstance(value, bool):
        raise ConfigError(f"{key}={value!r}: expected 0 or more, or auto")
    return number


def _auto_or_bool(key: str, value) -> bool | str:
    if value == AUTO or isinstance(value, bool):
        return value
    raise ConfigError(f"{key}={value!r}: expected true, false or auto")


class AmodalDataModule(L.LightningDataModule):
    """Training, validation and test samples of a source's images, for a task, in one canonical batch format.

    A bad argument is a :class:`ConfigError` naming the argument (``batch_size=...``); the entry points name it by
    its config key (``data.batch_size=...``, :func:`amodal_lightning.run.config.instantiate_at`).

    Args:
        source: the source (:class:`~amodal_lightning.data.sources.base.Source`), or what builds it: its class or
            the partial Hydra makes of the data config's ``source`` node; then ``source_settings`` are its settings.
        image_size: side of the model's input; the task loads images at ``task.load_size(image_size)``.
        batch_size: the global batch size, split over devices and gradient-accumulation steps.
        num_workers: loader worker processes per device, or ``"auto"`` (see :func:`auto_num_workers`).
        pin_memory: pin loader memory: true, false or ``"auto"`` (on when training on GPUs).
        shuffle_seed: seed of the training order (each epoch's permutation) and of whatever a training sample
            draws at random in a loader worker; ``train`` gives it the run's ``seed``.
        front_layer_repeats: times each training image's first sample (the layer task's layer 0) is drawn per
            epoch, for tasks that repeat it (``task.repeats_front_layer``; SAS: 1).
        augment_orientations: each training sample is seen in an orientation drawn uniformly from this set
            (:mod:`amodal_lightning.orientations`): ``"identity"`` (as it is, SAS), ``"mirror"`` or ``"dihedral"``.
        noise_rate: expected fraction of training draws taken from the source's noise images.
        noise_seed: seed of the noise draws (and of the training order, when noise is mixed in).
        task: the task's config (``name`` and its options, see :mod:`amodal_lightning.tasks`); None is the layer
            task.
        source_settings: the source's settings, when ``source`` is what builds it (``root``, ``annotations``, ...);
            a key it does not take is refused.
    """

    def __init__(
        self,
        source,
        image_size: int = 32,
        batch_size: int = 32,
        num_workers: int | str = 0,
        pin_memory: bool | str = False,
        shuffle_seed: int = 0,
        front_layer_repeats: int = 1,
        augment_orientations: str = IDENTITY,
        noise_rate: float = 0.0,
        noise_seed: int = 0,
        task: dict | None = None,
        **source_settings,
    ):
        super().__init__()
        # The task is the module's hyperparameter (saved with the checkpoint), logged from there; the source is an
        # object (its settings are logged as the other arguments).
        self.save_hyperparameters(ignore=["task", "source"])
        for key, value in (("image_size", image_size), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{key}={value!r}: expected a positive integer")
        if isinstance(front_layer_repeats, bool) or not isinstance(front_layer_repeats, int) or front_layer_repeats < 1:
            raise ConfigError(f"front_layer_repeats={front_layer_repeats!r}: expected a positive integer")
        if isinstance(shuffle_seed, bool) or not isinstance(shuffle_seed, int) or shuffle_seed < 0:
            raise ConfigError(f"shuffle_seed={shuffle_seed!r}: expected an integer >= 0")
        if not 0.0 <= noise_rate <= 1.0:
            raise ConfigError(f"noise_rate={noise_rate}: expected a fraction in [0, 1]")
        check_orientations(augment_orientations, "augment_orientations")
        self.image_size = image_size
        self.source: Source = build_source(
            source, {**source_settings, "image_size": image_size}, unknown_allowed=SHARED_SETTINGS
        )
        self.task = build_task(task, image_size=int(image_size))
        self.batch_size = batch_size
        self.shuffle_seed = shuffle_seed
        self.front_layer_repeats = front_layer_repeats
        self.augment_orientations = augment_orientations
        self.noise_rate = float(noise_rate)
        self.noise_seed = int(noise_seed)
        self.num_workers_setting = _auto_or_int("num_workers", num_workers)
        self.pin_memory_setting = _auto_or_bool("pin_memory", pin_memory)
        # Resolved at setup, when the devices are known; without a trainer, for a single process on this host.
        self.num_workers, self.pin_memory = self._loader_options(devices_per_node=1, device_type=None)
        # Without a trainer every loader batch is the global batch; setup() divides it over devices.
        self.per_device_batch_size = self.batch_size
        self._collections: dict[str, ImageCollection] = {}
        self._task_datasets: dict[str, TaskDataset] = {}
        self._noise: TaskDataset | None = None

    @property
    def load_size(self) -> int | None:
        """Size the task loads images at (None: their own resolution)."""
        return self.task.load_size(self.image_size)

    # ----------------------------------------------------------------------------------------------- setup

    def setup(self, stage: str | None = None) -> None:
        """Divide the global batch over devices and accumulation steps; build the splits the stage needs."""
        if stage in (None, "fit") and self.task.reads_whole and not self.source.gives_whole:
            # Evaluating such a model's masks on any source is fine; training it needs the appearances.
            raise ConfigError(
                f"data: {self.source.describe()} gives no whole appearance of its objects, which task={self.task.name} "
                "trains on; use data=synthetic, or data=objects with a {k}_whole.png beside each {k}_amodal.png"
            )
        self.per_device_batch_size = self._per_device_batch_size()
        strategy = getattr(self.trainer, "strategy", None)
        if strategy is not None:
            self.num_workers, self.pin_memory = self._loader_options(
                devices_per_node=max(1, len(getattr(strategy, "parallel_devices", None) or [None])),
                device_type=strategy.root_device.type,
            )
        for split in STAGE_SPLITS.get(stage, SPLITS):
            self.images(split)
        if stage in (None, "fit"):
            self._noise_dataset()

    def _loader_options(self, devices_per_node: int, device_type: str | None) -> tuple[int, bool]:
        """``(num_workers, pin_memory)`` with ``auto`` resolved for this node's devices (``device_type`` None: a GPU
        if this host has one)."""
        workers = self.num_workers_setting
        if workers == AUTO:
            workers = auto_num_workers(self.source.in_memory, devices_per_node)
        pin = self.pin_memory_setting
        if pin == AUTO:
            if device_type is None:
                device_type = "cuda" if torch.cuda.is_available() else "cpu"
            pin = device_type in PIN_MEMORY_DEVICES
        return int(workers), bool(pin)

    def _per_device_batch_size(self) -> int:
        trainer = self.trainer
        if trainer is None:
            return self.batch_size
        world_size = int(getattr(trainer, "world_size", 1))
        accumulate = int(getattr(trainer, "accumulate_grad_batches", 1))
        share = world_size * accumulate
        if self.batch_size % share:
            raise ConfigError(
                f"data.batch_size={self.batch_size} (global) is not divisible by {world_size} device(s) x "
                f"{accumulate} accumulation step(s) = {share}"
            )
        return self.batch_size // share

    def images(self, split: str) -> ImageCollection:
        """Whole images of ``split`` at the task's load size (a sequence of :class:`ImageRecord`), built once."""
        if split not in SPLITS:
            raise ConfigError(f"unknown split {split!r}: expected one of {list(SPLITS)}")
        if split not in self._collections:
            self._collections[split] = self.source.images(split, self.load_size, with_whole=self.task.reads_whole)
        return self._collections[split]

    def panel_scenes(self, num_images: int) -> list[ImageRecord]:
        """The first ``num_images`` validation images: a fixed set to show predictions on."""
        val = self.images("val")
        return [val[i] for i in range(min(num_images, len(val)))]

    def _task_dataset(self, split: str) -> TaskDataset:
        repeats = self.front_layer_repeats if self.task.repeats_front_layer and split == "train" else 1
        dataset = TaskDataset(
            self.images(split),
            self.task,
            repeats,
            # Samples made of images held in memory are kept where the task says they cost more to make than to keep.
            cache=self.task.caches_samples and self.source.in_memory,
            skip_bad=self.source.skip_bad_samples,
        )
        self._task_datasets[split] = dataset
        return dataset

    def skipped_samples(self) -> int:
        """Samples of the training and validation loaders replaced so far because they failed to load
        (``skip_bad_samples``)."""
        return sum(self._task_datasets[split].skipped for split in ("train", "val") if split in self._task_datasets)

    def _noise_dataset(self) -> TaskDataset | None:
        """The noise samples, indexed once; None when noise is off."""
        if self.noise_rate <= 0:
            return None
        if self._noise is None:
            self._noise = TaskDataset(self.source.noise_images(self.load_size), self.task)
        return self._noise

    # ------------------------------------------------------------------------------------------ loaders

    def _loader(self, dataset, sampler=None, loader: type[DataLoader] = DataLoader) -> DataLoader:
        return loader(
            dataset,
            batch_size=self.per_device_batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            # A generator of its own: starting an iterator (which draws the workers' base seed) leaves the run's
            # global generator alone, so that its stream does not depend on how many workers a loader has, nor on
            # whether its worker processes were started before (a resumed run starts them anew).
            generator=torch.Generator().manual_seed(self.shuffle_seed),
        )

    def _processes(self) -> tuple[int, int]:
        """``(processes, this process's rank)`` the training draws are split over (one without a trainer)."""
        trainer = self.trainer
        if trainer is None:
            return 1, 0
        return int(getattr(trainer, "world_size", 1)), int(getattr(trainer, "global_rank", 0))

    def train_dataloader(self) -> ResumableLoader:
        """Shuffled training samples, a ``noise_rate`` fraction of them drawn from the noise images; each process
        of a DDP run takes its share of every epoch's draws."""
        clean = self._task_dataset("train")
        if len(clean) == 0:
            raise DataError(self._no_training_sample())
        noise = self._noise_dataset()
        processes, rank = self._processes()
        if noise is None:
            dataset, sampler = clean, ShuffleSampler(len(clean), self.shuffle_seed, processes, rank)
        else:
            dataset = ConcatDataset([clean, noise])
            sampler = NoiseMixingSampler(len(clean), len(noise), self.noise_rate, self.noise_seed, processes, rank)
        return self._loader(SeededDraws(dataset, self.shuffle_seed), sampler, ResumableLoader)

    def _no_training_sample(self) -> str:
        """Why the training split gives no sample, in one line: how many images it has, how many of them have
        layers and objects (a task needs one or the other)."""
        images = self.images("train")
        with_layers = sum(1 for i in range(len(images)) if images.has_layers(i))
        with_objects = sum(1 for i in range(len(images)) if images.num_objects(i))
        return (
            f"{self.source.describe()}: its training split's {len(images)} image(s) give task={self.task.name} no "
            f"sample ({with_layers} with layers, known from a depth order; {with_objects} with objects)"
        )

    def val_dataloader(self) -> DataLoader:
        """Validation samples in a fixed order."""
        return self._loader(self._task_dataset("val"))

    def test_dataloader(self) -> DataLoader:
        """Test samples in a fixed order."""
        return self._loader(self._task_dataset("test"))

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        """Turn each training sample (all its maps together) to a random orientation, on the device the batch is
        on; validation and test batches stay as they are."""
        trainer = self.trainer
        if self.augment_orientations == IDENTITY or trainer is None or not trainer.training:
            return batch
        size = len(ORIENTATION_SETS[self.augment_orientations])
        chosen = torch.randint(size, (batch[IMAGE].shape[0],))
        for key in SPATIAL_KEYS:
            if key in batch:
                batch[key] = orient(batch[key], self.augment_orientations, chosen, "data.augment_orientations")
        return batch
