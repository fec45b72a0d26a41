"""AmodalDataModule: the canonical batch, splits by image id, noise mixing, per-device batches, configs."""

import collections
import dataclasses
import pickle
from types import SimpleNamespace

import lightning as L
import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from amodal_lightning.batch import IMAGE, IMAGE_ID, LAYER, OCCLUSION, TARGET
from amodal_lightning.data.datamodule import AmodalDataModule, auto_num_workers
from amodal_lightning.data.datasets import NoiseMixingSampler
from amodal_lightning.data.record import ImageRecord
from amodal_lightning.data.scenes import SceneGenerator, write_sas_dataset
from amodal_lightning.data.sources.base import HeldOut
from amodal_lightning.data.sources.sas import SasFolders
from amodal_lightning.data.sources.scenes import GeneratedScenes
from amodal_lightning.errors import ConfigError, DataError
from amodal_lightning.orientations import ORIENTATION_SETS
from amodal_lightning.run.config import compose

SIZE = 32
# The keys of a layer task's batch.
BATCH_KEYS = (IMAGE, OCCLUSION, TARGET, LAYER, IMAGE_ID)
NUM_IMAGES = 20
NUM_NOISE_IMAGES = 6
TINY_SYNTHETIC = {"num_train": 12, "num_val": 4, "num_test": 4, "seed": 1}


@pytest.fixture(scope="module")
def sas_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "sas"
    write_sas_dataset(root, SceneGenerator(image_size=SIZE, seed=11), range(NUM_IMAGES), id_prefix="clean")
    return root


@pytest.fixture(scope="module")
def noise_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("noise") / "noise"
    write_sas_dataset(root, SceneGenerator(image_size=SIZE, seed=12), range(NUM_NOISE_IMAGES), id_prefix="noise")
    return root


def sas_module(root, **kwargs):
    """The data module over a SAS root, its source built from flat settings as a data config builds it."""
    options = dict(root=root, image_size=SIZE, batch_size=4, val_fraction=0.2, test_fraction=0.2)
    options.update(kwargs)
    return AmodalDataModule(SasFolders, **options)


def scenes_module(**kwargs):
    options = dict(image_size=SIZE, batch_size=4, synthetic=TINY_SYNTHETIC)
    options.update(kwargs)
    return AmodalDataModule(GeneratedScenes, **options)


def all_samples(loader):
    """Every sample of a loader as (image_id, layer, image, occlusion, target), batches taken apart."""
    samples = []
    for batch in loader:
        for i, image_id in enumerate(batch[IMAGE_ID]):
            samples.append((image_id, int(batch[LAYER][i]), batch[IMAGE][i], batch[OCCLUSION][i], batch[TARGET][i]))
    return samples


def check_batch(batch, size):
    assert set(batch) == set(BATCH_KEYS)
    b = len(batch[IMAGE_ID])
    assert batch[IMAGE].dtype == torch.float32 and batch[IMAGE].shape == (b, 3, size, size)
    assert 0.0 <= batch[IMAGE].min() and batch[IMAGE].max() <= 1.0
    for key in (OCCLUSION, TARGET):
        assert batch[key].dtype == torch.float32 and batch[key].shape == (b, 1, size, size)
        assert set(batch[key].unique().tolist()) <= {0.0, 1.0}
    assert batch[LAYER].dtype == torch.int64 and batch[LAYER].shape == (b,)
    assert all(isinstance(i, str) for i in batch[IMAGE_ID])


def test_sas_batches_follow_the_canonical_format(sas_root):
    dm = sas_module(sas_root)
    dm.setup("fit")
    check_batch(next(iter(dm.train_dataloader())), SIZE)
    samples = all_samples(dm.val_dataloader())
    by_image = collections.defaultdict(dict)
    for image_id, layer, _, occlusion, target in samples:
        by_image[image_id][layer] = (occlusion[0].bool(), target[0].bool())
    for image_id, layers in by_image.items():
        assert sorted(layers) == list(range(len(layers))), image_id
        last = max(layers)
        assert not layers[last][1].any(), "the terminal sample's target is empty"
        assert all(layers[k][1].any() for k in range(last))
        for k in layers:
            union = torch.zeros(SIZE, SIZE, dtype=torch.bool)
            for j in range(k):
                union |= layers[j][1]
            assert torch.equal(layers[k][0], union), "occlusion is the union of the earlier layers"


