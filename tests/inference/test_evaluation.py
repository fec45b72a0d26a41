"""The evaluator: predictions mapped back to each image's own resolution, and the four rows on a known answer."""

from types import SimpleNamespace

import numpy as np
import pytest
from scripted_module import SIDE, Scripted, block, next_of

from amodal_lightning.data.record import ImageRecord
from amodal_lightning.inference.evaluation import LayerEvaluator, format_table
from amodal_lightning.inference.instance_evaluation import InstanceEvaluator
from amodal_lightning.inference.layers import LayerInference
from amodal_lightning.models.sampling import InferenceConfig

DATA_SIDE = 2 * SIDE  # the data is twice the model's size: everything is resized in and out


def scene(image_id: str, with_instances: bool) -> ImageRecord:
    """A front square (layer 0) partly hiding a back square (layer 1), at the data's size."""
    front, back = (block(0, 0, 8, DATA_SIDE).bool().numpy(), block(4, 4, 8, DATA_SIDE).bool().numpy())
    instances = {}
    if with_instances:
        instances = {
            "amodal": np.stack([front, back]),
            "visible": np.stack([front, back & ~front]),
            "instance_layer": np.array([0, 1]),
            "depth_order": np.array([0, 1]),
        }
    image = np.random.default_rng(0).integers(0, 256, (DATA_SIDE, DATA_SIDE, 3), dtype=np.uint8)
    return ImageRecord(image_id=image_id, image=image, layers=np.stack([front, back]), **instances)


def test_a_model_that_knows_the_answer_scores_one_beside_the_reference_rows():
    # The same squares at the model's size: what the scripted model answers.
    model = Scripted(next_of([block(0, 0, 4), block(2, 2, 4)]))
    inference = LayerInference(model, InferenceConfig(steps=2, ensemble_size=2, empty_fraction=0.01), SIDE)
    evaluator = LayerEvaluator(inference, max_true_layers=2)
    images = [scene("known", with_instances=True), scene("plain", with_instances=False)]
    evaluated = evaluator.update(images)
    results = evaluated.predictions
    rows = evaluator.compute()
    assert evaluated.images == images and evaluated.rows == [result.row() for result in results]

    assert [r.image_id for r in results] == ["known", "plain"]
    for result, image in zip(results, images):
        assert result.layers.shape == (2, DATA_SIDE, DATA_SIDE) and result.uncertainty.shape == result.layers.shape
        np.testing.assert_array_equal(result.layers, image.layers)
    assert results[0].row() == {
        "image_id": "known",
        "true_layers": 2,
        "predicted_layers": 2,
        "merges": 0,
        "miou": 1.0,
        "hidden_miou": 1.0,
    }
    assert results[1].hidden_miou is None

    for row in ("sequential", "teacher_forced"):
        assert rows[row]["images"] == 2 and rows[row]["miou"] == 1.0 and rows[row]["layer_count_accuracy"] == 1.0
        assert rows[row]["hidden_miou"] == 1.0
        assert rows[row]["object_layer_accuracy"] == 1.0  # both squares of the image with instances
    assert rows["empty"]["miou"] == 0.0 and rows["empty"]["hidden_miou"] == 0.0
    assert rows["empty"]["object_layer_accuracy"] == 0.0 and rows["empty"]["objects_missed"] == 1.0
    oracle = rows["visible_oracle"]
    # Only the image with instances; the back square is 64 px, 16 of them hidden by the front one.
    assert oracle["images"] == 1 and oracle["hidden_miou"] == 0.0 and oracle["object_layer_accuracy"] == 1.0
    assert oracle["iou_layer0"] == 1.0 and oracle["iou_layer1"] == pytest.approx(48 / 64)

    table = format_table(rows).splitlines()
    assert [line.split()[0] for line in table[1:5]] == ["sequential", "teacher_forced", "empty", "visible_oracle"]
    assert table[5].startswith("reference row empty") and table[6].startswith("reference row visible_oracle")
    # Another model's row, where evaluate is given one, is explained too.
    reference = format_table({**rows, "reference_model": rows["sequential"]}).splitlines()
    assert any(line.startswith("reference row reference_model: another layer model") for line in reference)
    assert "hidden_miou" in table[0] and "object_layer_accuracy" in table[0] and "iou_layer1" in table[0]

    evaluator.reset()
    assert all(metric.images == 0 for metric in evaluator.metrics.values())


@pytest.mark.parametrize(
    "objects, one_pass, updates",
    [
        ([1, 2, 1, 3, 4, 5], True, [[1, 2, 1], [3], [4], [5]]),  # at most batch_size objects (one image at least)
        ([1, 2, 1, 3, 4, 5], False, [[1, 2, 1, 3, 4, 5]]),  # up to IMAGES_PER_UPDATE images, to fill the passes
    ],
)
def test_per_object_updates_hold_one_pass_when_asked(objects, one_pass, updates):
    images = [
        ImageRecord(f"i{n}", np.zeros((4, 4, 3), np.uint8), None, visible=np.zeros((n, 4, 4), bool)) for n in objects
    ]
    evaluator = InstanceEvaluator(SimpleNamespace(config=InferenceConfig(batch_size=4)))
    calls = []
    evaluator.update = lambda chunk, generator: [im.num_objects for im in chunk]
    done = list(evaluator.updates(images, one_pass=one_pass, before_update=lambda: calls.append(1)))
    assert done == updates and len(calls) == len(updates)


def test_layer_updates_hold_batch_size_images_of_the_first_count():
    model = Scripted(next_of([block(0, 0, 4)]))
    evaluator = LayerEvaluator(LayerInference(model, InferenceConfig(steps=2, batch_size=2), SIDE), max_true_layers=2)
    images = [scene(f"s{i}", with_instances=False) for i in range(6)]
    done = list(evaluator.updates(images, count=5))
    assert [[im.image_id for im in update.images] for update in done] == [["s0", "s1"], ["s2", "s3"], ["s4"]]
    assert evaluator.compute()["sequential"]["images"] == 5
