"""Member views: each member sees the image turned or mirrored, and its sample is turned back before combining."""

import pytest
import torch
from scripted_module import SIDE, Scripted, block

from amodal_lightning.errors import ConfigError
from amodal_lightning.inference.sequential import SequentialInference
from amodal_lightning.inference.views import VIEW_SETS, from_member_views, to_member_views
from amodal_lightning.models.sampling import InferenceConfig


@pytest.mark.parametrize("name", sorted(VIEW_SETS))
@pytest.mark.parametrize("members", [1, 3, 8])
def test_turning_back_undoes_every_view(name, members):
    x = torch.rand(2 * members, 4, 5, 5, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(from_member_views(to_member_views(x, name, members), name, members), x)


def test_members_take_the_views_in_turn_within_each_image():
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).expand(2 * 3, 1, 2, 2)  # 2 images x 3 members
    turned = to_member_views(x, "mirror", 3)[:, 0]
    mirrored = torch.tensor([[2.0, 1.0], [4.0, 3.0]])
    # Rows are image-major: members 0 and 2 see the image as it is, member 1 mirrored, in both images.
    for row, expected in zip(turned, [x[0, 0], mirrored, x[0, 0]] * 2):
        torch.testing.assert_close(row, expected)
    quarter = to_member_views(x, "dihedral", 3)[1, 0]
    torch.testing.assert_close(quarter, torch.rot90(x[0, 0], 1))


class SeesOnly(Scripted):
    """A stand-in whose sample depends on the image it is shown: ``answer(image)`` (B,3,S,S) -> masks (B,S,S)."""

    def __init__(self, answer):
        super().__init__(mask_for=None)
        self.answer = answer

    def denoiser(self, conditioning, guidance_scale=1.0):
        def denoise(_x, _t):
            self.passes += 1
            image = (conditioning[:, :3] - self.task.convention.image_shift) / self.task.convention.image_scale
            return self.task.convention.mask(self.answer(image))[:, None]

        return denoise


def first_layer(module, **settings):
    image = torch.zeros(1, 3, SIDE, SIDE)
    image[:, :, 1:4, 2:6] = 1.0
    inference = SequentialInference(module, InferenceConfig(steps=2, empty_fraction=0.0, **settings))
    members, _ = inference._sample_members(image, torch.zeros(1, 1, SIDE, SIDE), None)
    return image, members[0]


def test_a_model_that_follows_the_image_gives_the_same_mask_in_every_view():
    image, members = first_layer(SeesOnly(lambda image: (image[:, 0] > 0.5).float()), ensemble_size=8, views="dihedral")
    for member in members:
        torch.testing.assert_close(member, image[0, 0])


def test_each_member_sees_its_own_view():
    # Always the top-left block of what it is shown: turned back, each view's block lands in another corner.
    top_left = block(0, 0)
    module = SeesOnly(lambda image: top_left.expand(image.shape[0], -1, -1))
    _, members = first_layer(module, ensemble_size=4, views="dihedral")
    corners = [block(0, 0), block(0, SIDE - 2), block(SIDE - 2, SIDE - 2), block(SIDE - 2, 0)]
    for member, corner in zip(members, corners):
        torch.testing.assert_close(member, corner)
    _, same = first_layer(module, ensemble_size=4, views="identity")
    assert all(torch.equal(member, top_left) for member in same)


def test_unknown_view_set_is_a_one_line_error():
    with pytest.raises(ConfigError, match="inference.views='spin': unknown orientation set"):
        SequentialInference(SeesOnly(lambda image: image[:, 0]), InferenceConfig(steps=2, views="spin"))
