"""SAS compatibility: flags -> architecture, checkpoint reading, flag inference and exact outputs on SAS weights."""

import argparse

import pytest
import torch

from amodal_lightning.compat.sas import (
    SAS_DEFAULT_FLAGS,
    infer_sas_flags,
    load_sas_unet,
    read_sas_state_dict,
    unet_kwargs_from_sas_flags,
)
from amodal_lightning.errors import CheckpointError, ConfigError
from amodal_lightning.models.unet import UNetModel

GOLDEN_ATOL = 1e-4  # RGB enters as 0..255, so float32 reordering alone reaches ~1e-5 (see tolerance_note)


def _golden_weights(golden_small):
    arrays, _ = golden_small
    return {k[len("w/") :]: torch.from_numpy(v) for k, v in arrays.items() if k.startswith("w/")}


def _meta_state_dict(flags):
    with torch.device("meta"):
        return UNetModel(**unet_kwargs_from_sas_flags(flags)).state_dict()


def _one_line(error: Exception) -> str:
    message = str(error)
    assert "\n" not in message
    return message


# ------------------------------------------------------------------------------------------------ golden


def test_default_flags_are_the_sas_unet64_flags(golden_unet64_keys):
    assert SAS_DEFAULT_FLAGS == golden_unet64_keys["flags"]


def test_unet64_architecture_matches_sas(golden_unet64_keys):
    with torch.device("meta"):
        model = UNetModel(**unet_kwargs_from_sas_flags(golden_unet64_keys["flags"]))
    assert sum(p.numel() for p in model.parameters()) == golden_unet64_keys["param_count"] == 82_960_130
    ours = [[key, list(t.shape)] for key, t in model.state_dict().items()]
    assert ours == golden_unet64_keys["state_dict"]


def test_small_config_reproduces_sas_output(golden_small):
    arrays, meta = golden_small
    model = load_sas_unet(_golden_weights(golden_small), meta["flags"]).eval()
    x, t = torch.from_numpy(arrays["x"]), torch.from_numpy(arrays["t"])
    with torch.no_grad():
        out = model(x, t)
    torch.testing.assert_close(out, torch.from_numpy(arrays["model_out"]), atol=GOLDEN_ATOL, rtol=0)

    fused = load_sas_unet(_golden_weights(golden_small), meta["flags"], attention_backend="sdpa").eval()
    with torch.no_grad():
        torch.testing.assert_close(fused(x, t), out, atol=GOLDEN_ATOL, rtol=0)


def test_infer_recovers_unet64_from_shapes(golden_unet64_keys):
    flags = golden_unet64_keys["flags"]
    shapes = {key: torch.empty(shape, device="meta") for key, shape in golden_unet64_keys["state_dict"]}
    inferred = infer_sas_flags(shapes)
    assert inferred["num_channels"] == 128 and inferred["num_res_blocks"] == 2
    assert inferred["channel_mult"] == "1,2,3,4" and inferred["attention_resolutions"] == "16"
    assert inferred["learn_sigma"] is True
    assert unet_kwargs_from_sas_flags(inferred) == unet_kwargs_from_sas_flags(flags)


def test_infer_recovers_small_config_and_loads_without_flags(golden_small):
    _, meta = golden_small
    weights = _golden_weights(golden_small)
    assert unet_kwargs_from_sas_flags(infer_sas_flags(weights)) == unet_kwargs_from_sas_flags(meta["flags"])
    model = load_sas_unet(weights)  # no flags typed at all
    assert all(torch.equal(p, weights[k]) for k, p in model.state_dict().items())


# ------------------------------------------------------------------------------------------------ flags


def test_create_model_mapping():
    kwargs = unet_kwargs_from_sas_flags({"num_channels": 64, "attention_resolutions": "32,16,8", "unknown": 1})
    assert kwargs["in_channels"] == 5 and kwargs["model_channels"] == 64
    assert kwargs["attention_resolutions"] == [2, 4, 8] and kwargs["channel_mult"] == [1, 2, 3, 4]
    # SAS hardcodes two output channels even without learn_sigma
    assert unet_kwargs_from_sas_flags({"learn_sigma": False})["out_channels"] == 2
    assert unet_kwargs_from_sas_flags({"image_size": 128})["channel_mult"] == [1, 1, 2, 3, 4]
    assert unet_kwargs_from_sas_flags({"channel_mult": "1,2", "use_scale_shift_norm": "True"})["channel_mult"] == [1, 2]


