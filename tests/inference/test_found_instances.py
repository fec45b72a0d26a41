"""Objects found in whole images: the parts of a layer model's layers, their uncertainty maps, their completion by a
per-object model, and their COCO AP beside the reference rows, on a scripted model that knows each scene's layers."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from amodal_lightning.data.instance_truth import read_instance_truth
from amodal_lightning.data.record import ImageRecord
from amodal_lightning.data.scenes import SceneGenerator
from amodal_lightning.errors import ConfigError
from amodal_lightning.inference.evaluation import LayerEvaluator
from amodal_lightning.inference.found_instances import (
    NO_LAYER,
    ImageInstances,
    complete_instances,
    instances_from_layers,
    nearest_part_maps,
)
from amodal_lightning.inference.instance_ap_evaluation import (
    COMPLETED,
    FOUND,
    SET_FILE,
    TRUE_VISIBLE,
    TRUE_VISIBLE_COMPLETED,
    TRUTH_FILE,
)
from amodal_lightning.inference.layer_instances import InstanceSettings, split_layers
from amodal_lightning.inference.layers import LayerInference
from amodal_lightning.inference.resolution import image_to_model
from amodal_lightning.metrics.ap import AMODAL, CLASS_AGNOSTIC, HIDDEN, VISIBLE, instance_ap
from amodal_lightning.models.sampling import InferenceConfig
from amodal_lightning.tasks.layers import LayersTask

SIDE = 32
SCHEDULE = 10
SETTINGS = InferenceConfig(steps=2, ensemble_size=2, empty_fraction=0.001, max_layers=6, batch_size=4)


def box(top, left, bottom, right, shape=(12, 12)) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[top:bottom, left:right] = True
    return mask


class KnowsTheScenes(torch.nn.Module):
    """A stand-in layer model whose every member is the next true layer of the scene it is shown (told apart by its
    pixels): the layers it predicts are the scenes' own."""

    def __init__(self, scenes: list[ImageRecord]):
        super().__init__()
        self.task = LayersTask()
        self.diffusion = SimpleNamespace(num_timesteps=SCHEDULE)
        self.anchor = torch.nn.Parameter(torch.zeros(()))
        self.images = torch.stack([self.task.convention.image(image_to_model(s.image, SIDE)) for s in scenes])
        self.layers = [torch.from_numpy(np.asarray(s.layers, dtype=np.float32)) for s in scenes]

    def sampling_diffusion(self, steps):
        return SimpleNamespace(sample=lambda denoise, shape, **kwargs: denoise(None, None))

    def denoiser(self, conditioning, guidance_scale=1.0):
        def denoise(_x, _t):
            convention = self.task.convention
            masks = []
            for row in conditioning:
                scene = int((self.images - row[:3]).abs().flatten(1).sum(1).argmin())
                occlusion = (row[3] - convention.mask_shift) / convention.mask_scale > 0.5
                following = [layer for layer in self.layers[scene] if (layer.bool() & ~occlusion).any()]
                masks.append(following[0] if following else torch.zeros(SIDE, SIDE))
            return convention.mask(torch.stack(masks))[:, None]

        return denoise


class CompletesFromTheTruth:
    """A stand-in per-object model: each visible mask is completed to the amodal mask of the true object whose visible
    mask overlaps it most (an oracle completion), with a whole-object appearance of its own."""

    device = torch.device("cpu")

    def __init__(self, scenes: list[ImageRecord]):
        self.scenes = {scene.image_id: scene for scene in scenes}

    def predict(self, records, generator=None):
        predictions = []
        for record in records:
            truth = self.scenes[record.image_id]
            overlap = (record.visible[:, None] & truth.visible[None]).sum(axis=(2, 3))
            amodal = truth.amodal[overlap.argmax(1)] if len(record.visible) else record.visible
            whole = np.zeros((*amodal.shape, 4), dtype=np.uint8)
            whole[amodal] = (10, 20, 30, 255)
            uncertainty = np.full(amodal.shape, 0.1, dtype=np.float32)
            predictions.append(SimpleNamespace(amodal=amodal, uncertainty=uncertainty, whole=whole))
        return predictions


