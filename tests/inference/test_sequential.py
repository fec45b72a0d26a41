"""Sequential and teacher-forced inference: stopping, merging, batching, and the settings a model cannot honour.

A scripted stand-in for the module makes the "samples" exact; a real (random, tiny) module checks the loop ends.
"""

import pytest
import torch
from scripted_module import SCHEDULE, SIDE, Scripted, block, next_of
from task_configs import task_config

from amodal_lightning.errors import ConfigError
from amodal_lightning.inference.sequential import SequentialInference
from amodal_lightning.models.module import AmodalDiffusionModule
from amodal_lightning.models.sampling import InferenceConfig


def images(n: int) -> torch.Tensor:
    return torch.rand(n, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(0))


def config(**kwargs) -> InferenceConfig:
    return InferenceConfig(**{"steps": 2, "ensemble_size": 2, "empty_fraction": 0.01, **kwargs})


def test_predicts_layer_after_layer_and_stops_on_an_empty_one():
    layers = [block(0, 0, 4), block(2, 2, 4)]
    module = Scripted(next_of(layers))
    prediction = SequentialInference(module, config(max_layers=5)).predict(images(3))
    assert prediction.num_layers.tolist() == [2, 2, 2]
    torch.testing.assert_close(prediction.layers[:, :2], torch.stack(layers).expand(3, -1, -1, -1))
    assert prediction.layers[:, 2:].sum() == 0 and prediction.uncertainty.sum() == 0
    torch.testing.assert_close(prediction.cumulative[0, 1], torch.maximum(layers[0], layers[1]))
    # Two layers and the empty one that ends every image, all images sampled together.
    assert module.passes == 3


def test_a_model_that_never_stops_ends_at_max_layers():
    module = Scripted(lambda occlusion, call: block(0, 0, 4))
    prediction = SequentialInference(module, config(max_layers=3)).predict(images(2))
    assert prediction.num_layers.tolist() == [3, 3] and module.passes == 3


def test_merge_rule_joins_a_layer_that_does_not_touch_the_previous_one():
    # Layer 1 does not overlap layer 0: SAS merges it there, then finds the overlapping layer 2.
    layers = [block(0, 0), block(5, 5), block(1, 1)]
    prediction = SequentialInference(Scripted(next_of(layers)), config(merge_disjoint=True)).predict(images(1))
    assert prediction.num_layers.tolist() == [2] and prediction.merges.tolist() == [1]
    torch.testing.assert_close(prediction.layers[0, 0], torch.maximum(layers[0], layers[1]))
    torch.testing.assert_close(prediction.layers[0, 1], layers[2])
    plain = SequentialInference(Scripted(next_of(layers)), config()).predict(images(1))
    assert plain.num_layers.tolist() == [3] and plain.merges.tolist() == [0]


