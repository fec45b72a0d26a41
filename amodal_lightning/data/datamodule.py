"""``LayeredAmodalDataModule``: images from a source, as the samples of a task.

The batch format, the same for every source, is documented in :mod:`amodal_lightning.batch`; which keys a sample
has and how many samples an image gives is the task's choice (:mod:`amodal_lightning.tasks`): for the layer task
(the default) one sample per layer plus the terminal empty-mask sample, as in SAS; for the instance task one crop
per object, cut from the image at its own resolution. Scaling to a network's input convention (SAS's raw 0..255
RGB, or [-1, 1]) is the model's job, not the data's. Splits are by image
id, so no image has layers in two splits. Generated scenes (``source="synthetic"``) come from fixed, disjoint
index ranges per split, made in memory at setup: nothing to download, and the validation and test scenes stay the
same whatever the training set size. SAS roots (``source="sas"``) are split by a seeded shuffle of their ids.
SAS noise folders, when ``noise_rate > 0``, replace that fraction of the training draws (never validation or test).
The training order depends only on ``shuffle_seed`` and the epoch, and the training loader's position is kept in
checkpoints, so a run resumed part-way through an epoch draws the batches the interrupted run would have.

``batch_size`` is the global batch: each device loads ``batch_size // (world_size * accumulate_grad_batches)``.
Whole validation and test images, for sequential evaluation, come from :meth:`LayeredAmodalDataModule.scenes`.
"""

from __future__ import annotations

import inspect
import logging
import os
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from torch.utils.data import ConcatDataset, DataLoader

from amodal_lightning.batch import IMAGE, IMAGE_ID, LAYER, OCCLUSION, SPATIAL_KEYS, TARGET
from amodal_lightning.data import coco_formats, object_folders, sas_folders
from amodal_lightning.data.coco_amodal import CocoAmodalImages, scan_coco_annotations
from amodal_lightning.data.datasets import (
    BATCH_KEYS,
    ImageCollection,
    InMemoryImages,
    LayeredImage,
    NoiseMixingSampler,
    ResumableLoader,
    SasImages,
    SeededDraws,
    ShuffleSampler,
    TaskDataset,
)
from amodal_lightning.data.object_folders import ObjectFolderImages
from amodal_lightning.data.scenes import SceneGenerator, scene_id
from amodal_lightning.errors import ConfigError, DataError
from amodal_lightning.orientations import IDENTITY, ORIENTATION_SETS, check_orientations, orient
from amodal_lightning.task_config import build_task
from amodal_lightning.whole_appearance import WHOLE_SOURCES

__all__ = [
    "BATCH_KEYS",
    "IMAGE",
    "IMAGE_ID",
    "LAYER",
    "OCCLUSION",
    "TARGET",
    "SOURCES",
    "SPLITS",
    "LayeredAmodalDataModule",
    "LayeredImage",
]

log = logging.getLogger(__name__)

# Sources on disk: the scanner that indexes (and checks) a root, and the collection that loads its images.
FOLDER_SOURCES = {
    "sas": (sas_folders.scan_sas_root, SasImages),
    "objects": (object_folders.scan_object_root, ObjectFolderImages),
}
# Sources that are an annotation file (COCO-style JSON) beside an images folder, by format.
ANNOTATION_SOURCES = coco_formats.FORMATS
SOURCES = ("synthetic", *FOLDER_SOURCES, *ANNOTATION_SOURCES)
# Sources that can give each object's whole appearance (LayeredImage.whole), which the whole-object task trains on.
WHOLE_APPEARANCE_SOURCES = ("synthetic", "objects")
SPLITS = ("train", "val", "test")
# Synthetic splits draw scene indices from disjoint ranges this far apart.
SYNTHETIC_SPLIT_STRIDE = 1_000_000_000
SYNTHETIC_SPLIT_SIZES = {"train": "num_train", "val": "num_val", "test": "num_test"}
SYNTHETIC_DEFAULTS = {"num_train": 8000, "num_val": 256, "num_test": 256}
# Splits each Lightning stage needs (None: all of them).
STAGE_SPLITS = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}
AUTO = "auto"
# num_workers=auto gives each device's loader at most this many workers: enough to decode SAS PNGs for one GPU,
# while more only multiplies processes and memory on large hosts.
MAX_AUTO_WORKERS = 8
# pin_memory=auto pins for these devices only: pinned host memory speeds copies to a GPU and does nothing on a CPU.
PIN_MEMORY_DEVICES = ("cuda",)


