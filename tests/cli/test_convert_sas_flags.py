"""convert_sas never builds a different model in silence: flags the weights cannot show are either given (on the
command line or in SAS's own written-down flags) or printed as assumed."""

import pytest
import torch

from amodal_lightning.compat.sas import unet_kwargs_from_sas_flags
from amodal_lightning.compat.sas_args import read_sas_args
from amodal_lightning.convert_sas import KNOWN_SAS_FLAGS, NOT_IN_WEIGHTS, READ_FROM_WEIGHTS, main
from amodal_lightning.errors import ConfigError
from amodal_lightning.inference.loading import load_for_inference
from amodal_lightning.models.unet import UNetModel

# Shapes only; the head count is what the weights cannot show.
TINY_SHAPE_FLAGS = {
    "image_size": 32,
    "num_channels": 32,
    "channel_mult": "1,2",
    "num_res_blocks": 1,
    "attention_resolutions": "16",
}
TWO_HEADS = 2
BATCH = 2
USAGE_ERROR = 2
WEIGHT_STD = 0.05


@pytest.fixture(scope="module")
def two_head_sas(tmp_path_factory):
    """SAS weights of a model trained with --num_heads 2, saved as SAS saves them (a plain state dict)."""
    torch.manual_seed(0)
    net = UNetModel(**unet_kwargs_from_sas_flags({**TINY_SHAPE_FLAGS, "num_heads": TWO_HEADS})).eval()
    # As after training: the output layer and the attention projections start at zero, which hides the head count.
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.normal_(0.0, WEIGHT_STD)
    path = tmp_path_factory.mktemp("sas") / "emasavedmodel000010.pt"
    torch.save(net.state_dict(), path)
    return path, net


def shape_args() -> list[str]:
    return [token for name, value in TINY_SHAPE_FLAGS.items() for token in (f"--{name}", str(value))]


def assumed_names(out: str) -> set[str]:
    """The flags the command said it assumed."""
    return {line.split()[1][2:] for line in out.splitlines() if line.startswith("assumed --")}


def converted_output(path) -> torch.Tensor:
    net = load_for_inference(path, torch.device("cpu")).module.net
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH, net.in_channels, 32, 32, generator=generator)
    with torch.no_grad():
        return net(x, torch.tensor([10, 500]))


def reference_output(net: UNetModel) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH, net.in_channels, 32, 32, generator=generator)
    with torch.no_grad():
        return net(x, torch.tensor([10, 500]))


def test_an_unseen_flag_is_printed_as_assumed_and_matters(two_head_sas, tmp_path, capsys):
    sas_path, net = two_head_sas
    main([str(sas_path), str(tmp_path / "assumed.ckpt"), *shape_args()])
    out = capsys.readouterr().out
    # Every flag the weights cannot show and the command line did not give, once each, then the file written.
    assert len(out.strip().splitlines()) == len(set(NOT_IN_WEIGHTS) - set(TINY_SHAPE_FLAGS)) + 1
    assert assumed_names(out) == set(NOT_IN_WEIGHTS) - set(TINY_SHAPE_FLAGS)
    assert "assumed --num_heads 1 (SAS's default" in out and "pass --num_heads VALUE or --sas_args FILE" in out
    # The assumption changes the output: this is why it is printed.
    assert not torch.allclose(converted_output(tmp_path / "assumed.ckpt"), reference_output(net), atol=1e-4)

    main([str(sas_path), str(tmp_path / "given.ckpt"), *shape_args(), "--num_heads", str(TWO_HEADS)])
    assert "num_heads" not in assumed_names(capsys.readouterr().out)
    torch.testing.assert_close(converted_output(tmp_path / "given.ckpt"), reference_output(net), atol=1e-5, rtol=0)
    checkpoint = torch.load(tmp_path / "given.ckpt", weights_only=True)
    assert "num_heads" not in checkpoint["run_config"]["sas_flags_assumed"]
    assert "noise_schedule" in checkpoint["run_config"]["sas_flags_assumed"]