def test_merges_are_bounded_so_disjoint_masks_forever_still_end():
    # A fresh 2 x 2 block at every call: never overlapping anything, never empty.
    def fresh(_occlusion, call):
        return block(2 * ((call // 4) % 4), 2 * (call % 4))

    module = Scripted(fresh)
    prediction = SequentialInference(module, config(max_layers=3, merge_disjoint=True, max_merges=2)).predict(images(1))
    assert prediction.num_layers.tolist() == [3] and prediction.merges.tolist() == [2]
    assert module.passes == 3 + 2


def test_batching_does_not_change_the_result():
    layers = [block(0, 0, 4), block(2, 2, 4)]
    one = SequentialInference(Scripted(next_of(layers)), config(batch_size=1)).predict(images(3))
    three = SequentialInference(Scripted(next_of(layers)), config(batch_size=3)).predict(images(3))
    torch.testing.assert_close(one.layers, three.layers)


def test_teacher_forced_conditions_on_the_true_layers_and_checks_the_stop():
    layers = [block(0, 0, 4), block(2, 2, 4)]
    truth = torch.stack([torch.stack(layers), torch.stack([layers[0], torch.zeros(SIDE, SIDE)])])
    num_true = torch.tensor([2, 1])
    forced = SequentialInference(Scripted(next_of(layers)), config()).predict_teacher_forced(images(2), truth, num_true)
    # Image 0 gets both layers and stops; image 1's truth ends after layer 0 but the model still sees layer 1.
    assert forced.num_layers.tolist() == [2, 2]
    torch.testing.assert_close(forced.layers[0, :2], torch.stack(layers))
    assert forced.layers[0, 2].sum() == 0
    torch.testing.assert_close(forced.layers[1, 1], layers[1])


def test_a_random_tiny_model_stops_within_max_layers():
    module = AmodalDiffusionModule(
        unet={
            "image_size": SIDE,
            "in_channels": 5,
            "model_channels": 32,
            "out_channels": 2,
            "num_res_blocks": 1,
            "attention_resolutions": [],
            "channel_mult": [1, 2],
        },
        diffusion={"diffusion_steps": 100},
        task=task_config("layers", convention="symmetric"),
        optimizer={"lr": 1e-4},
    ).eval()
    settings = config(max_layers=3, merge_disjoint=True, max_merges=1, ensemble_size=3, combine="vote")
    prediction = SequentialInference(module, settings).predict(images(2), torch.Generator().manual_seed(0))
    assert prediction.layers.shape == (2, 3, SIDE, SIDE)
    assert (prediction.num_layers <= 3).all() and (prediction.merges <= 1).all()
    assert set(prediction.layers.unique().tolist()) <= {0.0, 1.0}
    assert ((prediction.uncertainty >= 0) & (prediction.uncertainty <= 0.25)).all()


@pytest.mark.parametrize(
    "settings,message",
    [
        (
            {"steps": SCHEDULE + 1},
            f"inference.steps={SCHEDULE + 1}: the model's diffusion schedule has {SCHEDULE} steps",
        ),
        ({"sampler": "euler"}, "inference.sampler='euler'"),
        ({"combine": "median"}, "inference.combine='median'"),
        ({"ensemble_size": 0}, "inference.ensemble_size=0"),
        ({"max_merges": -1}, "inference.max_merges=-1"),
    ],
)
def test_settings_the_model_cannot_honour_are_one_line_errors(settings, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        SequentialInference(Scripted(next_of([])), InferenceConfig(**{"steps": 2, **settings}))


def test_unknown_setting_is_an_error():
    with pytest.raises(ConfigError, match="^inference.ensemble: "):
        InferenceConfig.from_mapping({"ensemble": 3})


def test_part_wise_merge_moves_only_the_part_apart_from_the_previous_layer():
    # Layer 1 holds a part overlapping layer 0 and a stray part far from it: the stray joins layer 0 (one merge)
    # and the overlapping part stays layer 1. SAS's whole-layer rule keeps both in layer 1.
    stray = block(6, 6)
    layers = [block(0, 0, 3), torch.maximum(block(2, 2, 2), stray)]
    parts = SequentialInference(Scripted(next_of(layers)), config(merge_disjoint=True, merge_parts=True))
    prediction = parts.predict(images(1))
    assert prediction.num_layers.tolist() == [2] and prediction.merges.tolist() == [1]
    torch.testing.assert_close(prediction.layers[0, 0], torch.maximum(layers[0], stray))
    torch.testing.assert_close(prediction.layers[0, 1], block(2, 2, 2))
    whole = SequentialInference(Scripted(next_of(layers)), config(merge_disjoint=True)).predict(images(1))
    assert whole.merges.tolist() == [0]
    torch.testing.assert_close(whole.layers[0, 1], layers[1])


def test_part_wise_merge_of_a_wholly_apart_layer_samples_the_layer_again():
    layers = [block(0, 0), block(5, 5), block(1, 1)]
    settings = config(merge_disjoint=True, merge_parts=True)
    prediction = SequentialInference(Scripted(next_of(layers)), settings).predict(images(1))
    assert prediction.num_layers.tolist() == [2] and prediction.merges.tolist() == [1]
    torch.testing.assert_close(prediction.layers[0, 0], torch.maximum(layers[0], layers[1]))
    torch.testing.assert_close(prediction.layers[0, 1], layers[2])


def test_part_wise_merges_are_bounded_too():
    # A fresh 2 x 2 block at every call, a pixel away from every other: never touching anything, never empty.
    def fresh(_occlusion, call):
        return block(3 * ((call // 3) % 3), 3 * (call % 3))

    module = Scripted(fresh)
    settings = config(max_layers=3, merge_disjoint=True, merge_parts=True, max_merges=2)
    prediction = SequentialInference(module, settings).predict(images(1))
    assert prediction.num_layers.tolist() == [3] and prediction.merges.tolist() == [2]
    assert module.passes == 3 + 2
