"""A SAS checkpoint converts into ours and then behaves exactly as the reference, in the module and in training."""

import numpy as np
import pytest
import torch

from amodal_lightning.convert_sas import convert, main
from amodal_lightning.models.module import AmodalDiffusionModule
from amodal_lightning.run.config import compose
from amodal_lightning.train import train


@pytest.fixture()
def sas_checkpoint(tmp_path, golden_small):
    """The golden weights saved as SAS saves them: a plain state dict with SAS key names."""
    arrays, meta = golden_small
    state = {k[2:]: torch.from_numpy(v) for k, v in arrays.items() if k.startswith("w/")}
    path = tmp_path / "emasavedmodel000100.pt"
    torch.save(state, path)
    return path, arrays, meta


def test_converted_checkpoint_reproduces_the_reference(tmp_path, sas_checkpoint):
    sas_path, arrays, meta = sas_checkpoint
    out = convert(sas_path, tmp_path / "converted.ckpt", {"image_size": meta["flags"]["image_size"]})
    module = AmodalDiffusionModule.load_from_checkpoint(out, map_location="cpu").eval()
    assert module.task.convention.name == "sas"
    x, t = torch.from_numpy(arrays["x"]), torch.from_numpy(arrays["t"])
    with torch.no_grad():
        out_full = module(x[:, :4], x[:, 4:], t)
    np.testing.assert_allclose(out_full.numpy(), arrays["model_out"], atol=1e-4, rtol=0)

    # The whole training loss through the module's denoiser: the network, the conditioning and the diffusion.
    loss_in = torch.from_numpy(arrays["loss_in"])
    terms = module.diffusion.training_losses(
        module.denoiser(loss_in[:, :4]),
        loss_in[:, 4:],
        torch.from_numpy(arrays["t_loss"]),
        noise=torch.from_numpy(arrays["noise"]),
    )
    for name in ("loss", "mse", "vb"):
        np.testing.assert_allclose(terms[name].detach().numpy(), arrays[name], atol=1e-4, rtol=1e-5, err_msg=name)

    # The SAS convention maps canonical data ([0, 1] RGB) back to the raw 0..255 values SAS feeds.
    canonical = {"image": x[:, :3] / 255, "occlusion": x[:, 3:4], "target": torch.from_numpy(arrays["x_start"])}
    conditioning, target = module.task.split(canonical)
    torch.testing.assert_close(conditioning, x[:, :4], atol=1e-4, rtol=0)
    torch.testing.assert_close(target, canonical["target"])


def test_converted_checkpoint_starts_a_training_run(tmp_path, sas_checkpoint):
    sas_path, _, _ = sas_checkpoint
    converted = convert(sas_path, tmp_path / "converted.ckpt", {"image_size": 64})
    cfg = compose(
        "train",
        [
            f"paths.output_dir={tmp_path / 'run'}",
            "debug=fdr",
            "model=unet64",
            "model.module.unet.model_channels=32",
            "data.batch_size=2",
            "data.synthetic.num_train=4",
            "data.synthetic.num_val=2",
            "model.module.validation.inference.steps=2",
            "callbacks.panel.inference.steps=2",
            f"ckpt_path={converted}",
        ],
    )
    metrics = train(cfg)
    assert np.isfinite(metrics["train/loss"])


def test_cli_flags_and_errors(tmp_path, sas_checkpoint, capsys):
    sas_path, _, _ = sas_checkpoint
    main([str(sas_path), str(tmp_path / "a.ckpt"), "--image_size", "64", "--learn_sigma", "True"])
    assert (tmp_path / "a.ckpt").is_file()
    with pytest.raises(SystemExit) as exit_info:
        main([str(sas_path), str(tmp_path / "b.ckpt"), "--num_channels", "64"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: ") and "shape" in err
    with pytest.raises(SystemExit):
        main([str(tmp_path / "missing.pt"), str(tmp_path / "c.ckpt")])
    assert "missing.pt" in capsys.readouterr().err
