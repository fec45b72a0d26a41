"""How a trained module samples: the sampling settings (:class:`InferenceConfig`) that the module's validation, the
training panels, ``predict``, ``evaluate`` and the demo share, with their choices and range checks.

The field defaults of :class:`InferenceConfig` are the one place the sampling defaults live: every ``inference``
config node starts from them (``conf/inference/default.yaml``), and so does code that builds the settings itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

from amodal_lightning.diffusion.gaussian import SAMPLERS
from amodal_lightning.errors import ConfigError
from amodal_lightning.models.guidance import NO_GUIDANCE, check_scale, check_scale_for
from amodal_lightning.orientations import IDENTITY, check_orientations
from amodal_lightning.run.schema import settings_from

# A respaced diffusion needs at least two steps (one noisy, one clean).
MIN_STEPS = 2
# How the members of an ensemble are combined into one mask (amodal_lightning.inference.ensemble implements them).
SAS, VOTE, MEAN = "sas", "vote", "mean"
COMBINE_RULES = (SAS, VOTE, MEAN)


def check_rule(rule: str, threshold: float, empty_fraction: float) -> None:
    """Raise a one-line :class:`ConfigError` for an unknown combination rule or an out-of-range threshold or
    fraction."""
    if rule not in COMBINE_RULES:
        raise ConfigError(f"combine={rule!r}: unknown combination rule; expected one of {list(COMBINE_RULES)}")
    if not 0.0 <= threshold < 1.0:
        raise ConfigError(f"threshold={threshold}: expected a value in [0, 1)")
    if not 0.0 <= empty_fraction < 1.0:
        raise ConfigError(f"empty_fraction={empty_fraction}: expected a fraction in [0, 1)")


@dataclass
class InferenceConfig:
    """How layers (or objects) are sampled, combined and stopped. ``predict`` and ``evaluate`` read it as
    ``inference``, the training panels as ``callbacks.<panel>.inference`` and the module's validation as
    ``model.module.validation.inference``, each changing only what differs (``inference.steps=100``).

    Args:
        steps: sampling steps: the training schedule respaced to this many, 2 up to its length (1000 for SAS
            models).
        sampler: ``"ddim"`` (deterministic with ``eta=0``) or ``"ancestral"`` (SAS's sampler, meant for the full
            schedule).
        eta: DDIM noise (0 is deterministic given the starting noise).
        ensemble_size: samples per layer and image, drawn in one batched pass (SAS: 3).
        views: how members see the image (:mod:`amodal_lightning.orientations`): ``"identity"`` (all as it is,
            SAS), ``"mirror"`` (every other member mirrored left-right) or ``"dihedral"`` (members cycle through the
            4 quarter turns and their mirrors: for data with no upright direction, such as the generated scenes).
            Each member's mask is turned back before the members are combined
            (see results/2026-11-29-dihedral-views.md).
        combine: ``"sas"`` (the member closest to the members' mean, near-empty members dropped), ``"vote"``
            (majority of the members) or ``"mean"`` (the members' mean continuous value above ``threshold``); see
            :mod:`amodal_lightning.inference.ensemble`.
        threshold: the ``mean`` rule's cut.
        empty_fraction: a layer with less foreground than this fraction of the image ends the image (SAS: 0.25 %;
            SAS drops a sampled mask below it, and stops when all are dropped).
        max_layers: no image gets more layers (SAS: 5).
        merge_disjoint: SAS's merge rule: a layer that does not overlap the previous one joins it.
        max_merges: merges allowed per image; past them a disjoint layer is kept as a new layer.
        merge_parts: with ``merge_disjoint``, judge each connected part of a new mask on its own: parts that
            neither overlap nor border the previous layer join it (one merge per layer that moves any), the rest
            stays a new layer. A true layer's objects always overlap the layer before (their occluders are
            there), so a part apart from it was put one layer too deep. (SAS's rule moves a layer only when all of
            it is apart.)
        batch_size: images sampled together, each with its whole ensemble (a pass holds ``batch_size`` x
            ``ensemble_size`` samples); for the per-object task, objects.
        guidance_scale: classifier-free guidance (:mod:`~amodal_lightning.models.guidance`): the prediction is
            uncond + scale x (cond - uncond). 1 is the plain conditional prediction (no second pass); above 1
            follows the image and the visible mask more closely (pix2gestalt: 2). Only for models trained with
            ``task.conditioning_dropout`` > 0; above 1 was worse on the quickstart-length whole-object model
            (results/2026-12-02-gestalt-quickstart.md; measure with benchmarks/guidance_scale.py).
    """

    steps: int = 50
    sampler: str = "ddim"
    eta: float = 0.0
    ensemble_size: int = 3
    views: str = IDENTITY
    combine: str = SAS
    threshold: float = 0.5
    empty_fraction: float = 0.0025
    max_layers: int = 5
    merge_disjoint: bool = False
    max_merges: int = 3
    merge_parts: bool = False
    batch_size: int = 8
    guidance_scale: float = NO_GUIDANCE

    @classmethod
    def from_mapping(cls, settings: Mapping | None, key: str = "inference") -> InferenceConfig:
        """Settings from a config mapping (missing ones: the defaults); a key this schema lacks or a value of the
        wrong type is a one-line :class:`ConfigError` naming ``{key}.<field>``."""
        return settings_from(cls, settings, key)

    def check(self, num_timesteps: int, key: str = "inference", task=None) -> None:
        """Raise a one-line :class:`ConfigError` naming ``{key}.<field>`` for a value the model cannot honour
        (with the model's ``task``, also a guidance scale it was not trained for)."""
        if not MIN_STEPS <= int(self.steps) <= num_timesteps:
            raise ConfigError(
                f"{key}.steps={self.steps}: the model's diffusion schedule has {num_timesteps} steps; "
                f"choose {MIN_STEPS} to {num_timesteps}"
            )
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"{key}.sampler={self.sampler!r}: expected one of {list(SAMPLERS)}")
        if self.eta < 0:
            raise ConfigError(f"{key}.eta={self.eta}: expected a value >= 0")
        for name in ("ensemble_size", "max_layers", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{key}.{name}={getattr(self, name)}: expected a positive integer")
        check_orientations(self.views, f"{key}.views")
        if int(self.max_merges) < 0:
            raise ConfigError(f"{key}.max_merges={self.max_merges}: expected 0 or more")
        check_scale(self.guidance_scale, f"{key}.guidance_scale")
        if task is not None:
            check_scale_for(task, self.guidance_scale, f"{key}.guidance_scale")
        try:
            check_rule(self.combine, self.threshold, self.empty_fraction)
        except ConfigError as err:
            raise ConfigError(f"{key}.{err}") from None

    def as_dict(self) -> dict:
        """The settings as plain values (for summaries and logs)."""
        return asdict(self)
