"""Every one-line config error names a key the user can set: a value of the wrong type or a key that does not exist is
refused by the schemas naming its full key, errors raised inside what a config builds are named by their full config
key, and every key an error names exists."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from amodal_lightning.errors import ConfigError
from amodal_lightning.run.config import at_path, compose, instantiate_at, user_errors_as_one_line
from amodal_lightning.train import instantiate_group

PACKAGE = Path(__file__).resolve().parents[2] / "amodal_lightning"
# The first string of each `ConfigError(...)` and the key it starts with (`key=value: ...`, `key: ...`, `key, ...`).
CONFIG_ERROR = re.compile(r"ConfigError\(\s*f?(['\"])(.*?)\1", re.S)
LEADING_KEY = re.compile(r"^([A-Za-z_][\w{}\[\]]*(?:\.[\w{}\[\]]+)*)(?=[=:,])")
# A placeholder that is a module constant (`{TASK_KEY}`), resolved from the module itself.
CONSTANT = re.compile(r"\{([A-Z][A-Z0-9_]*)\}")
# Where the errors of each module are named by the caller: the config path instantiate_at (or the module that
# builds it) puts in front of the argument the error names.
PREFIX = {
    "data/datamodule.py": "data",
    "data/sources/base.py": "data",
    "data/sources/scenes.py": "data",
    "data/sources/sas.py": "data",
    "data/sources/objects.py": "data",
    "data/sources/annotations.py": "data",
    "data/scenes.py": "data.synthetic",
    "models/module.py": "model.module",
    "models/unet.py": "model.module.unet",
    "diffusion/gaussian.py": "model.module.diffusion",
    "diffusion/respace.py": "model.module.diffusion",
    "diffusion/schedules.py": "model.module.diffusion",
}
# The config keys an InferenceConfig is read from; its errors and the combination rules' are named under each.
INFERENCE_KEYS = (
    "inference",
    "callbacks.panel.inference",
    "model.module.validation.inference",
)
# A key that starts with one of these is already full (raised after instantiation, e.g. at setup).
ROOT_KEYS = ("data", "model", "trainer", "callbacks", "task", "logger")
INFERENCE_MODULES = ("models/sampling.py",)
# Errors of arguments that no config sets: SAS's command-line flags, programmatic arguments of library functions,
# and values computed from other keys.
NOT_CONFIG_KEYS = {
    ("data/scenes.py", "write_sas_dataset"),  # a function's argument (tests, scripts)
    ("data/scenes.py", "image_size"),  # the data's size, reported as model.image_size by the data module
    ("diffusion/gaussian.py", "start_step"),  # a sampler argument (benchmarks)
    ("metrics/objects.py", "occlusion_buckets"),  # computed from occlusion_edges
    ("run/config.py", "model.module.task.name"),  # the refusal of a key that moved to the task group
    ("task_config.py", "task.name"),  # an old checkpoint's task name (configs name the class with task._target_)
}


def _composed_configs(tmp: Path) -> list:
    """Every entry config, and train with each option that adds keys, composed with what the user must give."""
    train = [f"paths.output_dir={tmp}"]
    root = [f"data.root={tmp}"]  # what data=sas and data=objects require
    configs = [
        compose("train", [*train, *extra])
        for extra in (
            [],
            ["task=instance"],
            ["logger=wandb"],
            ["data=sas", *root],
            ["data=objects", *root],
            ["model=unet64"],
            ["task=gestalt"],
        )
    ]
    configs.append(compose("train", [train[0], "data=cocoa", f"data.annotations={tmp}/a.json", f"data.images={tmp}"]))
    for name in ("predict", "evaluate", "score", "check", "convert", "demo"):
        configs.append(compose(name, ["data=sas"] if name in ("evaluate", "convert") else []))
    return configs


def _exists(configs, key: str) -> bool:
    missing = object()
    return any(OmegaConf.select(cfg, key, default=missing, throw_on_missing=False) is not missing for cfg in configs)


def _named_keys() -> list[tuple[str, str]]:
    """(module, full config key) of every ConfigError raised in the package that starts with a key."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = path.relative_to(PACKAGE).as_posix()
        module = importlib.import_module("amodal_lightning." + name.removesuffix(".py").replace("/", "."))
        for match in CONFIG_ERROR.finditer(path.read_text()):
            text = CONSTANT.sub(lambda m, module=module: str(getattr(module, m.group(1), m.group(0))), match.group(2))
            lead = LEADING_KEY.match(text)
            if not lead or (name, lead.group(1)) in NOT_CONFIG_KEYS:
                continue
            key = lead.group(1)
            if key.startswith("{key}."):
                if name in INFERENCE_MODULES:
                    found += [(name, key.replace("{key}", prefix)) for prefix in INFERENCE_KEYS]
                continue
            if "{" in key:
                continue  # a key chosen at run time (an unknown key, a loop over arguments): tested where raised
            if name in INFERENCE_MODULES:
                found += [(name, f"{prefix}.{key}") for prefix in INFERENCE_KEYS]
            elif name in PREFIX and key.split(".")[0] not in ROOT_KEYS:
                found.append((name, f"{PREFIX[name]}.{key}"))
            else:
                found.append((name, key))
    return found