def test_sas_images_are_resized_and_masks_stay_binary(tmp_path):
    root = tmp_path / "big"
    write_sas_dataset(root, SceneGenerator(image_size=48, seed=2), range(4))
    dm = sas_module(root, val_fraction=0.0, test_fraction=0.0)
    dm.setup("fit")
    for batch in dm.train_dataloader():
        check_batch(batch, SIZE)
    scene = dm.images("train")[0]
    assert scene.image.shape == (SIZE, SIZE, 3) and scene.layers.shape[1:] == (SIZE, SIZE)
    assert scene.amodal.shape[1:] == (SIZE, SIZE) and scene.amodal.dtype == bool


def test_splits_are_by_image_id_deterministic_and_complete(sas_root):
    def ids(dm):
        dm.setup()
        return {split: set(dm.source.image_ids(split)) for split in ("train", "val", "test")}

    first, again, other = ids(sas_module(sas_root)), ids(sas_module(sas_root)), ids(sas_module(sas_root, split_seed=1))
    assert first == again and first != other
    assert len(first["val"]) == len(first["test"]) == round(0.2 * NUM_IMAGES)
    assert not (first["train"] & first["val"]) and not (first["train"] & first["test"])
    assert not (first["val"] & first["test"])
    assert len(first["train"] | first["val"] | first["test"]) == NUM_IMAGES
    # Every layer of an image, the terminal one included, is in the image's split.
    dm = sas_module(sas_root)
    dm.setup()
    counts = collections.Counter(image_id for image_id, *_ in all_samples(dm.test_dataloader()))
    assert {image_id: counts[image_id] for image_id in counts} == {
        s.image_id: s.num_layers + 1 for s in dm.images("test")
    }


def test_absent_noise_folder_is_fine_without_noise(sas_root, tmp_path):
    dm = sas_module(sas_root, noise_root=tmp_path / "no_noise_here", noise_rate=0.0)
    dm.setup("fit")
    assert all(not i.startswith("noise") for i, *_ in all_samples(dm.train_dataloader()))


def test_absent_noise_folder_with_noise_is_a_data_error_naming_it(sas_root, tmp_path):
    missing = tmp_path / "no_noise_here"
    dm = sas_module(sas_root, noise_root=missing, noise_rate=0.2)
    with pytest.raises(DataError, match=str(missing)):
        dm.setup("fit")


def test_noise_rate_without_noise_images_is_a_config_error(sas_root):
    with pytest.raises(ConfigError, match="^data.noise_root: required when data.noise_rate > 0"):
        sas_module(sas_root, noise_rate=0.2).setup("fit")
    with pytest.raises(ConfigError, match="^data.noise_rate: the synthetic source has no noise images"):
        scenes_module(noise_rate=0.2).setup("fit")


def test_noise_is_mixed_into_training_only_at_its_rate(sas_root, noise_root):
    dm = sas_module(sas_root, noise_root=noise_root, noise_rate=0.3, noise_seed=4)
    dm.setup("fit")
    loader = dm.train_dataloader()
    sampler = loader.sampler
    assert isinstance(sampler, NoiseMixingSampler)
    draws = []
    for epoch in range(20):
        sampler.set_epoch(epoch)
        draws.extend(index for index, _ in sampler)
    fraction = np.mean(np.array(draws) >= sampler.num_clean)
    assert abs(fraction - 0.3) < 0.05, fraction
    sampler.set_epoch(0)
    assert [index for index, _ in sampler] == draws[: sampler.num_clean], "draws depend only on seed and epoch"
    sampler.set_epoch(0)
    train_ids = [i for i, *_ in all_samples(loader)]
    assert any(i.startswith("noise") for i in train_ids) and any(i.startswith("clean") for i in train_ids)
    for loader in (dm.val_dataloader(), dm.test_dataloader()):
        assert all(i.startswith("clean") for i, *_ in all_samples(loader))


