"""Convert a SAS checkpoint (``savedmodel*.pt`` or ``emasavedmodel*.pt``) into a checkpoint of ours.

    python -m amodal_lightning.convert_sas SAS.pt OUT.ckpt [--image_size 64 --num_channels 128 ...]

The SAS flags are optional: they are inferred from the weights' shapes, and any flag given (spelled as for the
SAS scripts) overrides the inferred value. The result holds the weights and everything needed to rebuild the model
(network, diffusion, SAS input convention), so ``ckpt_path=OUT.ckpt`` works for training (a new run starting from
these weights) and for inference, with no flags repeated.
"""

from __future__ import annotations

from amodal_lightning.openmp import apply_spin_settings

apply_spin_settings()  # before torch or Lightning load OpenMP, which reads its wait settings once

import argparse
from pathlib import Path

import lightning as L
import torch

from amodal_lightning.callbacks.run_config import RUN_CONFIG_KEY
from amodal_lightning.checkpoints import STATE_DICT_KEY
from amodal_lightning.compat.sas import (
    SAS_DEFAULT_FLAGS,
    infer_sas_flags,
    load_sas_unet,
    read_sas_state_dict,
    unet_kwargs_from_sas_flags,
)
from amodal_lightning.config import user_errors_as_one_line
from amodal_lightning.errors import ConfigError
from amodal_lightning.models.module import AmodalDiffusionModule

NET_PREFIX = "net."


def sas_module_hparams(flags: dict) -> dict:
    """Our module's hyperparameters for a SAS model trained with ``flags``."""
    if not flags.get("learn_sigma", True):
        # SAS builds two output channels whatever this flag says; only its learned-variance setup was released.
        raise ConfigError("--learn_sigma False is not supported: SAS checkpoints are trained with a learned variance")
    return {
        "unet": unet_kwargs_from_sas_flags(flags),
        "diffusion": {
            "diffusion_steps": int(flags.get("diffusion_steps", 1000)),
            "noise_schedule": flags.get("noise_schedule", "linear"),
            "prediction_type": "sample" if flags.get("predict_xstart", False) else "epsilon",
            "variance_type": "learned_range",
            "loss_type": "hybrid",
            "timestep_sampling": "uniform",
        },
        "task": {"name": "sequential_layers", "convention": "sas"},
        "optimizer": {"lr": float(flags.get("lr", 1e-4)), "weight_decay": float(flags.get("weight_decay", 0.0))},
    }


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
        RUN_CONFIG_KEY: {"model": {"image_size": hparams["unet"]["image_size"], "module": hparams}, "sas_flags": merged},
        "converted_from": str(Path(sas_path).resolve()),
    }
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, out_path)
    return out_path


def _parse_flag_value(text: str):
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sas_checkpoint", help="SAS savedmodel*.pt or emasavedmodel*.pt")
    parser.add_argument("output", help="checkpoint to write (.ckpt)")
    args, extra = parser.parse_known_args(argv)
    with user_errors_as_one_line():
        if len(extra) % 2:
            raise ConfigError(f"SAS flags come in '--name value' pairs; got {' '.join(extra)}")
        flags = {}
        for name, value in zip(extra[::2], extra[1::2]):
            if not name.startswith("--"):
                raise ConfigError(f"expected a SAS flag like --num_channels, got {name!r}")
            flags[name[2:]] = _parse_flag_value(value)
        path = convert(args.sas_checkpoint, args.output, flags)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