@pytest.mark.parametrize(
    "flag, value",
    [
        ("image_size", 100),
        ("num_channels", "wide"),
        ("attention_resolutions", "16,x"),
        ("attention_resolutions", "0"),
        ("channel_mult", "1,two"),
        ("use_scale_shift_norm", "maybe"),
        ("class_cond", True),
        ("dropout", 1.5),
        ("num_heads", 0),
        ("num_res_blocks", 2.5),
    ],
)
def test_bad_flag_raises_one_line_naming_it(flag, value):
    with pytest.raises(ConfigError) as info:
        unet_kwargs_from_sas_flags({flag: value})
    assert flag in _one_line(info.value)


SAS_VARIANTS = [
    {
        "image_size": 32,
        "num_channels": 32,
        "channel_mult": "1,2",
        "num_res_blocks": 1,
        "attention_resolutions": "32,16",
    },
    {"num_channels": 32, "attention_resolutions": "16,8", "use_scale_shift_norm": True, "resblock_updown": True},
    {"num_channels": 32, "num_res_blocks": 0, "attention_resolutions": "8"},
    {"image_size": 16, "num_channels": 32, "channel_mult": "1", "num_res_blocks": 3, "attention_resolutions": "16"},
    {"image_size": 128, "num_channels": 32, "attention_resolutions": "64", "resblock_updown": True},
]


@pytest.mark.parametrize("flags", SAS_VARIANTS)
def test_infer_round_trips(flags):
    inferred = infer_sas_flags(_meta_state_dict(flags), image_size=flags.get("image_size", 64))
    assert unet_kwargs_from_sas_flags({**flags, **inferred}) == unet_kwargs_from_sas_flags(flags)


# ------------------------------------------------------------------------------------------------ checkpoints


def test_read_strips_ddp_prefix(tmp_path, golden_small):
    weights = _golden_weights(golden_small)
    path = tmp_path / "savedmodel000100.pt"
    torch.save({"module." + k: v for k, v in weights.items()}, path)
    read = read_sas_state_dict(path)
    assert list(read) == list(weights)
    assert all(torch.equal(read[k], weights[k]) for k in weights)


def test_read_missing_file(tmp_path):
    path = tmp_path / "emasavedmodel_0.9999_000100.pt"
    with pytest.raises(CheckpointError) as info:
        read_sas_state_dict(path)
    assert str(path) in _one_line(info.value)


@pytest.mark.parametrize(
    "payload",
    [b"not a torch file at all", [torch.zeros(1)], {"weight": 3}, {"state": {}, "param_groups": []}],
    ids=["garbage", "list", "dict-of-int", "optimizer"],
)
def test_read_malformed_checkpoint(tmp_path, payload):
    path = tmp_path / "savedmodel000001.pt"
    if isinstance(payload, bytes):
        path.write_bytes(payload)
    else:
        torch.save(payload, path)
    with pytest.raises(CheckpointError) as info:
        read_sas_state_dict(path)
    message = _one_line(info.value)
    assert str(path) in message and "state dict" in message


def test_read_refuses_pickled_code(tmp_path):
    path = tmp_path / "savedmodel000002.pt"
    # SAS-era pickles of arbitrary objects (here an argparse namespace) are refused by weights_only loading
    torch.save({"weight": torch.zeros(1), "args": argparse.Namespace(lr=1e-4)}, path)
    with pytest.raises(CheckpointError) as info:
        read_sas_state_dict(path)
    assert str(path) in _one_line(info.value)


def test_load_reports_first_shape_mismatch(golden_small):
    with pytest.raises(CheckpointError) as info:
        load_sas_unet(_golden_weights(golden_small), {"num_channels": 64})
    message = _one_line(info.value)
    assert "time_embed.0.weight" in message and "(256, 64)" in message and "(128, 32)" in message


def test_load_reports_missing_and_unexpected_keys(golden_small):
    weights = _golden_weights(golden_small)
    missing = {k: v for k, v in weights.items() if k != "middle_block.1.qkv.bias"}
    with pytest.raises(CheckpointError, match="middle_block.1.qkv.bias") as info:
        load_sas_unet(missing)
    _one_line(info.value)
    with pytest.raises(CheckpointError, match="label_emb.weight") as info:
        load_sas_unet({**weights, "label_emb.weight": torch.zeros(5, 128)})
    _one_line(info.value)


def test_infer_rejects_foreign_state_dict():
    with pytest.raises(CheckpointError, match="input_blocks.0.0.weight") as info:
        infer_sas_flags({"encoder.weight": torch.zeros(1)})
    _one_line(info.value)
