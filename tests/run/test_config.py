"""Every config option composes, and the full-size configuration is exactly SAS's network."""

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from amodal_lightning.run.config import compose, config_dir

GROUPS = ["task", "data", "model", "trainer", "callbacks", "logger", "debug", "experiment", "recipe"]
SAS_UNET64_PARAMS = 82_960_130
# Groups whose options are `# @package _global_`: their keys are set from the config's root.
GLOBAL_GROUPS = ("debug", "experiment", "recipe")
# Set by train.yaml itself, which comes after its groups (`_self_` last).
OVERRIDDEN_BY_ROOT = {"task_name"}


def _leaves(tree: dict, prefix: str = ""):
    """(dotted key, value) of every non-dict value of ``tree``."""
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            yield from _leaves(value, f"{path}.")
        else:
            yield path, value


def _get(tree: dict, dotted: str):
    for part in dotted.split("."):
        tree = tree[part]
    return tree


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (config_dir() / group).glob("*.yaml"))


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_option_composes_and_resolves(group, option, tmp_path):
    overrides = [f"{group}={option}", f"paths.output_dir={tmp_path}"]
    # What the user must give (a root, an annotation file and its images, a format); nothing is read here.
    user_given = {
        "data.root": tmp_path,
        "data.annotations": f"{tmp_path}/a.json",
        "data.images": tmp_path,
        "data.format": "kins",
    }
    missing = OmegaConf.missing_keys(compose("train", overrides))
    overrides += [f"{key}={value}" for key, value in user_given.items() if key in missing]
    cfg = compose("train", overrides)
    # Resolving catches broken interpolations; nothing may be left mandatory except what the user must give.
    container = OmegaConf.to_container(cfg, resolve=True)
    assert not OmegaConf.missing_keys(cfg), f"{group}={option} leaves {OmegaConf.missing_keys(cfg)} unset"
    # The option's own settings reach the composed config (global-package options set keys anywhere).
    own = OmegaConf.load(config_dir() / group / f"{option}.yaml")
    own.pop("defaults", None)
    target = container if group in GLOBAL_GROUPS else container[group]
    for key, value in _leaves(OmegaConf.to_container(own, resolve=False)):
        if (isinstance(value, str) and ("${" in value or value == "???")) or key in OVERRIDDEN_BY_ROOT:
            continue  # an interpolation (resolved above), a value given on the command line, or the root's own
        assert _get(target, key) == value, f"{group}={option}: {key} is {_get(target, key)!r}, the file says {value!r}"


def test_default_config_uses_whatever_hardware_is_present(tmp_path):
    cfg = compose("train", [f"paths.output_dir={tmp_path}"])
    assert cfg.trainer.accelerator == "auto" and cfg.trainer.devices == "auto"
    assert cfg.trainer.max_steps > 0, "training must end"
    assert cfg.data.image_size == cfg.model.image_size


def test_no_device_ordinal_in_any_config():
    for path in config_dir().rglob("*.yaml"):
        text = path.read_text()
        assert "cuda:" not in text, f"{path} hard-codes a device"


@pytest.mark.parametrize("choice", [["model=unet64", "trainer.devices=auto"], ["experiment=sas_unet64"]])
def test_unet64_is_exactly_the_sas_network_and_recipe(tmp_path, golden_unet64_keys, choice):
    # The SAS experiment reads a SAS root (data.root is required); the model alone keeps the generated scenes.
    root = [f"data.root={tmp_path}"] if "experiment=sas_unet64" in choice else []
    cfg = compose("train", [*choice, f"paths.output_dir={tmp_path}", *root])
    optimizer = cfg.optimizer
    assert cfg.model.image_size == 64 and cfg.data.batch_size == 256
    assert optimizer.lr == 1e-4 and optimizer.weight_decay == 0.0 and optimizer.schedule == "constant"
    assert cfg.callbacks.ema.decay == 0.9999 and cfg.trainer.gradient_clip_val is None
    assert cfg.trainer.max_steps == 150_000 and cfg.trainer.max_time is None and cfg.data.front_layer_repeats == 1
    unet_kwargs = OmegaConf.to_container(cfg.model.module.unet, resolve=True)
    from amodal_lightning.models.unet import UNetModel

    with torch.device("meta"):
        net = UNetModel(**unet_kwargs)
    assert sum(p.numel() for p in net.parameters()) == SAS_UNET64_PARAMS == golden_unet64_keys["param_count"]
    ours = [(k, list(v.shape)) for k, v in net.state_dict().items()]
    assert ours == [(k, list(s)) for k, s in golden_unet64_keys["state_dict"]]
    diffusion = cfg.model.module.diffusion
    assert (diffusion.diffusion_steps, diffusion.noise_schedule, diffusion.variance_type) == (
        1000,
        "linear",
        "learned_range",
    )


