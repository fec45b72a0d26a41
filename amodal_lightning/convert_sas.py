"""Convert a SAS checkpoint (``savedmodel*.pt`` or ``emasavedmodel*.pt``) into a checkpoint of ours.

    python -m amodal_lightning.convert_sas SAS.pt OUT.ckpt [--sas_args FILE] [--image_size 64 --num_heads 1 ...]

The SAS flags are optional: those that shape the weights are read from them, and any flag given (spelled as for
the SAS scripts, or written in ``--sas_args FILE``: SAS's command line or argparse printout) overrides what was read.
Some flags leave no trace in the weights (:data:`NOT_IN_WEIGHTS`: the image size, head counts, the diffusion);
each one not given is assumed to be SAS's default, and the command says so, one line per flag. The result holds the
weights and everything needed to rebuild the model (network, diffusion, SAS input convention), so
``ckpt_path=OUT.ckpt`` works for training (a new run starting from these weights) and for inference, with no flags
repeated.
"""

from __future__ import annotations

from amodal_lightning.run.openmp import apply_spin_settings

apply_spin_settings()  # before torch or Lightning load OpenMP, which reads its wait settings once

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L

from amodal_lightning.compat.sas import (
    SAS_DEFAULT_FLAGS,
    infer_sas_flags,
    load_sas_unet,
    read_sas_state_dict,
    unet_kwargs_from_sas_flags,
)
from amodal_lightning.compat.sas_args import parse_flag_value, read_sas_args
from amodal_lightning.errors import ConfigError
from amodal_lightning.models.module import AmodalDiffusionModule
from amodal_lightning.run.checkpoint_io import atomic_torch_save
from amodal_lightning.run.checkpoints import RUN_CONFIG_KEY, STATE_DICT_KEY
from amodal_lightning.run.config import user_errors_as_one_line
from amodal_lightning.task_config import LAYERS_TASK, TARGET_KEY

NET_PREFIX = "net."
# SAS's training defaults for what a converted checkpoint needs to start a run (scripts/train.py).
SAS_TRAINING_DEFAULTS = {"lr": 1e-4, "weight_decay": 0.0}
# Flags that change what the converted model computes (or how a run from it trains) but leave no trace in the weights,
# with the value assumed when not given. Head counts split the same attention weights differently; the image size
# places the attention levels and sets the input size; the diffusion flags set the schedule and what is predicted.
NOT_IN_WEIGHTS: dict[str, Any] = {
    **{
        name: SAS_DEFAULT_FLAGS[name]
        for name in (
            "image_size",
            "num_heads",
            "num_head_channels",
            "num_heads_upsample",
            "use_new_attention_order",
            "dropout",
            "diffusion_steps",
            "noise_schedule",
            "predict_xstart",
        )
    },
    **SAS_TRAINING_DEFAULTS,
}
# Flags that are read from the weights' shapes (a flag given must agree with them).
READ_FROM_WEIGHTS = (
    "num_channels",
    "num_res_blocks",
    "channel_mult",
    "attention_resolutions",
    "use_scale_shift_norm",
    "resblock_updown",
    "in_channels",
    "out_channels",
    "learn_sigma",
)
# SAS flags that play no part in a converted checkpoint (data, logging, batching, checkpointing, fp16 training).
IGNORED_SAS_FLAGS = frozenset(
    {
        "data_dir",
        "save_dir",
        "noise_rate",
        "schedule_sampler",
        "lr_anneal_steps",
        "batch_size",
        "microbatch",
        "ema_rate",
        "log_interval",
        "save_interval",
        "resume_checkpoint",
        "use_fp16",
        "fp16_scale_growth",
        "use_checkpoint",
        "timestep_respacing",
        "use_kl",
        "rescale_timesteps",
        "rescale_learned_sigmas",
        "class_cond",
    }
)
KNOWN_SAS_FLAGS = frozenset(SAS_DEFAULT_FLAGS) | frozenset(NOT_IN_WEIGHTS) | frozenset(READ_FROM_WEIGHTS)


