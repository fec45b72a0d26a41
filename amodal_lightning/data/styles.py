"""Named styles of the generated scenes: how a scene looks, apart from what is where.

A style groups the appearance axes of the generator: the textures of the objects and of the background, the palette
their colours come from, and which of the camera's effects (light and shading, blur, noise;
:mod:`amodal_lightning.data.finishing`) it gets. Shapes, sizes, counts and placement are not part of a style: any
shape takes any style, and a scene's geometry does not depend on its style (the same seed and index give the same
objects in every style), so a model can be scored on a style it never saw over the very same masks as on its own.

| style | object textures | background textures | colours | light | blur | noise |
|---|---|---|---|---|---|---|
| ``classic`` | flat, stripes, checker, gradient, noise | flat, stripes, gradient, noise | identity | | | |
| ``flat`` | flat | flat, gradient | free | yes | yes | |
| ``textured`` | gradient, stripes, checker, noise, clouds | the same | free | | | yes |
| ``photo`` | photo | photo | (photographs, recoloured) | yes | yes | yes |

``classic`` is the look of the generator before it had styles: bright, saturated objects of one hue each over a
dull, dark background. The others break that rule: objects and backgrounds of any colour, light or dark.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from amodal_lightning.data.textures import PALETTES, TEXTURES
from amodal_lightning.errors import ConfigError


@dataclass(frozen=True)
class Style:
    """One named style: texture kinds (subsets of :data:`~amodal_lightning.data.textures.TEXTURES`) of the objects
    and of the background, the palette, and whether the scene gets light and shading, blur and noise."""

    name: str
    object_textures: tuple[str, ...]
    background_textures: tuple[str, ...]
    palette: str
    lighting: bool = False
    blur: bool = False
    noise: bool = False

    def __post_init__(self):
        assert set(self.object_textures + self.background_textures) <= set(TEXTURES), self
        assert self.palette in PALETTES, self


PROCEDURAL = ("gradient", "stripes", "checker", "noise", "clouds")
STYLES: dict[str, Style] = {
    style.name: style
    for style in (
        Style(
            "classic",
            object_textures=("flat", "stripes", "checker", "gradient", "noise"),
            background_textures=("flat", "stripes", "gradient", "noise"),
            palette="identity",
        ),
        Style("flat", ("flat",), ("flat", "gradient"), "free", lighting=True, blur=True),
        Style("textured", PROCEDURAL, PROCEDURAL, "free", noise=True),
        Style("photo", ("photo",), ("photo",), "free", lighting=True, blur=True, noise=True),
    )
}
STYLE_NAMES = tuple(STYLES)


def names(key: str, value: Iterable[str] | str, known: Iterable[str]) -> tuple[str, ...]:
    """``value`` as a tuple of names (a single name is a list of one), each in ``known``; otherwise a
    :class:`ConfigError` naming ``key``."""
    chosen = (value,) if isinstance(value, str) else tuple(value)
    known = tuple(known)
    unknown = [name for name in chosen if name not in known]
    if not chosen or unknown:
        what = f"unknown {unknown[0]!r}" if unknown else "empty"
        raise ConfigError(f"{key}={list(chosen)}: {what}; expected a non-empty list of {list(known)}")
    return tuple(dict.fromkeys(chosen))


def select_styles(
    styles: Iterable[str] | str, textures: Iterable[str] | str, background_textures: Iterable[str] | str
) -> tuple[Style, ...]:
    """The chosen styles, each limited to the allowed texture kinds; a :class:`ConfigError` naming the key when a
    name is unknown or a chosen style is left without a texture."""
    chosen = names("styles", styles, STYLE_NAMES)
    objects = names("textures", textures, TEXTURES)
    backgrounds = names("background_textures", background_textures, TEXTURES)
    selected = []
    for name in chosen:
        style = STYLES[name]
        for key, allowed, own in (
            ("textures", objects, style.object_textures),
            ("background_textures", backgrounds, style.background_textures),
        ):
            if not set(own) & set(allowed):
                raise ConfigError(
                    f"{key}={list(allowed)}: leaves style {name} no texture; expected at least one of {list(own)}"
                )
        selected.append(
            replace(
                style,
                object_textures=tuple(kind for kind in style.object_textures if kind in objects),
                background_textures=tuple(kind for kind in style.background_textures if kind in backgrounds),
            )
        )
    return tuple(selected)
