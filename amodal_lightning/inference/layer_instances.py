"""Object instances from the sequentially predicted layers of one image: the connected parts of each layer.

The layer model predicts, front to back, each layer as the union of its objects' amodal masks; objects of one layer
do not overlap (that is what puts them in one layer), so each connected part of a layer is taken as one object.
Its visible part is the part minus the union of the layers in front, its hidden part the rest. The rules, each a
setting of :class:`InstanceSettings`:

``connectivity``  4 or 8: which pixels make one part (8, the default, as the part-wise merge rule of sequential
                  inference counts parts); two objects of a layer that touch become one part either way
``min_pixels``    parts smaller than this are specks (measured at the resolution the layers are given)
``specks``        ``drop`` them, or ``merge`` each into the nearest larger part of its layer (dropped when its layer
                  has none)
``hidden_parts``  a part with no visible pixel (wholly behind the layers in front): ``drop`` or ``keep``
``score_terms``   the score is the product of the terms chosen: ``agreement`` (the ensemble's mean agreement over the
                  part, 1 - variance / 0.25: 1 where every member agreed, 0 where they split evenly; 1 without
                  uncertainty maps), ``depth`` (``depth_factor`` ** layer: deeper layers are predicted from more
                  guesses in front), ``size`` (the part's fraction of the image)

The default score is all three, agreement x 0.9 ** layer x size: measured by AP on two quickstart layer models
(results/2026-12-06-instance-ap-study.md), it has the best mean of the scores measured on both, and beats agreement x
depth (the first by-hand choice) on each; size alone and depth x size ranked higher on the second model only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

import numpy as np
from scipy import ndimage

from amodal_lightning.errors import ConfigError
from amodal_lightning.inference.render import MAX_VARIANCE

CONNECTIVITIES = (4, 8)
DROP, MERGE, KEEP = "drop", "merge", "keep"
SPECK_RULES = (DROP, MERGE)
HIDDEN_PART_RULES = (DROP, KEEP)
AGREEMENT, DEPTH, SIZE = "agreement", "depth", "size"
SCORE_TERMS = (AGREEMENT, DEPTH, SIZE)
# scipy's structuring elements: 4-connected (edges) and 8-connected (edges and corners).
STRUCTURES = {4: ndimage.generate_binary_structure(2, 1), 8: ndimage.generate_binary_structure(2, 2)}
# The config key the settings are read from (conf/instance_split/default.yaml), named in errors.
SETTINGS_KEY = "instance_split"


@dataclass
class InstanceSettings:
    """How layers are split into instances and how each is scored (see the module docstring)."""

    connectivity: int = 8
    # Below the generator's smallest object (2 % of a 32-pixel image, 21 pixels), above a few stray pixels.
    min_pixels: int = 8
    specks: str = DROP
    hidden_parts: str = DROP
    # The best mean AP over the two models of results/2026-12-06-instance-ap-study.md (see the module docstring).
    score_terms: tuple[str, ...] = (AGREEMENT, DEPTH, SIZE)
    depth_factor: float = 0.9

    def check(self, key: str = SETTINGS_KEY) -> None:
        """Raise a one-line :class:`ConfigError` naming ``key.<setting>`` for a value out of range."""
        if self.connectivity not in CONNECTIVITIES:
            raise ConfigError(f"{key}.connectivity={self.connectivity}: expected one of {list(CONNECTIVITIES)}")
        if self.min_pixels < 1:
            raise ConfigError(f"{key}.min_pixels={self.min_pixels}: expected at least 1")
        if self.specks not in SPECK_RULES:
            raise ConfigError(f"{key}.specks={self.specks!r}: expected one of {list(SPECK_RULES)}")
        if self.hidden_parts not in HIDDEN_PART_RULES:
            raise ConfigError(f"{key}.hidden_parts={self.hidden_parts!r}: expected one of {list(HIDDEN_PART_RULES)}")
        unknown = [term for term in self.score_terms if term not in SCORE_TERMS]
        if unknown or not self.score_terms:
            raise ConfigError(
                f"{key}.score_terms={list(self.score_terms)}: expected one or more of {list(SCORE_TERMS)}"
            )
        if not 0.0 < self.depth_factor <= 1.0:
            raise ConfigError(f"{key}.depth_factor={self.depth_factor}: expected a value in (0, 1]")

    @classmethod
    def from_mapping(cls, settings: Mapping | None, key: str = SETTINGS_KEY) -> InstanceSettings:
        """Settings from a config mapping (unknown keys are an error), checked."""
        settings = dict(settings or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ConfigError(f"{key}: unknown setting(s) {unknown}; expected {sorted(known)}")
        if "score_terms" in settings:
            settings["score_terms"] = tuple(settings["score_terms"])
        made = cls(**settings)
        made.check(key)
        return made


@dataclass(frozen=True)
class LayerInstance:
    """One found object: ``amodal``, ``visible`` and ``hidden`` bool (H,W), its ``layer`` (0 in front), its
    ``score``, ``agreement`` (the ensemble's mean agreement over the amodal mask, 1 without uncertainty maps) and
    ``uncertainty`` (the members' mean per-pixel variance over it, None without maps)."""

    amodal: np.ndarray
    visible: np.ndarray
    hidden: np.ndarray
    layer: int
    score: float
    agreement: float
    uncertainty: float | None

    @property
    def pixels(self) -> int:
        """The amodal mask's pixel count."""
        return int(self.amodal.sum())


def layer_parts(layer: np.ndarray, settings: InstanceSettings) -> np.ndarray:
    """The parts of one layer bool (H,W) after the speck rule: int labels (H,W), 0 background, 1.. in raster order
    of each part's first pixel (gaps left by dropped or merged specks are closed)."""
    labels, count = ndimage.label(layer, structure=STRUCTURES[settings.connectivity])
    if count == 0:
        return labels
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    specks = [part for part in range(1, count + 1) if sizes[part] < settings.min_pixels]
    if specks:
        large = np.isin(labels, [part for part in range(1, count + 1) if sizes[part] >= settings.min_pixels])
        if settings.specks == MERGE and large.any():
            # For every pixel, the nearest pixel of a larger part; a speck joins the part nearest to any of its pixels.
            distance, (rows, cols) = ndimage.distance_transform_edt(~large, return_indices=True)
            nearest = labels[rows, cols]
            for part in specks:
                where = labels == part
                labels[where] = nearest[where][np.argmin(distance[where])]
        else:
            labels[np.isin(labels, specks)] = 0
    # Renumber 1.. in raster order of first pixels.
    kept, first = np.unique(labels.ravel(), return_index=True)
    order = [label for _, label in sorted(zip(first[kept > 0], kept[kept > 0]))]
    renumbered = np.zeros(int(labels.max()) + 1, dtype=labels.dtype)
    renumbered[order] = np.arange(1, len(order) + 1)
    return renumbered[labels]


def split_layers(
    layers: np.ndarray, uncertainty: np.ndarray | None = None, settings: InstanceSettings | None = None
) -> list[LayerInstance]:
    """The instances of one image from its predicted ``layers`` bool (K,H,W), front to back, and optionally the
    ensemble's per-pixel ``uncertainty`` (K,H,W), the members' variance in [0, 0.25]. Instances come front to back,
    within a layer in raster order of their first pixel."""
    settings = settings or InstanceSettings()
    settings.check()
    layers = np.asarray(layers).astype(bool)
    if layers.ndim != 3:
        raise ValueError(f"layers: expected (K, H, W) masks, got shape {layers.shape}")
    if uncertainty is not None and np.shape(uncertainty) != layers.shape:
        raise ValueError(f"uncertainty: shape {np.shape(uncertainty)} differs from the layers' {layers.shape}")
    image_pixels = layers.shape[1] * layers.shape[2]
    front = np.zeros(layers.shape[1:], dtype=bool)
    instances = []
    for k, layer in enumerate(layers):
        labels = layer_parts(layer, settings)
        for part in range(1, int(labels.max()) + 1):
            amodal = labels == part
            visible = amodal & ~front
            if not visible.any() and settings.hidden_parts == DROP:
                continue
            variance = None if uncertainty is None else float(np.asarray(uncertainty[k])[amodal].mean())
            agreement = 1.0 if variance is None else float(np.clip(1.0 - variance / MAX_VARIANCE, 0.0, 1.0))
            terms = {
                AGREEMENT: agreement,
                DEPTH: settings.depth_factor**k,
                SIZE: float(amodal.sum()) / image_pixels,
            }
            score = float(np.prod([terms[term] for term in settings.score_terms]))
            instances.append(LayerInstance(amodal, visible, amodal & ~visible, k, score, agreement, variance))
        front |= layer
    return instances