@pytest.fixture(scope="module")
def scenes() -> list[ImageRecord]:
    generator = SceneGenerator(image_size=SIDE, seed=4)
    return [ImageRecord.from_scene(f"s{i}", generator.scene(i), with_whole=False) for i in range(6)]


def test_each_pixel_of_a_layers_uncertainty_goes_to_its_nearest_part():
    left, right = box(0, 0, 4, 3), box(0, 8, 4, 12)
    labels = left.astype(np.int64) + 2 * right
    variance = np.full(labels.shape, 0.2, dtype=np.float32)
    maps = nearest_part_maps(labels, variance, [1, 2])
    np.testing.assert_allclose(maps.sum(0), variance)  # every pixel goes to exactly one part
    assert maps[0][left].all() and maps[1][right].all() and not maps[0][right].any()
    assert maps[0][0, 4] == pytest.approx(0.2) and maps[1][0, 7] == pytest.approx(0.2)  # nearer the left, the right
    assert nearest_part_maps(labels, variance, []).shape == (0, 12, 12)


def test_instances_of_layers_are_their_parts_front_to_back_with_their_own_uncertainty():
    front, back_left, back_right = box(0, 0, 6, 6), box(3, 3, 9, 6), box(8, 8, 12, 12)
    layers = np.stack([front, back_left | back_right])
    uncertainty = np.zeros((2, 12, 12), dtype=np.float32)
    uncertainty[1, 9, 3:6] = 0.25  # a doubtful row just below the back-left part, nearest to it
    image = np.zeros((12, 12, 3), dtype=np.uint8)
    by_agreement_and_depth = InstanceSettings(score_terms=("agreement", "depth"))
    found = instances_from_layers("a", 7, image, layers, uncertainty, by_agreement_and_depth)
    assert found.num_instances == 3 and found.layers.tolist() == [0, 1, 1]
    np.testing.assert_array_equal(found.amodal, np.stack([front, back_left, back_right]))
    np.testing.assert_array_equal(found.visible[1], back_left & ~front)
    np.testing.assert_array_equal(found.hidden[1], back_left & front)
    assert found.uncertainty[1][9, 3:6].tolist() == [0.25] * 3 and not found.uncertainty[2].any()
    assert found.scores.tolist() == pytest.approx([1.0, 0.9, 0.9])  # agreement x 0.9 ** layer
    assert not found.completed.any() and found.whole is None
    details = found.details()
    assert [d["layer"] for d in details] == [0, 1, 1] and details[1]["hidden_pixels"] == int(found.hidden[1].sum())
    results = found.results()
    assert [r["image_id"] for r in results] == [7, 7, 7] and all(r["category_id"] == 1 for r in results)


def test_completion_replaces_the_amodal_masks_of_objects_with_a_visible_pixel_only(scenes):
    scene = scenes[0]
    settings = InstanceSettings(hidden_parts="keep")
    # The true layers, and one more layer wholly behind them: a part with no visible pixel.
    layers = np.concatenate([scene.layers, scene.layers[:1]])
    found = instances_from_layers(scene.image_id, 1, scene.image, layers, np.zeros(layers.shape, np.float32), settings)
    hidden = np.flatnonzero(~found.visible.any(axis=(1, 2)))
    assert len(hidden) >= 1
    (done,) = complete_instances(CompletesFromTheTruth(scenes), [found])
    assert done.completed.tolist() == [i not in hidden for i in range(found.num_instances)]
    np.testing.assert_array_equal(done.amodal[hidden], found.amodal[hidden])
    np.testing.assert_array_equal(done.visible, found.visible)  # the visible parts stay the finding's
    shown = np.flatnonzero(done.completed)
    assert (done.uncertainty[shown] == np.float32(0.1)).all() and (done.whole[hidden] == 0).all()
    assert (done.whole[shown][..., 3] > 0).sum() == done.amodal[shown].sum()
    # Nothing to complete: the objects come back as they are.
    empty = instances_from_layers("e", 2, scene.image, layers[:0], layers[:0].astype(np.float32), settings)
    assert complete_instances(CompletesFromTheTruth(scenes), [empty]) == [empty]