def test_every_key_a_config_error_names_exists(tmp_path):
    configs = _composed_configs(tmp_path)
    named = _named_keys()
    assert len(named) > 50, "the walk found the errors"
    absent = sorted({f"{module}: {key}" for module, key in named if not _exists(configs, key)})
    assert not absent, f"errors name keys no config has: {absent}"


# (entry config, override, the full key the error names): a value of the wrong type or a key no schema has.
REFUSED = [
    ("train", "optimizer.lr=abc", "optimizer.lr"),
    ("train", "optimizer.lr=true", "optimizer.lr"),
    ("train", "optimizer.learning_rate=1", "optimizer.learning_rate"),
    ("train", "optimizer.betas=[0.9,x]", "optimizer.betas[1]"),
    ("train", "seed=abc", "seed"),
    ("train", "final_validation=maybe", "final_validation"),
    ("train", "ckpt_path=[1]", "ckpt_path"),
    ("train", "model.image_size=big", "model.image_size"),
    ("train", "model.convention=[sas]", "model.convention"),
    ("train", "model.module.self_condition=half", "model.module.self_condition"),
    ("train", "model.module.performance.fused_adamw=maybe", "model.module.performance.fused_adamw"),
    ("train", "model.module.performance.fast=true", "model.module.performance.fast"),
    ("train", "model.module.validation.num_batches=1.5", "model.module.validation.num_batches"),
    ("train", "model.module.validation.inference.stepz=1", "model.module.validation.inference.stepz"),
    # The network and the diffusion: the signatures of UNetModel and of the diffusion builder's chain.
    ("train", "model.module.unet.nope=1", "model.module.unet.nope"),
    ("train", "model.module.unet.model_channels=abc", "model.module.unet.model_channels"),
    ("train", "model=unet64 model.module.unet.in_channels=five", "model.module.unet.in_channels"),
    ("train", "model.module.unet.use_scale_shift_norm=maybe", "model.module.unet.use_scale_shift_norm"),
    ("train", "model.module.diffusion.nope=1", "model.module.diffusion.nope"),
    ("train", "model.module.diffusion.diffusion_steps=many", "model.module.diffusion.diffusion_steps"),
    ("train", "model.module.diffusion.high_noise_power=strong", "model.module.diffusion.high_noise_power"),
    ("train", "callbacks.ema.decay=high", "callbacks.ema.decay"),
    ("train", "callbacks.ema.rate=0.9", "callbacks.ema.rate"),
    ("train", "callbacks.panel.inference.ensemble_size=two", "callbacks.panel.inference.ensemble_size"),
    # The task and data groups: one schema per class (a task's, the data module's with its source's).
    ("train", "task.crop=true", "task.crop"),  # the layer task has no crops
    ("train", "task=instance task.crop_factor=big", "task.crop_factor"),
    ("train", "task=instance task.cropfactor=2", "task.cropfactor"),
    ("train", "task=gestalt task.min_crop_size=x", "task.min_crop_size"),
    ("train", "task=gestalt task.hidden_rgb_weight=heavy", "task.hidden_rgb_weight"),
    ("train", "data.batch_size=many", "data.batch_size"),
    ("train", "data.shuffle=true", "data.shuffle"),
    ("train", "data.synthetic.max_objects=abc", "data.synthetic.max_objects"),
    ("train", "data.synthetic.num_val=some", "data.synthetic.num_val"),
    ("train", "data.synthetic.nope=1", "data.synthetic.nope"),
    ("train", "data.root=/data", "data.root"),  # generated scenes have no root
    ("train", "data=sas data.split_seed=x", "data.split_seed"),
    ("train", "data=sas data.synthetic.seed=1", "data.synthetic"),
    ("train", "data=kins data.min_visible_pixels=x", "data.min_visible_pixels"),
    ("train", "held_out.val_fraction=x", "held_out.val_fraction"),
    ("evaluate", "data=synthetic data.synthetic.num_test=x", "data.synthetic.num_test"),
    ("check", "data.validate_file=true", "data.validate_file"),
    ("convert", "data=objects data.noise_root=/x", "data.noise_root"),
    ("predict", "inference.steps=x", "inference.steps"),
    ("predict", "inference.stepz=1", "inference.stepz"),
    ("predict", "seed=x", "seed"),
    ("evaluate", "num_images=all", "num_images"),
    ("evaluate", "teacher_forced=maybe", "teacher_forced"),
    ("score", "min_visible_pixels=x", "min_visible_pixels"),
    ("score", "occlusion_edges=[a]", "occlusion_edges[0]"),
    ("check", "deep=maybe", "deep"),
    ("convert", "image_size=x", "image_size"),
    ("demo", "port=x", "port"),
    ("demo", "open_scene=first", "open_scene"),
]