def test_per_device_batch_divides_the_global_batch(sas_root):
    dm = sas_module(sas_root, batch_size=8)
    dm.setup("fit")
    assert dm.per_device_batch_size == 8
    dm.trainer = SimpleNamespace(world_size=2, accumulate_grad_batches=2)
    dm.setup("fit")
    assert dm.per_device_batch_size == 2
    assert dm.train_dataloader().batch_size == 2
    dm.trainer = SimpleNamespace(world_size=4, accumulate_grad_batches=3)
    with pytest.raises(ConfigError) as info:
        dm.setup("fit")
    message = str(info.value)
    assert "data.batch_size=8" in message and "4 device" in message and "3 accumulation" in message


def test_synthetic_splits_are_disjoint_and_stable(tmp_path):
    small = scenes_module()
    larger = scenes_module(synthetic={**TINY_SYNTHETIC, "num_train": 20})
    small.setup()
    larger.setup("validate")
    check_batch(next(iter(small.train_dataloader())), SIZE)
    images = {split: [s.image for s in small.images(split)] for split in ("train", "val", "test")}
    assert [len(images[s]) for s in ("train", "val", "test")] == [12, 4, 4]
    for a in images["train"]:
        assert not any(np.array_equal(a, b) for b in images["val"] + images["test"])
    # The validation scenes do not depend on the training set size.
    assert all(np.array_equal(a.image, b.image) for a, b in zip(small.images("val"), larger.images("val")))
    scene = small.images("val")[0]
    assert isinstance(scene, ImageRecord) and scene.amodal is not None
    assert np.array_equal(scene.layers[0], scene.amodal[scene.instance_layer == 0].any(axis=0))
    assert [s.image_id for s in small.panel_scenes(2)] == ["val_000000", "val_000001"]
    samples = sum(s.num_layers + 1 for s in small.images("train"))
    assert len(small.train_dataloader().dataset) == samples


def test_front_layer_repeats_draw_each_layer_0_sample_that_often(tmp_path):
    once = scenes_module()
    thrice = scenes_module(front_layer_repeats=3)
    counts = {}
    for name, dm in (("once", once), ("thrice", thrice)):
        dm.setup("fit")
        samples = all_samples(dm.train_dataloader())
        counts[name] = collections.Counter((image_id, layer) for image_id, layer, *_ in samples)
    assert set(counts["thrice"]) == set(counts["once"]) and set(counts["once"].values()) == {1}
    assert all(n == (3 if layer == 0 else 1) for (_, layer), n in counts["thrice"].items())
    # Validation and test are left as they are.
    assert len(thrice.val_dataloader().dataset) == len(once.val_dataloader().dataset)
    for bad in (0, 1.5, True):
        with pytest.raises(ConfigError, match="^front_layer_repeats") as info:
            scenes_module(front_layer_repeats=bad)
        assert "\n" not in str(info.value)


def _orientations_matching(turned, original):
    """Indices of the dihedral orientations that take ``original`` (C,S,S) to ``turned``."""
    return {
        index
        for index, (turns, mirrored) in enumerate(ORIENTATION_SETS["dihedral"])
        if torch.equal(torch.rot90(original.flip(-1) if mirrored else original, turns, dims=(-2, -1)), turned)
    }