def test_a_layer_model_finds_the_parts_of_its_layers(scenes):
    inference = LayerInference(KnowsTheScenes(scenes), SETTINGS, SIDE)
    finder = inference.instance_finder(InstanceSettings())
    found = finder.find([s.image for s in scenes[:3]], [s.image_id for s in scenes[:3]], [1, 2, 3])
    for image_found, scene in zip(found, scenes):
        expected = split_layers(scene.layers)
        assert image_found.result_id == scenes.index(scene) + 1
        np.testing.assert_array_equal(image_found.amodal, np.array([e.amodal for e in expected]))
        assert image_found.layers.tolist() == [e.layer for e in expected]
    completed = inference.instance_finder(InstanceSettings(), CompletesFromTheTruth(scenes))
    assert all(f.completed.any() for f in completed.find([scenes[0].image], [scenes[0].image_id]))


def test_a_layer_model_completes_no_visible_masks(scenes):
    inference = LayerInference(KnowsTheScenes(scenes), SETTINGS, SIDE)
    with pytest.raises(ConfigError, match=r"^refine_ckpt=x.ckpt: a model of task=layers, whose outputs are layers, "):
        inference.object_completion("refine_ckpt=x.ckpt")


def test_found_objects_are_scored_by_coco_ap_as_the_written_files_score(scenes, tmp_path):
    inference = LayerInference(KnowsTheScenes(scenes), SETTINGS, SIDE)
    evaluator = LayerEvaluator(inference, max_true_layers=max(s.num_layers for s in scenes), teacher_forced=False)
    scorer = evaluator.instance_scorer(InstanceSettings(), CompletesFromTheTruth(scenes))
    without_objects = ImageRecord("plain", scenes[0].image, scenes[0].layers)
    for evaluated in evaluator.updates([*scenes, without_objects]):
        scorer.update(evaluated)
    assert scorer.images == len(scenes) and scorer.left_out == 1 and scorer.read_out == COMPLETED
    reports = scorer.compute()
    assert list(reports) == [FOUND, COMPLETED, TRUE_VISIBLE, TRUE_VISIBLE_COMPLETED]
    found, completed = reports[FOUND].rows, reports[COMPLETED].rows
    # The model's layers are the true ones: only objects of one layer that touch are lost (one part for two).
    assert 0.7 < found[AMODAL]["AP"] <= 1.0 and found[VISIBLE]["AP"] >= found[AMODAL]["AP"] - 0.1
    assert completed[AMODAL]["AP"] >= found[AMODAL]["AP"]
    assert reports[TRUE_VISIBLE].rows[VISIBLE]["AP"] == pytest.approx(1.0)
    assert reports[TRUE_VISIBLE].rows[HIDDEN]["AP"] == 0.0
    assert reports[TRUE_VISIBLE_COMPLETED].rows[AMODAL]["AP"] == pytest.approx(1.0)  # the oracle completion
    # The written ground truth and results, scored again, give the same numbers.
    folder = scorer.write(tmp_path / "instances")
    truth = read_instance_truth(folder / TRUTH_FILE)
    assert truth.counts["annotations"] == sum(int(s.amodal.any(axis=(1, 2)).sum()) for s in scenes)
    for name, report in reports.items():
        entries = json.loads((folder / SET_FILE.format(name=name)).read_text())
        again = instance_ap(truth.ground_truth, entries, classes=CLASS_AGNOSTIC)
        assert again.rows == report.rows, name
    table = scorer.table(reports)
    assert "found: amodal" in table and "true_visible_completed: hidden" in table and "class-agnostic" in table
    assert scorer.as_dict(reports)["sets"][FOUND] == reports[FOUND].as_dict()


def test_image_instances_have_no_layer_for_a_detection():
    count = 2
    found = ImageInstances(
        image_id="d",
        result_id="d",
        image=np.zeros((4, 4, 3), np.uint8),
        amodal=np.ones((count, 4, 4), bool),
        visible=np.ones((count, 4, 4), bool),
        uncertainty=np.zeros((count, 4, 4), np.float32),
        scores=np.array([0.3, 0.7]),
        categories=np.array([3, 5]),
        layers=np.full(count, NO_LAYER),
        agreement=[None, None],
        completed=np.ones(count, bool),
        detections=[4, 9],
    )
    details = found.details()
    assert [d["layer"] for d in details] == [None, None] and [d["detection"] for d in details] == [4, 9]
    assert [(r["score"], r["category_id"]) for r in found.results()] == [(0.3, 3), (0.7, 5)]
