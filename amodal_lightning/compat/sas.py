"""SAS compatibility: SAS command-line flags -> our UNet kwargs, and SAS checkpoints -> a loaded :class:`UNetModel`.

SAS (saraao/SAS) trains with ``guided_diffusion.script_util.create_model``, which hardcodes the 5-channel input
(RGB + occlusion mask + noisy amodal mask) and a 2-channel output (eps + variance interpolation) whatever
``learn_sigma`` says, and turns ``--attention_resolutions`` (feature-map sizes) into downsampling factors.
The functions here replicate that mapping, so the same flags give the same architecture and the same keys.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from amodal_lightning.errors import CheckpointError, ConfigError
from amodal_lightning.models.unet import RESAMPLE_FACTOR, UNetModel
from amodal_lightning.run.checkpoints import STATE_DICT_KEY, refused_object

SAS_IN_CHANNELS = 5  # RGB + cumulative occlusion mask + noisy amodal mask
SAS_OUT_CHANNELS = 2  # eps + variance interpolation; create_model hardcodes it even when learn_sigma is False
# create_model's channel_mult for channel_mult="" (it rejects any other image size)
SAS_CHANNEL_MULT_BY_SIZE = {
    512: (1, 1, 2, 2, 4, 4),
    256: (1, 1, 2, 2, 4, 4),
    128: (1, 1, 2, 3, 4),
    64: (1, 2, 3, 4),
}
# The flags of SAS's unet64 training command (scripts/train.py argparser defaults + the README command line).
SAS_DEFAULT_FLAGS: dict[str, Any] = {
    "image_size": 64,
    "num_channels": 128,
    "num_res_blocks": 2,
    "num_heads": 1,
    "num_heads_upsample": -1,
    "num_head_channels": -1,
    "attention_resolutions": "16",
    "channel_mult": "",
    "dropout": 0.0,
    "class_cond": False,
    "use_checkpoint": False,
    "use_scale_shift_norm": False,
    "resblock_updown": False,
    "use_fp16": False,
    "use_new_attention_order": False,
    "learn_sigma": True,
    "diffusion_steps": 1000,
    "noise_schedule": "linear",
    "timestep_respacing": "",
    "use_kl": False,
    "predict_xstart": False,
    "rescale_timesteps": False,
    "rescale_learned_sigmas": False,
}
DDP_PREFIX = "module."
SAS_CHECKPOINT_KINDS = "a SAS savedmodel*.pt or emasavedmodel*.pt state dict"
_TRUE_WORDS = ("yes", "true", "t", "y", "1")  # SAS's str2bool vocabulary
_FALSE_WORDS = ("no", "false", "f", "n", "0")


# ---------------------------------------------------------------------------------------------------- flags


def _bad(name: str, value: Any, expected: str) -> ConfigError:
    return ConfigError(f"SAS flag {name}={value!r}: expected {expected}")


def _int_flag(flags: Mapping[str, Any], name: str, minimum: int | None = None) -> int:
    value = flags[name]
    try:
        if isinstance(value, bool) or float(value) != int(value):
            raise ValueError
        number = int(value)
    except (TypeError, ValueError):
        raise _bad(name, value, "an integer") from None
    if minimum is not None and number < minimum:
        raise _bad(name, value, f"an integer >= {minimum}")
    return number


def _heads_flag(flags: Mapping[str, Any], name: str) -> int:
    number = _int_flag(flags, name)
    if number != -1 and number < 1:
        raise _bad(name, flags[name], "a positive integer or -1")
    return number


def _bool_flag(flags: Mapping[str, Any], name: str) -> bool:
    value = flags[name]
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _TRUE_WORDS + _FALSE_WORDS:
        return value.lower() in _TRUE_WORDS
    raise _bad(name, value, "a boolean")


def _int_list_flag(flags: Mapping[str, Any], name: str) -> list[int]:
    """A SAS comma string ("16,8"), or a list/int as Hydra may give it, as positive integers."""
    value = flags[name]
    items = value.split(",") if isinstance(value, str) else [value] if isinstance(value, int) else value
    try:
        numbers = [int(str(item).strip()) for item in items if str(item).strip()]
    except (TypeError, ValueError):
        raise _bad(name, value, "comma-separated positive integers") from None
    if any(n < 1 for n in numbers):
        raise _bad(name, value, "comma-separated positive integers")
    return numbers


def unet_kwargs_from_sas_flags(flags: Mapping[str, Any]) -> dict[str, Any]:
    """:class:`UNetModel` kwargs for SAS flags, exactly as SAS's ``create_model`` builds its UNet.

    Flags not given fall back to :data:`SAS_DEFAULT_FLAGS`; flags that do not shape the network are ignored.
    Beyond SAS's own flags, ``in_channels``/``out_channels`` may override SAS's hardcoded 5 and 2 (for forks).
    Raises :class:`ConfigError` naming the flag on a value SAS could not use either.
    """
    flags = {**SAS_DEFAULT_FLAGS, **flags}
    if _bool_flag(flags, "class_cond"):
        raise _bad("class_cond", flags["class_cond"], "False (class-conditional SAS models are not supported)")
    image_size = _int_flag(flags, "image_size", minimum=1)
    if isinstance(flags["channel_mult"], str) and not flags["channel_mult"].strip():
        if image_size not in SAS_CHANNEL_MULT_BY_SIZE:
            raise _bad(
                "image_size",
                image_size,
                f"one of {sorted(SAS_CHANNEL_MULT_BY_SIZE)} when channel_mult is '' (or give channel_mult)",
            )
        channel_mult = list(SAS_CHANNEL_MULT_BY_SIZE[image_size])
    else:
        channel_mult = _int_list_flag(flags, "channel_mult")
        if not channel_mult:
            raise _bad("channel_mult", flags["channel_mult"], "at least one multiplier")
    dropout = flags["dropout"]
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise _bad("dropout", dropout, "a number in [0, 1)")
    return {
        "image_size": image_size,
        "in_channels": _int_flag({"in_channels": SAS_IN_CHANNELS, **flags}, "in_channels", minimum=1),
        "model_channels": _int_flag(flags, "num_channels", minimum=1),
        "out_channels": _int_flag({"out_channels": SAS_OUT_CHANNELS, **flags}, "out_channels", minimum=1),
        "num_res_blocks": _int_flag(flags, "num_res_blocks", minimum=0),
        # SAS gives feature-map sizes; the UNet wants downsampling factors (floor division, as SAS does)
        "attention_resolutions": [image_size // res for res in _int_list_flag(flags, "attention_resolutions")],
        "dropout": float(dropout),
        "channel_mult": channel_mult,
        "num_heads": _heads_flag(flags, "num_heads"),
        "num_head_channels": _heads_flag(flags, "num_head_channels"),
        "num_heads_upsample": _heads_flag(flags, "num_heads_upsample"),
        "use_scale_shift_norm": _bool_flag(flags, "use_scale_shift_norm"),
        "resblock_updown": _bool_flag(flags, "resblock_updown"),
        "use_new_attention_order": _bool_flag(flags, "use_new_attention_order"),
    }


# ------------------------------------------------------------------------------------------------ checkpoints


def _strip_ddp_prefix(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    return {k[len(DDP_PREFIX) :] if k.startswith(DDP_PREFIX) else k: v for k, v in state_dict.items()}


def _first_line(text: str, limit: int = 200) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def read_sas_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a SAS ``savedmodel*.pt`` / ``emasavedmodel*.pt`` on the CPU, dropping any DDP ``module.`` prefix.

    Raises :class:`CheckpointError` naming the file when it is missing, unreadable or not a state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"SAS checkpoint {path} does not exist (expected {SAS_CHECKPOINT_KINDS})")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or foreign files
        if (name := refused_object(exc)) is not None:
            raise CheckpointError(
                f"SAS checkpoint {path} names the Python object {name}, which loading would run: refused "
                f"(expected {SAS_CHECKPOINT_KINDS}: tensors only)"
            ) from None
        raise CheckpointError(
            f"SAS checkpoint {path} could not be read ({type(exc).__name__}: {_first_line(str(exc))}); "
            f"expected {SAS_CHECKPOINT_KINDS}"
        ) from exc
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"SAS checkpoint {path} holds a {type(obj).__name__}, expected {SAS_CHECKPOINT_KINDS}")
    if STATE_DICT_KEY in obj:
        raise CheckpointError(
            f"SAS checkpoint {path} is already a checkpoint of ours (it has '{STATE_DICT_KEY}'): pass it as "
            "ckpt_path directly"
        )
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise CheckpointError(
                f"SAS checkpoint {path} entry {key!r} is a {type(value).__name__}, not a tensor; "
                f"expected {SAS_CHECKPOINT_KINDS}"
            )
    return _strip_ddp_prefix(obj)


_BLOCK_KEY = re.compile(r"^output_blocks\.(\d+)\.(\d+)\.(.+)$")


def _shape(state_dict: Mapping[str, torch.Tensor], key: str) -> tuple[int, ...]:
    if key not in state_dict:
        raise CheckpointError(f"SAS state dict has no key {key}: not a SAS UNet checkpoint")
    return tuple(state_dict[key].shape)


def infer_sas_flags(state_dict: Mapping[str, torch.Tensor], image_size: int = SAS_DEFAULT_FLAGS["image_size"]) -> dict:
    """Recover the SAS flags that shape a UNet from its state dict's key shapes (best effort).

    Recovers num_channels, num_res_blocks, channel_mult, attention_resolutions (as feature-map sizes at
    ``image_size``, which weights cannot reveal), use_scale_shift_norm, resblock_updown, in/out_channels and
    learn_sigma. Head counts, the attention order and dropout leave no trace in the weights and are not returned.
    learn_sigma is read as "two output channels", which SAS always builds: it reflects SAS's own setting (True).
    """
    state_dict = _strip_ddp_prefix(state_dict)
    model_channels, in_channels = _shape(state_dict, "input_blocks.0.0.weight")[:2]
    out_channels = _shape(state_dict, "out.2.weight")[0]

    # output block index -> {sub-module index -> parameter names}
    blocks: dict[int, dict[int, set[str]]] = {}
    for key in state_dict:
        if match := _BLOCK_KEY.match(key):
            blocks.setdefault(int(match[1]), {}).setdefault(int(match[2]), set()).add(match[3])
    if not blocks:
        raise CheckpointError("SAS state dict has no output_blocks.* keys: not a SAS UNet checkpoint")

    def is_res(names: set[str]) -> bool:
        return "in_layers.0.weight" in names

    def upsamples(block: dict[int, set[str]]) -> bool:
        # a conv Upsample, or a resampling ResBlock after the block's main ResBlock
        return any("conv.weight" in names or (sub > 0 and is_res(names)) for sub, names in block.items())

    up_at = [index for index in sorted(blocks) if upsamples(blocks[index])]
    # every decoder level has num_res_blocks + 1 blocks; all but the last end with the upsampler
    num_res_blocks = up_at[0] if up_at else len(blocks) - 1
    levels = len(blocks) // (num_res_blocks + 1)

    channel_mult, attention_ds = [], []
    for level in range(levels):
        first = (levels - 1 - level) * (num_res_blocks + 1)  # the decoder runs the levels in reverse
        width = _shape(state_dict, f"output_blocks.{first}.0.out_layers.3.weight")[0]
        if width % model_channels:
            raise CheckpointError(
                f"SAS weight output_blocks.{first}.0.out_layers.3.weight has {width} channels, "
                f"expected a multiple of num_channels={model_channels}"
            )
        channel_mult.append(width // model_channels)
        if any("qkv.weight" in names for names in blocks[first].values()):
            attention_ds.append(RESAMPLE_FACTOR**level)

    mid_width = _shape(state_dict, "middle_block.0.out_layers.3.weight")[0]
    mid_emb = _shape(state_dict, "middle_block.0.emb_layers.1.weight")[0]
    return {
        "num_channels": model_channels,
        "num_res_blocks": num_res_blocks,
        "channel_mult": ",".join(map(str, channel_mult)),
        "attention_resolutions": ",".join(str(image_size // ds) for ds in attention_ds),
        "use_scale_shift_norm": mid_emb == 2 * mid_width,
        "resblock_updown": any(sub > 0 and is_res(names) for b in blocks.values() for sub, names in b.items()),
        "in_channels": in_channels,
        "out_channels": out_channels,
        "learn_sigma": out_channels == SAS_OUT_CHANNELS,
    }


def load_sas_unet(
    state_dict: Mapping[str, torch.Tensor],
    flags: Mapping[str, Any] | None = None,
    attention_backend: str = "reference",
) -> UNetModel:
    """Build a :class:`UNetModel` for a SAS state dict and load it with ``strict=True``.

    The architecture comes from :data:`SAS_DEFAULT_FLAGS`, overlaid by what :func:`infer_sas_flags` reads from
    the weights, overlaid by ``flags``. Raises :class:`CheckpointError` naming the first key whose shape (or
    presence) does not match what the flags build.
    """
    explicit = dict(flags or {})
    state_dict = _strip_ddp_prefix(state_dict)
    image_size = _int_flag({**SAS_DEFAULT_FLAGS, **explicit}, "image_size", minimum=1)
    merged = {**SAS_DEFAULT_FLAGS, **infer_sas_flags(state_dict, image_size=image_size), **explicit}
    kwargs = unet_kwargs_from_sas_flags(merged)
    # built on meta: the strict load below overwrites every parameter, so initialising them would be wasted work
    with torch.device("meta"):
        model = UNetModel(**kwargs, attention_backend=attention_backend)

    expected = model.state_dict()
    for key, param in expected.items():
        if key not in state_dict:
            raise CheckpointError(f"SAS state dict lacks {key} (expected shape {tuple(param.shape)} from the flags)")
        found = state_dict[key]
        if not isinstance(found, torch.Tensor):
            raise CheckpointError(f"SAS state dict entry {key} is a {type(found).__name__}, not a tensor")
        if found.shape != param.shape:
            raise CheckpointError(
                f"SAS weight {key}: expected shape {tuple(param.shape)} from the flags, found {tuple(found.shape)}"
            )
    for key in state_dict:
        if key not in expected:
            raise CheckpointError(f"SAS state dict has unexpected key {key} for the flags {kwargs}")

    model = model.to_empty(device="cpu")
    model.load_state_dict(state_dict, strict=True)
    return model
