"""The one interface every data source implements, and how a data config builds one.

A source is where images and their ground truth come from: generated scenes, a SAS root, a per-object root, a
COCO-style annotation file. Training (:class:`~amodal_lightning.data.datamodule.AmodalDataModule`), ``data.check``,
``data.convert``, ``evaluate`` and the demo use a source through :class:`Source` alone:

- :meth:`Source.image_ids` indexes its images (on first use) and gives the ids of a split;
- :meth:`Source.images` gives the images of a split as an
  :class:`~amodal_lightning.data.datasets.ImageCollection` of :class:`~amodal_lightning.data.record.ImageRecord`,
  loaded at a size (None: each image at its own resolution);
- :meth:`Source.check` finds every problem, one line each (what ``data.check`` prints), shallow or ``deep``;
- :attr:`Source.gives_whole` says whether it gives each object's whole appearance (``ImageRecord.whole``, what the
  whole-object task trains on); :attr:`Source.in_memory` whether its images are held in memory (samples made of
  them may be cached, and loader workers would only add overhead); :meth:`Source.noise_images` gives extra training
  images to mix in (SAS's noise folders) where it has any.

Splits are ``"train"``, ``"val"`` and ``"test"``; ``None`` is every image of the source. How they are made is the
source's: generated scenes come from fixed, disjoint index ranges; roots and annotation files
(:class:`IndexedSource`) are split by a seeded shuffle of their ids, cut by ``val_fraction`` and ``test_fraction``.

A data config (``conf/data/<name>.yaml``) chooses the source's class by ``source._target_``; the source's settings
are the config's other keys that its constructor names (``data.root``, ``data.annotations``, ...), so the keys a
user types stay short: :func:`build_source`. A new on-disk layout is one module here (a :class:`Source`, most simply
an :class:`IndexedSource`) and one config.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from amodal_lightning.data.datasets import ImageCollection
from amodal_lightning.data.sas_folders import Problem
from amodal_lightning.errors import ConfigError, DataError

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
# The command that lists a source's problems, named in the line that refuses a source with problems.
CHECK_COMMAND = "python -m amodal_lightning.data.check"
TARGET_KEY = "_target_"
PARTIAL_KEY = "_partial_"


class Scan(Protocol):
    """What checking one place of a source found (a root, an annotation file): its usable images' records (sorted by
    id), every problem, one line each, and a one-line summary."""

    records: list
    problems: list[Problem]

    @property
    def location(self) -> Path: ...

    def summary(self) -> str: ...


def check_split(split: str | None) -> None:
    """Refuse a split that is none of :data:`SPLITS` (None, every image, is one)."""
    if split is not None and split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}: expected one of {list(SPLITS)}")


class Source(ABC):
    """Where images and their ground truth come from; see the module docstring for the interface.

    ``name`` is the data config that chooses it (``data=<name>``), for messages; ``skip_bad_samples``, when a
    source has the setting, asks the data module to replace a sample that fails to load instead of stopping.
    """

    name: str = ""
    gives_whole: bool = False
    in_memory: bool = False
    skip_bad_samples: bool = False

    @abstractmethod
    def image_ids(self, split: str | None = None) -> list[str]:
        """Ids of the images of ``split`` (None: every image), indexing the source on first use."""

    @abstractmethod
    def images(self, split: str | None, size: int | None, *, with_whole: bool = True) -> ImageCollection:
        """The images of ``split`` (None: every image), loaded at ``size`` x ``size`` (None: their own resolution).
        ``with_whole=False`` may leave out the objects' whole appearances (held in memory only for tasks that read
        them)."""

    @abstractmethod
    def check(self, deep: bool = False, *, require_masks: bool = True) -> list[Scan]:
        """Every problem of the source, one scan per place checked (none for a source with nothing on disk).
        ``deep`` also decodes every file, as loading it does; ``require_masks=False`` checks a prediction input of
        a folder layout, whose ground-truth masks are optional."""

    def where(self) -> str:
        """The keys that name this source on the command line (``data.root=DIR``), for messages."""
        return ""

    def describe(self) -> str:
        """``data=<name>`` and :meth:`where`: the source as a command line names it."""
        return " ".join(part for part in (f"data={self.name}", self.where()) if part)

    def noise_images(self, size: int | None) -> ImageCollection:
        """Extra training images to mix in at ``data.noise_rate`` (SAS's noise folders), loaded at ``size``."""
        raise ConfigError(
            f"data.noise_rate: the {self.name} source has no noise images to mix in (SAS roots do: data=sas "
            "data.noise_root=DIR)"
        )


@dataclasses.dataclass
class HeldOut:
    """The fractions of a source's images a command holds out for validation and test, where its source splits them
    by fractions (an :class:`IndexedSource`: roots, annotation files): the ``held_out`` node of the commands that
    read data (conf/train.yaml, check.yaml, convert.yaml, evaluate.yaml), which the data configs of those sources
    take their ``val_fraction`` and ``test_fraction`` from (``${held_out.val_fraction}``). Training holds out a
    twentieth for validation; ``evaluate`` reads a source named on its command line whole, as its test split.
    Generated scenes are split by counts instead (``data.synthetic.num_val``, ...)."""

    val_fraction: float = 0.05
    test_fraction: float = 0.0


class IndexedSource(Source):
    """A source on disk whose images a scan indexes (:meth:`scan`, which also finds their problems) and a seeded
    shuffle of the ids splits: ``val_fraction`` and ``test_fraction`` of them held out (at least one image for a
    positive fraction), the rest for training.

    Indexing runs the shallow scan (``validate_files``: the deep one) and refuses a source with problems in one line
    that names the first and says how to list them all, unless ``skip_bad_samples``: then the images with problems
    are left out and counted in the log. A subclass gives :meth:`scan` and :meth:`collection`.
    """

    def __init__(
        self,
        val_fraction: float,
        test_fraction: float,
        split_seed: int = 0,
        validate_files: bool = False,
        skip_bad_samples: bool = False,
    ):
        for key, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if value is None:
                raise ConfigError(f"{key}: required (the fraction of the images held out)")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{key}={value!r}: expected a fraction in [0, 1]")
        val_fraction, test_fraction = float(val_fraction), float(test_fraction)
        if not (0.0 <= val_fraction <= 1.0 and 0.0 <= test_fraction <= 1.0 and val_fraction + test_fraction <= 1.0):
            raise ConfigError(
                f"val_fraction={val_fraction}, test_fraction={test_fraction}: expected fractions in [0, 1] summing to "
                "at most 1"
            )
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.split_seed = int(split_seed)
        self.validate_files = bool(validate_files)
        self.skip_bad_samples = bool(skip_bad_samples)
        self._records: list | None = None
        self._splits: dict[str, list] | None = None

    @abstractmethod
    def scan(self, deep: bool = False, *, require_masks: bool = True) -> Scan:
        """Check the source's main place (:meth:`check`'s first scan); its ``records`` are the usable images,
        sorted by id."""

    @abstractmethod
    def collection(self, records: Sequence, size: int | None, *, with_whole: bool = True) -> ImageCollection:
        """The images of ``records`` (from :meth:`scan`) loaded at ``size`` (None: their own resolution)."""

    def check(self, deep: bool = False, *, require_masks: bool = True) -> list[Scan]:
        return [self.scan(deep, require_masks=require_masks)]

    def usable(self, scan: Scan) -> list:
        """The records of ``scan``, or a one-line DataError when it found problems (see the class docstring)."""
        if not scan.problems:
            return scan.records
        command = f"{CHECK_COMMAND} {self.describe()}" + (" deep=true" if self.validate_files else "")
        if not self.skip_bad_samples:
            raise DataError(
                f"{scan.location}: {scan.summary()}; the first: {scan.problems[0]}; list them all with "
                f"`{command}`, or set data.skip_bad_samples=true to train without them"
            )
        if not scan.records:
            raise DataError(
                f"{scan.location}: no usable image left ({scan.summary()}); the first problem: {scan.problems[0]}"
            )
        _log_skipped(scan, command)
        return scan.records

    def records(self) -> list:
        """The usable images, indexed once."""
        if self._records is None:
            self._records = self.usable(self.scan(self.validate_files))
        return self._records

    def split_records(self, split: str | None) -> list:
        """Records of ``split``: a seeded shuffle of the sorted records, cut by the val and test fractions."""
        check_split(split)
        if split is None:
            return self.records()
        if self._splits is None:
            records = self.records()
            order = np.random.default_rng(self.split_seed).permutation(len(records))
            shuffled = [records[i] for i in order]
            num_val = held_out(len(records), self.val_fraction)
            num_test = held_out(len(records), self.test_fraction)
            if num_val + num_test > len(records) or (
                num_val + num_test == len(records) and self.val_fraction + self.test_fraction < 1.0
            ):
                raise DataError(
                    f"{self.where() or self.name}: {len(records)} image(s) are too few for data.val_fraction="
                    f"{self.val_fraction} and data.test_fraction={self.test_fraction} to leave any for training"
                )
            self._splits = {
                "val": shuffled[:num_val],
                "test": shuffled[num_val : num_val + num_test],
                "train": shuffled[num_val + num_test :],
            }
        return self._splits[split]

    def image_ids(self, split: str | None = None) -> list[str]:
        return [record.image_id for record in self.split_records(split)]

    def images(self, split: str | None, size: int | None, *, with_whole: bool = True) -> ImageCollection:
        return self.collection(self.split_records(split), size, with_whole=with_whole)


def held_out(total: int, fraction: float) -> int:
    """Images held out for a fraction: rounded, but at least one when the fraction is positive."""
    return max(1, round(total * fraction)) if fraction > 0 and total else 0


@rank_zero_only
def _log_skipped(scan: Scan, command: str) -> None:
    log.warning("%s: data.skip_bad_samples=true: %s; list them with `%s`", scan.location, scan.summary(), command)


# ------------------------------------------------------------------------------------------- building a source


def source_factory(source: Any) -> Callable[..., Source]:
    """What builds the source a data config names: ``source`` is its ``_target_`` node (``_partial_: true``), the
    partial Hydra made of it, or the class."""
    if isinstance(source, Mapping):
        if TARGET_KEY not in source:
            raise ConfigError(f"data.source: expected a node with the source class's {TARGET_KEY}, got {source!r}")
        from hydra.errors import InstantiationException
        from hydra.utils import instantiate

        try:
            source = instantiate({**source, PARTIAL_KEY: True})
        except InstantiationException as err:
            reason = str(err).strip().splitlines()[0]
            raise ConfigError(f"data.source._target_={source[TARGET_KEY]!r}: cannot be imported ({reason})") from None
    if isinstance(source, str) or not callable(source):
        # A checkpoint written before sources were classes names its source by a string.
        raise ConfigError(
            f"data.source={source!r}: expected a node naming the source class ({TARGET_KEY}); name the data with "
            "data=<name> (conf/data/) instead"
        )
    target = source.func if isinstance(source, functools.partial) else source
    if isinstance(target, type) and not issubclass(target, Source):
        raise ConfigError(f"data.source: {target.__name__} is not a data source (amodal_lightning.data.sources)")
    return source


def setting_names(factory: Callable[..., Source]) -> set[str]:
    """The settings a source's constructor takes (those a partial already binds included)."""
    target = factory.func if isinstance(factory, functools.partial) else factory
    return {
        name
        for name, parameter in inspect.signature(target).parameters.items()
        if parameter.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    }


def required_settings(factory: Callable[..., Source]) -> set[str]:
    """The settings a source's constructor requires that a partial of it does not already bind."""
    bound = set(factory.keywords) if isinstance(factory, functools.partial) else set()
    target = factory.func if isinstance(factory, functools.partial) else factory
    return {
        name
        for name, parameter in inspect.signature(target).parameters.items()
        if parameter.default is inspect.Parameter.empty
        and parameter.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        and name not in bound
    }


def build_source(source: Any, settings: Mapping[str, Any], *, unknown_allowed: Collection[str] | None = None) -> Source:
    """The source ``source`` names (see :func:`source_factory`), built with the keys of ``settings`` its constructor
    names. With ``unknown_allowed`` given, any other key of ``settings`` not in it is refused in one line naming it
    (the data module's check of its config); without it, other keys are left alone (a command reading only the
    source from a whole data config). A source already built is returned as it is."""
    if isinstance(source, Source):
        return source
    factory = source_factory(source)
    names = setting_names(factory)
    if unknown_allowed is not None:
        unknown = sorted(set(settings) - names - set(unknown_allowed))
        if unknown:
            raise ConfigError(f"{unknown[0]}: unknown key of this data config; its source takes {sorted(names)}")
    missing = sorted(required_settings(factory) - set(settings))
    if missing:
        raise ConfigError(f"{missing[0]}: required by this data config's source")
    built = factory(**{key: value for key, value in settings.items() if key in names})
    if not isinstance(built, Source):
        raise ConfigError(f"data.source: {type(built).__name__} is not a data source (amodal_lightning.data.sources)")
    return built


def source_from_config(data: Mapping[str, Any], **given: Any) -> Source:
    """The source of a whole data config (``data.source`` and the keys it names); ``given`` adds or replaces keys
    (the scenes' ``image_size``, which an entry point gives)."""
    if "source" not in data:
        raise ConfigError("data.source: the data config names no source; name the data with data=<name>")
    return build_source(data["source"], {**{k: v for k, v in data.items() if k != "source"}, **given})