def sas_module_hparams(flags: dict) -> dict:
    """Our module's hyperparameters for a SAS model trained with ``flags``."""
    if not flags.get("learn_sigma", True):
        # SAS builds two output channels whatever this flag says; only its learned-variance setup was released.
        raise ConfigError("--learn_sigma False is not supported: SAS checkpoints are trained with a learned variance")
    return {
        "unet": unet_kwargs_from_sas_flags(flags),
        "diffusion": {
            "diffusion_steps": int(flags.get("diffusion_steps", NOT_IN_WEIGHTS["diffusion_steps"])),
            "noise_schedule": flags.get("noise_schedule", NOT_IN_WEIGHTS["noise_schedule"]),
            "prediction_type": "sample" if flags.get("predict_xstart", NOT_IN_WEIGHTS["predict_xstart"]) else "epsilon",
            "variance_type": "learned_range",
            "loss_type": "hybrid",
            "timestep_sampling": "uniform",
        },
        "task": {TARGET_KEY: LAYERS_TASK, "convention": "sas"},
        "optimizer": {
            "lr": float(flags.get("lr", NOT_IN_WEIGHTS["lr"])),
            "weight_decay": float(flags.get("weight_decay", NOT_IN_WEIGHTS["weight_decay"])),
        },
    }


def assumed_flags(given: Mapping[str, Any]) -> dict[str, Any]:
    """The flags of :data:`NOT_IN_WEIGHTS` that ``given`` lacks, with the value a conversion assumes for each."""
    return {name: value for name, value in NOT_IN_WEIGHTS.items() if name not in given}


def assumption_lines(assumed: Mapping[str, Any]) -> list[str]:
    """One line per assumed flag: its value, and how to say otherwise."""
    return [
        f"assumed --{name} {value} (SAS's default; the weights cannot show it): if the model was trained "
        f"otherwise, pass --{name} VALUE or --sas_args FILE"
        for name, value in assumed.items()
    ]


def convert(sas_path: str | Path, out_path: str | Path, flags: dict | None = None) -> Path:
    """Write ``out_path``: the SAS weights under our key names plus the hyperparameters to rebuild the model."""
    flags = dict(flags or {})
    state_dict = read_sas_state_dict(sas_path)
    image_size = int(flags.get("image_size", SAS_DEFAULT_FLAGS["image_size"]))
    merged = {**SAS_DEFAULT_FLAGS, **infer_sas_flags(state_dict, image_size=image_size), **flags}
    # Loading checks, with a one-line error naming the first key, that the weights fit the flags.
    net = load_sas_unet(state_dict, merged)
    hparams = sas_module_hparams(merged)
    module = AmodalDiffusionModule(**hparams)
    module.net.load_state_dict(net.state_dict())
    checkpoint = {
        STATE_DICT_KEY: module.state_dict(),
        "hyper_parameters": hparams,
        "pytorch-lightning_version": L.__version__,
        RUN_CONFIG_KEY: {
            "model": {"image_size": hparams["unet"]["image_size"], "module": hparams},
            "sas_flags": merged,
            "sas_flags_assumed": sorted(assumed_flags(flags)),
        },
        "converted_from": str(Path(sas_path).resolve()),
    }
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_torch_save(checkpoint, out_path)
    return out_path


def _help_epilog() -> str:
    assumed = ", ".join(f"--{name} {value}" for name, value in NOT_IN_WEIGHTS.items())
    return (
        "SAS flags, spelled as for SAS's scripts (--name value); each overrides what is read or assumed:\n"
        f"  read from the weights: {', '.join('--' + name for name in READ_FROM_WEIGHTS)}\n"
        f"  not in the weights, assumed unless given: {assumed}\n"
        "--sas_args FILE reads them from SAS's command line or argparse printout; flags given on the command line "
        "win over the file."
    )


def command_line_flags(extra: list[str]) -> dict[str, Any]:
    """The ``--name value`` pairs after the two paths, as SAS flags; unknown names are refused in one line."""
    if len(extra) % 2:
        raise ConfigError(f"SAS flags come in '--name value' pairs; got {' '.join(extra)}")
    flags = {}
    for name, value in zip(extra[::2], extra[1::2]):
        if not name.startswith("--"):
            raise ConfigError(f"expected a SAS flag like --num_channels, got {name!r}")
        if name[2:] not in KNOWN_SAS_FLAGS | IGNORED_SAS_FLAGS:
            raise ConfigError(f"{name}: not a SAS model or diffusion flag (--help lists the flags this command reads)")
        flags[name[2:]] = parse_flag_value(value)
    return flags


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=_help_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("sas_checkpoint", help="SAS savedmodel*.pt or emasavedmodel*.pt")
    parser.add_argument("output", help="checkpoint to write (.ckpt)")
    parser.add_argument("--sas_args", metavar="FILE", help="SAS's flags as written down: its command line or printout")
    args, extra = parser.parse_known_args(argv)
    with user_errors_as_one_line():
        flags = read_sas_args(args.sas_args, KNOWN_SAS_FLAGS) if args.sas_args else {}
        flags.update(command_line_flags(extra))
        path = convert(args.sas_checkpoint, args.output, flags)
    for line in assumption_lines(assumed_flags(flags)):
        print(line)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