def test_training_samples_are_turned_whole_and_only_while_training():
    dm = scenes_module(batch_size=40, augment_orientations="dihedral")
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    original = {key: batch[key].clone() for key in (IMAGE, OCCLUSION, TARGET)}
    # Not attached to a trainer, or attached but validating: nothing changes.
    for trainer in (None, SimpleNamespace(training=False)):
        dm.trainer = trainer
        out = dm.on_after_batch_transfer(dict(batch), 0)
        assert all(torch.equal(out[key], original[key]) for key in original)
    dm.trainer = SimpleNamespace(training=True)
    torch.manual_seed(0)
    out = dm.on_after_batch_transfer(dict(batch), 0)
    drawn = []
    for i in range(len(out[IMAGE_ID])):
        # The image, its occlusion mask and its target are turned the same way.
        common = set.intersection(*(_orientations_matching(out[key][i], original[key][i]) for key in original))
        assert common, f"sample {i}: image, occlusion and target turned differently"
        drawn.append(min(_orientations_matching(out[IMAGE][i], original[IMAGE][i])))
    assert len(set(drawn)) >= 6  # 40 draws from 8 orientations
    assert out[LAYER].tolist() == batch[LAYER].tolist() and out[IMAGE_ID] == batch[IMAGE_ID]
    plain = scenes_module(batch_size=40)
    plain.trainer = SimpleNamespace(training=True)
    out = plain.on_after_batch_transfer(dict(batch), 0)
    assert all(torch.equal(out[key], original[key]) for key in original)
    with pytest.raises(ConfigError, match="^augment_orientations='spin'") as info:
        scenes_module(augment_orientations="spin")
    assert "\n" not in str(info.value)


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="^synthetic.colour"):
        scenes_module(synthetic={"colour": "red"})
    with pytest.raises(ConfigError, match="^synthetic"):
        scenes_module(synthetic={"min_objects": 9})
    with pytest.raises(ConfigError, match="^root: required"):
        AmodalDataModule(SasFolders, val_fraction=0.1, test_fraction=0.0)
    # A key neither the data module nor its source takes.
    with pytest.raises(ConfigError, match=r"^colour: unknown key of this data config; its source takes \['image_size'"):
        scenes_module(colour="red")
    # A checkpoint written before sources were classes names its source by a string.
    with pytest.raises(ConfigError, match="^data.source='sas': expected a node naming the source class"):
        AmodalDataModule("sas", root="x")


def test_auto_loader_options_follow_the_source_and_the_devices(sas_root, monkeypatch):
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    assert auto_num_workers(in_memory=True, devices_per_node=1, cpu_count=16) == 0
    assert auto_num_workers(in_memory=False, devices_per_node=1, cpu_count=16) == 8  # capped
    assert auto_num_workers(in_memory=False, devices_per_node=4, cpu_count=16) == 3  # (16 - 1) // 4
    assert auto_num_workers(in_memory=False, devices_per_node=1, cpu_count=1) == 0
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "6")  # each task has its own 6 cores
    assert auto_num_workers(in_memory=False, devices_per_node=4, cpu_count=6) == 5
    dm = sas_module(sas_root, num_workers="auto", pin_memory="auto")
    assert dm._loader_options(devices_per_node=1, device_type="cpu") == (auto_num_workers(False, 1), False)
    assert dm._loader_options(devices_per_node=1, device_type="cuda")[1] is True
    assert scenes_module(num_workers="auto", pin_memory="auto")._loader_options(1, "cuda") == (0, True)


@pytest.mark.parametrize(("key", "value"), [("num_workers", -1), ("num_workers", "many"), ("pin_memory", "yes")])
def test_bad_loader_options_name_the_key(key, value):
    with pytest.raises(ConfigError, match=f"^{key}={value!r}: expected"):
        scenes_module(**{key: value})


def test_datamodule_pickles_and_loads_with_workers(sas_root):
    dm = sas_module(sas_root, num_workers=1)
    dm.setup("fit")
    dm = pickle.loads(pickle.dumps(dm))
    loader = dm.train_dataloader()
    assert loader.persistent_workers
    check_batch(next(iter(loader)), SIZE)


