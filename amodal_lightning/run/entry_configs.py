"""The schemas of the entry configs' own keys (conf/train.yaml, predict.yaml, ...): their types and the set of keys.

Their values, and the comments that say what each does, are the entry YAML's: a command's settings have no
default elsewhere (no code builds them without a config), so each YAML starts from its schema here
(``- /schema@_here_: train``) and gives every value once. A group node is typed ``Any`` here: its own schema types
it (``model``: ``/schema@_here_: model`` in conf/model/*.yaml); so is ``held_out``, the fractions of a root's or an
annotation file's images that the data configs hold out (:class:`amodal_lightning.data.sources.base.HeldOut`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from omegaconf import MISSING

# Optional[...] rather than `X | None`: OmegaConf 2.3 reads typing.Optional only.
# ruff: noqa: UP045


@dataclass
class TrainConfig:
    """``python -m amodal_lightning.train`` (conf/train.yaml)."""

    task_name: str = MISSING
    seed: int = MISSING
    ckpt_path: Optional[str] = MISSING
    auto_resume: bool = MISSING
    final_validation: bool = MISSING
    optimized_metric: str = MISSING
    task: Any = MISSING
    data: Any = MISSING
    held_out: Any = MISSING
    model: Any = MISSING
    optimizer: Any = MISSING
    trainer: Any = MISSING
    callbacks: Any = None
    logger: Any = None
    paths: Any = MISSING


@dataclass
class PredictConfig:
    """``python -m amodal_lightning.predict`` (conf/predict.yaml)."""

    task_name: str = MISSING
    ckpt_path: str = MISSING
    input: str = MISSING
    output: str = MISSING
    device: str = MISSING
    seed: int = MISSING
    instances: bool = MISSING
    refine_ckpt: Optional[str] = MISSING
    images: Optional[str] = MISSING
    annotations: Optional[str] = MISSING
    inference: Any = MISSING
    instance_split: Any = MISSING


@dataclass
class EvaluateConfig:
    """``python -m amodal_lightning.evaluate`` (conf/evaluate.yaml)."""

    task_name: str = MISSING
    ckpt_path: str = MISSING
    output: str = MISSING
    split: str = MISSING
    num_images: Optional[int] = MISSING
    teacher_forced: bool = MISSING
    device: str = MISSING
    seed: int = MISSING
    reference_ckpt: Optional[str] = MISSING
    instances: bool = MISSING
    refine_ckpt: Optional[str] = MISSING
    data: Any = None
    held_out: Any = MISSING
    inference: Any = MISSING
    instance_split: Any = MISSING


@dataclass
class CheckConfig:
    """``python -m amodal_lightning.data.check`` (conf/check.yaml)."""

    deep: bool = MISSING
    require_masks: bool = MISSING
    data: Any = MISSING
    held_out: Any = MISSING


@dataclass
class ConvertConfig:
    """``python -m amodal_lightning.data.convert`` (conf/convert.yaml)."""

    layout: str = MISSING
    output: str = MISSING
    image_size: int = MISSING
    data: Any = None
    held_out: Any = MISSING


@dataclass
class DemoConfig:
    """``python -m amodal_lightning.demo`` (conf/demo.yaml)."""

    task_name: str = MISSING
    ckpt_path: str = MISSING
    device: str = MISSING
    host: str = MISSING
    port: int = MISSING
    port_search: int = MISSING
    samples_shown: int = MISSING
    seed: int = MISSING
    refine_ckpt: Optional[str] = MISSING
    scenes: int = MISSING
    open_scene: Optional[int] = MISSING
    click: Any = MISSING
    inference: Any = MISSING
    instance_split: Any = MISSING