def test_small_model_and_callbacks_instantiate(tmp_path):
    cfg = compose("train", [f"paths.output_dir={tmp_path}", "logger=csv"])
    module = instantiate(cfg.model.module, _convert_="all", _recursive_=False)
    x = torch.zeros(2, 5, cfg.model.image_size, cfg.model.image_size)
    assert module.net(x, torch.tensor([0, 999])).shape == (2, 2, cfg.model.image_size, cfg.model.image_size)
    for entry in cfg.callbacks.values():
        instantiate(entry, _convert_="all")
    for entry in cfg.logger.values():
        instantiate(entry, _convert_="all")


def test_wandb_logger_needs_no_account(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    cfg = compose("train", ["logger=wandb", f"paths.output_dir={tmp_path}"])
    logger = instantiate(cfg.logger.wandb, _convert_="all")
    logger.log_metrics({"x": 1.0}, step=0)
    # Disabled: a no-op run that writes nothing, with no account or network.
    assert logger.experiment.disabled
    assert not (tmp_path / "wandb").exists()


def test_the_quickstart_is_the_default_and_trains_as_before(tmp_path):
    cfg = compose("train", [f"paths.output_dir={tmp_path}"])
    optimizer = cfg.optimizer
    assert cfg.model.image_size == 32 and cfg.data.batch_size == 64 and cfg.data.front_layer_repeats == 4
    assert optimizer.lr == 3e-3 and optimizer.schedule == "linear_tail" and optimizer.decay_fraction == 0.2
    assert cfg.callbacks.ema.decay == 0.99 and cfg.trainer.gradient_clip_val == 1.0
    assert cfg.trainer.max_steps == 8000 and cfg.trainer.max_time == "00:00:09:00"
    assert cfg.model.module.validation.inference.steps == 10 == cfg.callbacks.panel.inference.steps
    # The panel's cheaper settings, the rest from conf/inference/default.yaml.
    panel = cfg.callbacks.panel.inference
    assert panel.ensemble_size == 2 and panel.batch_size == 16 and panel.combine == "sas"
    # The per-object task composes with the quickstart too.
    instance = compose("train", ["task=instance", f"paths.output_dir={tmp_path}"])
    assert instance.task._target_.endswith("InstanceTask") and instance.data.batch_size == 64


# Values one group takes from another, each a reference in conf/train.yaml: (key, the key it refers to).
CROSS_GROUP_REFERENCES = {
    "data.image_size": "model.image_size",
    "data.task": "task",
    "model.module.task": "task",
    "task.convention": "model.convention",
    "model.module.optimizer": "optimizer",
    "data.shuffle_seed": "seed",
}


@pytest.mark.parametrize("task", ["layers", "instance"])
def test_what_one_group_takes_from_another_is_a_reference(task, tmp_path):
    cfg = compose("train", [f"task={task}", f"paths.output_dir={tmp_path}"])
    as_written = OmegaConf.to_container(cfg, resolve=False)
    for key, source in CROSS_GROUP_REFERENCES.items():
        assert _get(as_written, key) == "${" + source + "}", f"{key} is not ${{{source}}}"
        assert OmegaConf.select(cfg, key) == OmegaConf.select(cfg, source)
    assert cfg.model.module.task._target_ == cfg.data.task._target_ == cfg.task._target_
    assert cfg.model.module.task.convention == cfg.model.convention


def test_no_group_file_reads_another_groups_keys_except_the_validation_steps_and_the_held_out_fractions():
    """Only conf/train.yaml wires groups together. The exceptions: the panels' sampling steps, which follow the
    module's validation and must not exist where the callbacks group leaves the panels out; and the held-out
    fractions of roots and annotation files, each command's own (`held_out`), which generated scenes do not have."""
    allowed = {
        ("callbacks", "${model.module.validation.inference.steps}"),
        ("data", "${held_out.val_fraction}"),
        ("data", "${held_out.test_fraction}"),
    }
    for path in config_dir().rglob("*.yaml"):
        group = path.relative_to(config_dir()).parts[0]
        text = path.read_text()
        for other in ("model", "data", "trainer", "callbacks", "task", "recipe", "experiment", "optimizer", "held_out"):
            if other == group or path.parent == config_dir():
                continue
            for start in [i for i in range(len(text)) if text.startswith("${" + other + ".", i)]:
                reference = text[start : text.index("}", start) + 1]
                assert (group, reference) in allowed, f"{path} reads {reference}"