def auto_num_workers(source: str, devices_per_node: int, cpu_count: int | None = None) -> int:
    """Loader workers per device for ``num_workers=auto``: none for in-memory generated scenes (a sample is a few
    array copies, a worker process only adds overhead); for SAS folders the cores this process may use, shared
    among the node's devices and leaving one for the training process, at most :data:`MAX_AUTO_WORKERS`.

    Under SLURM each task (one per device) already has its own cores (``--cpus-per-task``), so they are not shared
    again.
    """
    if source == "synthetic":
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


def _generator_keys() -> set[str]:
    """Keys of ``data.synthetic`` passed on to :class:`SceneGenerator` (its size comes from ``data.image_size``)."""
    return set(inspect.signature(SceneGenerator).parameters) - {"image_size"}


class LayeredAmodalDataModule(L.LightningDataModule):
    """Training, validation and test samples of layered amodal segmentation in one canonical batch format.

    A bad argument is a :class:`ConfigError` naming the argument (``val_fraction=...``); the entry points name it
    by its config key (``data.val_fraction=...``, :func:`amodal_lightning.run.config.instantiate_at`).

    Args:
        source: ``"synthetic"`` (generated scenes) or ``"sas"`` (a SAS folder root).
        image_size: side of the square images the loaders deliver (SAS images are resized to it).
        batch_size: the global batch size, split over devices and gradient-accumulation steps.
        num_workers: loader worker processes per device, or ``"auto"`` (see :func:`auto_num_workers`).
        root: the SAS root (``source="sas"``).
        noise_root: a root of SAS-layout noise folders; only read when ``noise_rate > 0``.
        noise_rate: expected fraction of training draws taken from the noise folders.
        noise_seed: seed of the noise draws (and of the training order, when noise is mixed in).
        shuffle_seed: seed of the training order (each epoch's permutation) and of whatever a training sample
            draws at random in a loader worker; ``train`` gives it the run's ``seed``.
        front_layer_repeats: times each training image's layer-0 sample is drawn per epoch (SAS: 1).
        val_fraction, test_fraction: fractions of a root's (or an annotation file's) image ids held out; required
            for those sources, where the data configs give them, and ignored for synthetic data.
        split_seed: seed of the SAS id shuffle.
        synthetic: ``num_train``, ``num_val``, ``num_test`` scenes, plus any :class:`SceneGenerator` argument
            (``seed``, ``min_objects``, ``max_objects``, ``max_layers``, ``min_visible_fraction``, ...).
        pin_memory: pin loader memory: true, false or ``"auto"`` (on when training on GPUs).
        validate_files: decode and check every SAS file at setup instead of when it is first loaded.
        skip_bad_samples: leave out the images of a SAS root that have malformed folders (and log how many)
            instead of refusing the root; a sample that still fails to load in training or validation is replaced
            by another one and counted (the ``data/skipped_samples`` metric) instead of stopping the run.
        augment_orientations: each training sample is seen in an orientation drawn uniformly from this set
            (:mod:`amodal_lightning.orientations`): ``"identity"`` (as it is, SAS), ``"mirror"`` or ``"dihedral"``.
        annotations, images: the annotation file and the folder its images are in (annotation-file sources:
            ``cocoa``, ``cocoa_cls``, ``d2sa``, ``kins``, ``kins2020``, ``amodal_coco``).
        include_stuff: keep COCOA's stuff regions (annotation-file sources).
        min_visible_pixels: leave out objects whose visible part has fewer pixels (annotation-file sources).
        cache_size: decoded images each loader keeps (annotation-file sources; 0: none).
        task: the task's config (``_target_`` and its options, see :mod:`amodal_lightning.task_config`): which
            samples an image gives; None is the layer task. ``front_layer_repeats`` applies where the task's first
            sample of an image is its front layer (the layer task).
    """

    def __init__(
        self,
        source: str = "synthetic",
        image_size: int = 32,
        batch_size: int = 32,
        num_workers: int | str = 0,
        root: str | Path | None = None,
        noise_root: str | Path | None = None,
        noise_rate: float = 0.0,
        noise_seed: int = 0,
        shuffle_seed: int = 0,
        front_layer_repeats: int = 1,
        val_fraction: float | None = None,
        test_fraction: float | None = None,
        split_seed: int = 0,
        synthetic: dict | None = None,
        pin_memory: bool | str = False,
        validate_files: bool = False,
        skip_bad_samples: bool = False,
        augment_orientations: str = IDENTITY,
        annotations: str | Path | None = None,
        images: str | Path | None = None,
        include_stuff: bool = False,
        min_visible_pixels: int = 1,
        cache_size: int = 0,
        task: dict | None = None,
    ):
        super().__init__()
        # The task is the module's hyperparameter (saved with the checkpoint); logged once, from there.
        self.save_hyperparameters(ignore=["task"])
        if source not in SOURCES:
            raise ConfigError(f"source: unknown source {source!r}; expected one of {list(SOURCES)}")
        if source in FOLDER_SOURCES and not root:
            raise ConfigError(f"root: a root folder is required when source={source}")
        for key, value in (("annotations", annotations), ("images", images)):
            if source in ANNOTATION_SOURCES and not value:
                raise ConfigError(f"{key}: required when source={source} (an annotation file and its images)")
        self.annotations = Path(annotations) if annotations else None
        self.images = Path(images) if images else None
        self.include_stuff = bool(include_stuff)
        self.min_visible_pixels = int(min_visible_pixels)
        self.cache_size = int(cache_size)
        for key, value in (("image_size", image_size), ("batch_size", batch_size)):
            if int(value) < 1:
                raise ConfigError(f"{key}={value}: expected a positive integer")
        if not 0.0 <= noise_rate <= 1.0:
            raise ConfigError(f"noise_rate={noise_rate}: expected a fraction in [0, 1]")
        if isinstance(front_layer_repeats, bool) or not isinstance(front_layer_repeats, int) or front_layer_repeats < 1:
            raise ConfigError(f"front_layer_repeats={front_layer_repeats!r}: expected a positive integer")
        if isinstance(shuffle_seed, bool) or not isinstance(shuffle_seed, int) or shuffle_seed < 0:
            raise ConfigError(f"shuffle_seed={shuffle_seed!r}: expected an integer >= 0")
        if noise_rate > 0 and not noise_root:
            raise ConfigError(f"noise_root: required when noise_rate={noise_rate} > 0")
        for key, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if value is None and source != "synthetic":
                raise ConfigError(f"{key}: required when source={source} (the fraction of its images held out)")
        # Generated scenes have fixed split sizes (data.synthetic); their fractions hold nothing out.
        val_fraction, test_fraction = float(val_fraction or 0.0), float(test_fraction or 0.0)
        if not (0.0 <= val_fraction <= 1.0 and 0.0 <= test_fraction <= 1.0 and val_fraction + test_fraction <= 1.0):
            raise ConfigError(
                f"val_fraction={val_fraction}, test_fraction={test_fraction}: expected fractions in "
                "[0, 1] summing to at most 1"
            )
        check_orientations(augment_orientations, "augment_orientations")
        self.task = build_task(task, image_size=int(image_size))
        self.source = source
        self.augment_orientations = augment_orientations
        self.image_size = int(image_size)
        self.batch_size = int(batch_size)
        self.num_workers_setting = _auto_or_int("num_workers", num_workers)
        self.pin_memory_setting = _auto_or_bool("pin_memory", pin_memory)
        # Resolved at setup, when the devices are known; without a trainer, for a single process on this host.
        self.num_workers, self.pin_memory = self._loader_options(devices_per_node=1, device_type=None)
        self.root = Path(root) if root else None
        self.noise_root = Path(noise_root) if noise_root else None
        self.noise_rate = float(noise_rate)
        self.noise_seed = int(noise_seed)
        self.shuffle_seed = shuffle_seed
        self.front_layer_repeats = front_layer_repeats
        self.val_fraction = float(val_fraction)
        self.test_fraction = float(test_fraction)
        self.split_seed = int(split_seed)
        self.validate_files = bool(validate_files)
        self.skip_bad_samples = bool(skip_bad_samples)
        self.split_sizes, self._generator = self._synthetic_config(dict(synthetic or {}))
        # Without a trainer every loader batch is the global batch; setup() divides it over devices.
        self.per_device_batch_size = self.batch_size
        self._collections: dict[str, ImageCollection] = {}
        self._task_datasets: dict[str, TaskDataset] = {}
        self._splits: dict[str, list] | None = None
        self._noise: TaskDataset | None = None

    def _synthetic_config(self, synthetic: dict) -> tuple[dict[str, int], SceneGenerator | None]:
        """Split sizes and the scene generator from ``data.synthetic``; unknown keys are errors."""
        known = set(SYNTHETIC_DEFAULTS) | _generator_keys()
        for key in synthetic:
            if key not in known:
                raise ConfigError(f"synthetic.{key}: unknown key; expected one of {sorted(known)}")
        sizes = {key: int(synthetic.get(key, default)) for key, default in SYNTHETIC_DEFAULTS.items()}
        for key, value in sizes.items():
            if not 0 <= value < SYNTHETIC_SPLIT_STRIDE:
                raise ConfigError(f"synthetic.{key}={value}: expected 0 <= value < {SYNTHETIC_SPLIT_STRIDE}")
        if self.source != "synthetic":
            return sizes, None
        kwargs = {key: value for key, value in synthetic.items() if key not in SYNTHETIC_DEFAULTS}
        try:
            return sizes, SceneGenerator(image_size=self.image_size, **kwargs)
        except ConfigError as err:
            # The scene size is the data's image_size, not a key of `synthetic`.
            prefix = "" if str(err).startswith("image_size=") else "synthetic: "
            raise ConfigError(f"{prefix}{err}") from None

    # ----------------------------------------------------------------------------------------------- setup

    def setup(self, stage: str | None = None) -> None:
        """Divide the global batch over devices and accumulation steps; build the splits the stage needs."""
        if stage in (None, "fit") and self.task.reads_whole and self.source not in WHOLE_APPEARANCE_SOURCES:
            # Evaluating such a model's masks on any source is fine; training it needs the appearances.
            raise ConfigError(
                f"data.source={self.source}: gives no whole appearance of its objects, which task={self.task.name} "
                f"trains on; use {WHOLE_SOURCES}"
            )
        self.per_device_batch_size = self._per_device_batch_size()
        strategy = getattr(self.trainer, "strategy", None)
        if strategy is not None:
            self.num_workers, self.pin_memory = self._loader_options(
                devices_per_node=max(1, len(getattr(strategy, "parallel_devices", None) or [None])),
                device_type=strategy.root_device.type,
            )
        for split in STAGE_SPLITS.get(stage, SPLITS):
            self._collection(split)
        if stage in (None, "fit"):
            self._noise_dataset()

    def _loader_options(self, devices_per_node: int, device_type: str | None) -> tuple[int, bool]:
        """``(num_workers, pin_memory)`` with ``auto`` resolved for this node's devices (``device_type`` None: a GPU
        if this host has one)."""
        workers = self.num_workers_setting
        if workers == AUTO:
            workers = auto_num_workers(self.source, devices_per_node)
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

    def _collection(self, split: str) -> ImageCollection:
        """The images of ``split``, built once."""
        if split not in SPLITS:
            raise ConfigError(f"split {split!r}: expected one of {list(SPLITS)}")
        if split not in self._collections:
            if self.source == "synthetic":
                self._collections[split] = self._synthetic_split(split)
            elif self.source in ANNOTATION_SOURCES:
                self._collections[split] = CocoAmodalImages(
                    self.images,
                    self._split_records()[split],
                    image_size=self._load_size,
                    min_visible_pixels=self.min_visible_pixels,
                    cache_size=self.cache_size,
                )
            else:
                collection = FOLDER_SOURCES[self.source][1]
                self._collections[split] = collection(self.root, self._split_records()[split], self._load_size)
        return self._collections[split]

    @property
    def _load_size(self) -> int | None:
        """Size images are loaded at: the model's for whole-image tasks; their own for tasks that crop objects."""
        return self.task.load_size(self.image_size)

    def _task_dataset(self, split: str) -> TaskDataset:
        repeats = self.front_layer_repeats if self.task.repeats_front_layer else 1
        # Samples of scenes held in memory may cost more to make than to keep (crops): the task says.
        cache = self.source == "synthetic" and self.task.caches_samples
        dataset = TaskDataset(
            self._collection(split),
            self.task,
            repeats if split == "train" else 1,
            cache=cache,
            skip_bad=self.skip_bad_samples,
        )
        self._task_datasets[split] = dataset
        return dataset

    def skipped_samples(self) -> int:
        """Samples of the training and validation loaders replaced so far because they failed to load
        (``skip_bad_samples``)."""
        return sum(self._task_datasets[split].skipped for split in ("train", "val") if split in self._task_datasets)

    def _synthetic_split(self, split: str) -> InMemoryImages:
        offset = SPLITS.index(split) * SYNTHETIC_SPLIT_STRIDE
        count = self.split_sizes[SYNTHETIC_SPLIT_SIZES[split]]
        return InMemoryImages(
            [
                LayeredImage.from_scene(scene_id(split, i), self._generator.scene(offset + i), self.task.reads_whole)
                for i in range(count)
            ]
        )

    def _split_records(self) -> dict[str, list]:
        """Records of each split of a root: a seeded shuffle of the sorted ids, cut by the val and test fractions."""
        if self._splits is None:
            records = self._index(self.annotations or self.root, self.source)
            order = np.random.default_rng(self.split_seed).permutation(len(records))
            shuffled = [records[i] for i in order]
            num_val = self._held_out(len(records), self.val_fraction)
            num_test = self._held_out(len(records), self.test_fraction)
            if num_val + num_test > len(records) or (
                num_val + num_test == len(records) and self.val_fraction + self.test_fraction < 1.0
            ):
                raise DataError(
                    f"{self.root}: {len(records)} image(s) are too few for data.val_fraction={self.val_fraction} "
                    f"and data.test_fraction={self.test_fraction} to leave any for training"
                )
            self._splits = {
                "val": shuffled[:num_val],
                "test": shuffled[num_val : num_val + num_test],
                "train": shuffled[num_val + num_test :],
            }
        return self._splits

    def _index(self, root: Path, source: str) -> list:
        """The usable images of a root. A root with malformed folders is refused in one line that says how to
        list them, unless ``skip_bad_samples`` is set: then their images are left out and counted in the log."""
        if source in ANNOTATION_SOURCES:
            scan = scan_coco_annotations(
                root, self.images, self.validate_files, source=source, include_stuff=self.include_stuff
            )
            where = f"data.annotations={root} data.images={self.images}"
        else:
            scan = FOLDER_SOURCES[source][0](root, deep=self.validate_files)
            where = f"data.root={root}"
        if not scan.problems:
            return scan.records
        check_command = f"python -m amodal_lightning.data.check data={source} {where}"
        if self.validate_files:
            check_command += " deep=true"
        if not self.skip_bad_samples:
            raise DataError(
                f"{root}: {scan.summary()}; the first: {scan.problems[0]}; list them all with `{check_command}`, "
                "or set data.skip_bad_samples=true to train without them"
            )
        if not scan.records:
            raise DataError(f"{root}: no usable image left ({scan.summary()}); the first problem: {scan.problems[0]}")
        _log_skipped(root, scan, check_command)
        return scan.records

    @staticmethod
    def _held_out(total: int, fraction: float) -> int:
        """Images held out for a fraction: rounded, but at least one when the fraction is positive."""
        return max(1, round(total * fraction)) if fraction > 0 and total else 0

    def _noise_dataset(self) -> TaskDataset | None:
        """The noise samples, indexed once; None when noise is off."""
        if self.noise_rate <= 0:
            return None
        if self._noise is None:
            records = self._index(self.noise_root, "sas")
            self._noise = TaskDataset(SasImages(self.noise_root, records, self._load_size), self.task)
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
        """Shuffled training samples, a ``noise_rate`` fraction of them drawn from the noise folders; each process
        of a DDP run takes its share of every epoch's draws."""
        clean = self._task_dataset("train")
        if len(clean) == 0:
            raise DataError(f"{self.root or 'data.synthetic.num_train'}: the training split is empty")
        noise = self._noise_dataset()
        processes, rank = self._processes()
        if noise is None:
            dataset, sampler = clean, ShuffleSampler(len(clean), self.shuffle_seed, processes, rank)
        else:
            dataset = ConcatDataset([clean, noise])
            sampler = NoiseMixingSampler(len(clean), len(noise), self.noise_rate, self.noise_seed, processes, rank)
        return self._loader(SeededDraws(dataset, self.shuffle_seed), sampler, ResumableLoader)

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

    # ----------------------------------------------------------------------------------- whole images

    def scenes(self, split: str = "val") -> ImageCollection:
        """Whole images of ``split`` (a sequence of :class:`LayeredImage`, loaded on access for SAS roots)."""
        return self._collection(split)

    def panel_scenes(self, num_images: int) -> list[LayeredImage]:
        """The first ``num_images`` validation images: a fixed set to show predictions on."""
        val = self._collection("val")
        return [val[i] for i in range(min(num_images, len(val)))]


@rank_zero_only
def _log_skipped(root: Path, scan: sas_folders.RootScan, check_command: str) -> None:
    log.warning("%s: data.skip_bad_samples=true: %s; list them with `%s`", root, scan.summary(), check_command)