class _ConsumeBatches(L.LightningModule):
    """Records what the trainer feeds it; its loss only needs a parameter to step."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.seen = []
        self.batches = []

    def training_step(self, batch, batch_idx):
        self.seen.append(len(batch[IMAGE_ID]))
        self.batches.append(batch)
        return (batch[IMAGE].mean() - self.weight) ** 2

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit_quietly(model, dm, root, **trainer_options):
    """Fit on one CPU device without validation, logging, checkpoints or progress output."""
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
        **trainer_options,
    )
    trainer.fit(model, datamodule=dm)


def test_trainer_feeds_per_device_batches(sas_root, noise_root, tmp_path):
    dm = sas_module(sas_root, batch_size=8, noise_root=noise_root, noise_rate=0.25)
    model = _ConsumeBatches()
    _fit_quietly(model, dm, tmp_path, max_steps=2, accumulate_grad_batches=2)
    assert dm.per_device_batch_size == 4 and model.seen == [4, 4, 4, 4]


def test_trainer_turns_the_training_batches(tmp_path):
    first = {}
    for name in ("identity", "dihedral"):
        L.seed_everything(0)
        dm = scenes_module(batch_size=8, augment_orientations=name)
        model = _ConsumeBatches()
        _fit_quietly(model, dm, tmp_path, max_steps=1)
        first[name] = model.batches[0]
    plain, turned = first["identity"], first["dihedral"]
    assert turned[IMAGE_ID] == plain[IMAGE_ID]  # the same samples, in the same order
    drawn = [_orientations_matching(turned[IMAGE][i], plain[IMAGE][i]) for i in range(len(plain[IMAGE_ID]))]
    assert all(drawn) and not all(0 in matching for matching in drawn)


@pytest.mark.parametrize("option", ["synthetic", "sas"])
def test_data_configs_instantiate(option, sas_root, tmp_path):
    overrides = [f"data={option}", f"paths.output_dir={tmp_path}"]
    if option == "sas":
        overrides.append(f"data.root={sas_root}")
    else:
        overrides += [f"data.synthetic.{key}={value}" for key, value in TINY_SYNTHETIC.items()]
    cfg = compose("train", overrides)
    dm = instantiate(cfg.data, _convert_="all")
    assert isinstance(dm, AmodalDataModule)
    assert isinstance(dm.source, SasFolders if option == "sas" else GeneratedScenes)
    assert dm.image_size == cfg.model.image_size == 32 and dm.batch_size == cfg.data.batch_size == 64
    assert dm.front_layer_repeats == 4  # the quickstart recipe's choice
    dm.setup("fit")
    check_batch(next(iter(dm.train_dataloader())), cfg.model.image_size)


def test_sas_config_requires_a_root(tmp_path):
    from omegaconf import OmegaConf
    from omegaconf.errors import MissingMandatoryValue

    cfg = compose("train", ["data=sas", f"paths.output_dir={tmp_path}"])
    assert OmegaConf.is_missing(cfg.data, "root")
    with pytest.raises(MissingMandatoryValue):
        instantiate(cfg.data, _convert_="all")


def test_a_root_needs_its_split_fractions_from_the_data_config(tmp_path):
    # The fractions' defaults live in one place, the commands' held_out (HeldOut), which the data configs of roots
    # take; the source has none of its own.
    with pytest.raises(ConfigError, match=r"^val_fraction: required by this data config's source"):
        AmodalDataModule(SasFolders, root=tmp_path, test_fraction=0.0)
    cfg = compose("train", ["data=sas", f"data.root={tmp_path}", f"paths.output_dir={tmp_path}"])
    source = instantiate(cfg.data, _convert_="all").source
    assert (source.val_fraction, source.test_fraction) == (cfg.data.val_fraction, cfg.data.test_fraction)
    assert (source.val_fraction, source.test_fraction) == dataclasses.astuple(HeldOut()) == (0.05, 0.0)
    # A command's own held_out (evaluate reads a named root whole), or the data's key, changes them.
    cfg = compose("train", ["data=sas", f"data.root={tmp_path}", "held_out.test_fraction=0.5", "data.val_fraction=0.1"])
    assert (cfg.data.val_fraction, cfg.data.test_fraction) == (0.1, 0.5)
    cfg = compose("evaluate", ["data=sas", f"data.root={tmp_path}"])
    assert (cfg.data.val_fraction, cfg.data.test_fraction) == (0.0, 1.0)