@pytest.mark.parametrize("entry,override,key", REFUSED, ids=[f"{e}:{o}" for e, o, _ in REFUSED])
def test_a_wrong_type_or_unknown_key_is_refused_in_one_line_naming_the_full_key(entry, override, key, capsys):
    overrides = ["paths.output_dir=.", *override.split()] if entry == "train" else override.split()
    with pytest.raises(SystemExit) as exit_info, user_errors_as_one_line():
        compose(entry, overrides)
    assert exit_info.value.code == 2
    line = capsys.readouterr().err.strip()
    assert "\n" not in line and line.startswith(f"error: {key}: "), line


def test_a_config_file_with_a_key_its_schema_lacks_is_refused_naming_it(tmp_path, capsys):
    (tmp_path / "extra").mkdir()
    (tmp_path / "extra" / "typo.yaml").write_text("# @package _global_\noptimizer:\n  lrate: 1e-3\n")
    with pytest.raises(SystemExit), user_errors_as_one_line():
        compose("train", ["paths.output_dir=.", f"hydra.searchpath=[file://{tmp_path}]", "+extra=typo"])
    assert "optimizer.lrate" in capsys.readouterr().err


def test_a_mistake_on_the_command_line_is_one_line_naming_the_key(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(PACKAGE.parent), "HYDRA_FULL_ERROR": "0"}
    cases = [
        (["optimizer.lr=abc"], "optimizer.lr"),
        (["model=unet99"], "model/unet99"),
        (["+optimizer.lrate=1"], "optimizer.lrate"),  # a key added to a typed node, refused after composition
    ]
    for argv, key in cases:
        result = subprocess.run(
            [sys.executable, "-m", "amodal_lightning.train", *argv],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and key in lines[0], result.stderr


def test_errors_raised_inside_what_a_config_builds_name_the_full_key(tmp_path):
    base = [f"paths.output_dir={tmp_path}"]
    cases = {
        "data.val_fraction=0.8": r"^data.val_fraction=0.8, test_fraction=0.5: expected fractions",
        "model.module.unet.patch_size=3": r"^model.module.unet.patch_size=3: expected",
        "model.module.diffusion.noise_schedule=quadratic": r"^model.module.diffusion.noise_schedule='quadratic'",
    }
    for override, expected in cases.items():
        cfg = compose("train", [*base, "data=sas", f"data.root={tmp_path}", "data.test_fraction=0.5", override])
        path = "data" if override.startswith("data.") else "model.module"
        with pytest.raises(ConfigError, match=expected):
            instantiate_at(cfg, path, _recursive_=False)
    # The data's image size is the model's: its error names model.image_size.
    cfg = compose("train", [*base, "model.image_size=4"])
    with pytest.raises(ConfigError, match=r"^model.image_size=4: expected at least 8 pixels"):
        instantiate_at(cfg, "data", _recursive_=False)


def test_at_path_leaves_keys_of_the_root_alone():
    crop = "task.crop=1: expected true or false"
    assert at_path("data", crop, ["task", "data"]) == crop
    assert at_path("data", "no key here", []) == "no key here"
    assert at_path("data", "val_fraction=2: expected", []) == "data.val_fraction=2: expected"
    assert at_path("data", "image_size=0: expected", []) == "model.image_size=0: expected"


def test_a_recipe_setting_for_a_callback_left_out_builds_nothing(tmp_path):
    cfg = compose("train", [f"paths.output_dir={tmp_path}", "callbacks=none"])
    composed = OmegaConf.to_container(cfg)
    assert OmegaConf.to_container(cfg.callbacks) == {"ema": {"decay": 0.99}}  # the recipe's, with no EMA to take it
    assert instantiate_group(cfg, "callbacks") == []
    assert OmegaConf.to_container(cfg) == composed, "the config is left as composed"


def test_a_key_added_with_plus_to_a_schema_is_refused_at_composition(tmp_path):
    # Hydra opens a node for `+key=value`, so the schema alone lets it in; the commands check the composed config.
    for key in (
        "optimizer.lrate",
        "model.module.validation.inference.stepz",
        "model.module.unet.nope",
        "model.module.diffusion.nope",
        "data.synthetic.nope",
        "task.nope",
    ):
        with pytest.raises(ConfigError, match=rf"^{re.escape(key)}: not a key of \w+; expected one of \["):
            compose("train", [f"paths.output_dir={tmp_path}", f"+{key}=1"])