@pytest.mark.parametrize(
    "text",
    [
        'MODEL_FLAGS="--image_size 32 --num_channels 32 --num_res_blocks 1 --num_heads 2"\n'
        'DIFFUSION_FLAGS="--diffusion_steps 1000 --noise_schedule linear"\n'
        "python scripts/train.py --data_dir ./data $MODEL_FLAGS $DIFFUSION_FLAGS\n",
        "Logging to ./results\nNamespace(attention_resolutions='16', batch_size=8, channel_mult='1,2', "
        "data_dir='./data', diffusion_steps=1000, image_size=32, num_channels=32, num_heads=2, "
        "noise_schedule='linear', num_res_blocks=1)\ncreating model and diffusion...\n",
    ],
    ids=["command-line", "namespace"],
)
def test_sas_args_file_gives_the_flags(two_head_sas, tmp_path, capsys, text):
    sas_path, net = two_head_sas
    args_file = tmp_path / "log.txt"
    args_file.write_text(text)
    flags = read_sas_args(args_file, KNOWN_SAS_FLAGS)
    assert flags["num_heads"] == TWO_HEADS and flags["image_size"] == 32 and flags["noise_schedule"] == "linear"
    assert "data_dir" not in flags
    main(
        [
            str(sas_path),
            str(tmp_path / "from_file.ckpt"),
            "--sas_args",
            str(args_file),
            "--channel_mult",
            "1,2",
            "--attention_resolutions",
            "16",
        ]
    )
    assumed = assumed_names(capsys.readouterr().out)
    assert "num_heads" not in assumed and "image_size" not in assumed and "dropout" in assumed
    torch.testing.assert_close(converted_output(tmp_path / "from_file.ckpt"), reference_output(net), atol=1e-5, rtol=0)


def test_the_command_line_wins_over_the_file(two_head_sas, tmp_path, capsys):
    sas_path, _ = two_head_sas
    args_file = tmp_path / "flags.sh"
    args_file.write_text("--num_heads 2 --image_size 32")
    main([str(sas_path), str(tmp_path / "a.ckpt"), "--sas_args", str(args_file), "--num_heads", "4"])
    capsys.readouterr()
    checkpoint = torch.load(tmp_path / "a.ckpt", weights_only=True)
    assert checkpoint["hyper_parameters"]["unet"]["num_heads"] == 4


def test_help_lists_every_flag(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--sas_args FILE" in out
    for name in (*NOT_IN_WEIGHTS, *READ_FROM_WEIGHTS):
        assert f"--{name}" in out, name


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--num_head", "2"], "--num_head: not a SAS model or diffusion flag"),
        (["--sas_args", "{missing}"], "--sas_args {missing}: cannot be read"),
        (["--sas_args", "{empty}"], "--sas_args {empty}: no SAS flag in it"),
    ],
)
def test_bad_flags_are_one_line(two_head_sas, tmp_path, capsys, extra, expected):
    sas_path, _ = two_head_sas
    (tmp_path / "empty.txt").write_text("creating model and diffusion...\n")
    names = {"missing": tmp_path / "missing.txt", "empty": tmp_path / "empty.txt"}
    extra = [arg.format(**names) for arg in extra]
    with pytest.raises(SystemExit) as exit_info:
        main([str(sas_path), str(tmp_path / "out.ckpt"), *extra])
    assert exit_info.value.code == USAGE_ERROR
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected.format(**names) in lines[0]
    assert not (tmp_path / "out.ckpt").exists()


def test_read_sas_args_keeps_known_flags_only(tmp_path):
    path = tmp_path / "log.txt"
    path.write_text("--num_heads_upsample -1 --use_new_attention_order True --lr=2e-5 --save_dir ./out")
    assert read_sas_args(path, KNOWN_SAS_FLAGS) == {
        "num_heads_upsample": -1,
        "use_new_attention_order": True,
        "lr": 2e-5,
    }
    with pytest.raises(ConfigError, match="no SAS flag"):
        read_sas_args(path, frozenset({"image_size"}))
