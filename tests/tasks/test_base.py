"""The Task protocol: every shipped task implements it, is built from its config, and checkpoints written before
tasks were named by class still build the same task and sample the same masks."""

import inspect

import pytest
import torch
from task_configs import task_config

from amodal_lightning.batch import TARGET
from amodal_lightning.data.datasets import InMemoryImages
from amodal_lightning.data.record import ImageRecord
from amodal_lightning.data.scenes import SceneGenerator
from amodal_lightning.errors import ConfigError
from amodal_lightning.inference.base import Evaluator, Inference
from amodal_lightning.models.module import AmodalDiffusionModule
from amodal_lightning.models.sampling import InferenceConfig
from amodal_lightning.run.config import config_dir
from amodal_lightning.task_config import TASKS_BY_OLD_NAME, build_task, task_class
from amodal_lightning.tasks.base import Task
from amodal_lightning.tasks.gestalt import GestaltTask
from amodal_lightning.tasks.instance import InstanceTask
from amodal_lightning.tasks.layers import LayersTask

SIZE = 16
# Every task config shipped in conf/task/.
TASK_NAMES = sorted(path.stem for path in (config_dir() / "task").glob("*.yaml"))
UNET = {
    "image_size": SIZE,
    "in_channels": None,
    "model_channels": 32,
    "out_channels": None,
    "num_res_blocks": 1,
    "attention_resolutions": [],
    "channel_mult": [1, 2],
}


@pytest.fixture(scope="module")
def images():
    generator = SceneGenerator(image_size=SIZE, seed=3)
    return InMemoryImages([ImageRecord.from_scene(f"s{i}", generator.scene(i)) for i in range(3)])


def batch_of(task: Task, images, count: int = 2) -> dict:
    """The first ``count`` samples the task makes of ``images``, stacked as the default collate stacks them."""
    samples = [task.sample(images, i, w) for i in range(len(images)) for w in range(task.num_samples(images, i))]
    return {key: torch.stack([s[key] for s in samples[:count]]) for key, v in samples[0].items() if torch.is_tensor(v)}


def tiny_module(task: dict) -> AmodalDiffusionModule:
    torch.manual_seed(0)
    module = AmodalDiffusionModule(unet=UNET, diffusion={"diffusion_steps": 50}, task=task, optimizer={"lr": 1e-3})
    with torch.no_grad():  # a fresh UNet's last layer is zero: make the samples depend on the weights
        for parameter in module.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return module.eval()


def test_every_shipped_task_is_named_once():
    assert TASK_NAMES == ["gestalt", "instance", "layers"]
    for name in TASK_NAMES:
        cls = task_class(task_config(name)["_target_"])
        # One name: the config's file, the class's `name`, and the class named after it.
        assert cls.name == name and cls.__name__.lower() == f"{name}task"


@pytest.mark.parametrize("name", TASK_NAMES)
def test_every_shipped_task_implements_the_protocol(name, images):
    task = build_task(task_config(name), image_size=SIZE)
    cls = type(task)
    assert issubclass(cls, Task) and not inspect.isabstract(cls)
    # One signature of the conditioning for every task.
    assert list(inspect.signature(task.conditioning).parameters) == ["batch"]
    for flag in ("reads_whole", "repeats_front_layer", "caches_samples"):
        assert isinstance(getattr(task, flag), bool), flag
    assert 0.0 <= task.conditioning_dropout < 1.0
    assert task.load_size(SIZE) in (SIZE, None)
    batch = batch_of(task, images)
    conditioning, target = task.split(batch)
    assert conditioning.shape == (2, task.conditioning_channels, SIZE, SIZE)
    assert torch.equal(conditioning, task.conditioning(batch))
    assert target.shape == (2, task.target_channels, SIZE, SIZE)
    mask = task.mask_values(target)
    assert mask.shape == (2, 1, SIZE, SIZE)
    torch.testing.assert_close(task.convention.binarize(mask), batch[TARGET])
    weights = task.loss_weights(batch)
    assert weights is None or weights.shape == target.shape


@pytest.mark.parametrize("name", TASK_NAMES)
def test_a_task_builds_its_inference_and_evaluator_of_one_kind(name, images):
    module = tiny_module(task_config(name))
    inference = module.task.inference(module, InferenceConfig(steps=2, ensemble_size=1), SIZE)
    evaluator = module.task.evaluator(inference, images)
    assert isinstance(inference, Inference) and isinstance(evaluator, Evaluator)
    assert inference.kind == evaluator.kind and evaluator.inference is inference
    evaluated = evaluator.update([images[0]], torch.Generator().manual_seed(0))
    assert len(evaluated.predictions) == 1 and evaluated.rows
    assert evaluator.read_out in evaluator.compute()


@pytest.mark.parametrize(
    "old, cls, options",
    [
        ({"name": "sequential_layers", "convention": "sas"}, LayersTask, {}),
        ({"name": "instance", "convention": "symmetric", "crop_factor": 3.0}, InstanceTask, {"crop_factor": 3.0}),
        ({"name": "gestalt", "convention": "symmetric", "hidden_rgb_weight": 2}, GestaltTask, {"hidden_rgb_weight": 2}),
        ({"convention": "sas"}, LayersTask, {}),  # the model's own entry alone: the layer task, as before
    ],
)
def test_a_checkpoints_task_config_from_before_task_classes_still_builds(old, cls, options):
    task = build_task(old)
    assert type(task) is cls and task.convention.name == old["convention"]
    for key, value in options.items():
        assert getattr(task, key) == value
    assert set(TASKS_BY_OLD_NAME) == {"sequential_layers", "instance", "gestalt"}


@pytest.mark.parametrize("name, old_name", [("layers", "sequential_layers"), ("gestalt", "gestalt")])
def test_a_checkpoint_with_the_old_task_name_samples_the_same_masks(name, old_name):
    new = tiny_module(task_config(name, convention="sas"))
    old = tiny_module({"name": old_name, "convention": "sas"})
    old.load_state_dict(new.state_dict())
    conditioning = torch.rand(2, new.task.conditioning_channels, SIZE, SIZE)
    masks = [
        module.sample_masks(conditioning, steps=3, generator=torch.Generator().manual_seed(1)) for module in (new, old)
    ]
    assert torch.equal(*masks)


@pytest.mark.parametrize(
    "config, key",
    [
        ({"name": "sequential"}, r"task\.name='sequential': unknown task"),
        ({"_target_": "amodal_lightning.tasks.nothing.NoTask"}, r"task\._target_=.*no module"),
        ({"_target_": "amodal_lightning.batch.IMAGE"}, r"task\._target_=.*not a task class"),
        ({"_target_": "amodal_lightning.tasks.layers.LayersTask", "name": "instance"}, r"task\.name='instance'"),
        ({"_target_": "amodal_lightning.tasks.layers.LayersTask", "crop": True}, r"^task: .*crop.*layers task"),
    ],
)
def test_a_bad_task_config_is_one_line_naming_the_key(config, key):
    with pytest.raises(ConfigError, match=key) as caught:
        build_task(config)
    assert "\n" not in str(caught.value)


def test_a_task_built_by_hydra_instead_of_its_config_is_refused_in_one_line():
    with pytest.raises(ConfigError, match=r"^task: expected the task's config .*_recursive_=False"):
        build_task(LayersTask())
