"""The module's speed options (channels-last, compile, fused AdamW) change how it runs, not what it computes."""

from types import SimpleNamespace

import pytest
import torch
from hydra.utils import instantiate

from amodal_lightning.errors import ConfigError
from amodal_lightning.models.module import NUM_LOSS_QUARTILES
from amodal_lightning.run.config import compose
from amodal_lightning.train import train

TINY = ["data.synthetic.num_train=48", "data.synthetic.num_val=8", "data.batch_size=8", "logger=csv"]

# Dynamo traces the network for real; the eager backend skips inductor's C++ code generation (minutes on a CPU).
EAGER_COMPILE = "{backend:eager}"


def small_module(tmp_path, **performance):
    # A constant rate: configure_optimizers then returns the bare optimiser, with no Trainer needed for a budget.
    overrides = [f"paths.output_dir={tmp_path}", "optimizer.schedule=constant"]
    overrides += [f"++model.module.performance.{key}={value}" for key, value in performance.items()]
    return instantiate(compose("train", overrides).model.module, _convert_="all")


def _is_channels_last(module) -> bool:
    return module.net.input_blocks[0][0].weight.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize(
    "setting,device,expected",
    [("auto", "cpu", False), ("auto", "cuda", True), ("true", "cpu", True), ("false", "cuda", False)],
)
def test_channels_last_auto_means_gpus_only(tmp_path, setting, device, expected):
    module = small_module(tmp_path, channels_last=setting)
    module.apply_performance_options(device)  # only the memory format depends on the device name here
    assert _is_channels_last(module) == expected


@pytest.mark.parametrize("fused", [True, False])
def test_fused_adamw_where_the_device_has_it(tmp_path, fused):
    optimizer = small_module(tmp_path, fused_adamw=fused).configure_optimizers()
    assert bool(optimizer.defaults["fused"]) == fused


def test_fused_adamw_takes_the_same_step(tmp_path):
    torch.manual_seed(0)
    module = small_module(tmp_path)
    params = [p for p in module.parameters()][:6]
    grads = [torch.randn_like(p) for p in params]
    results = []
    for fused in (True, None):
        copies = [p.detach().clone().requires_grad_() for p in params]
        opt = torch.optim.AdamW(copies, lr=1e-3, fused=fused)
        for _ in range(3):
            for c, g in zip(copies, grads):
                c.grad = g.clone()
            opt.step()
        results.append(copies)
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_compile_is_for_training_steps_only(tmp_path):
    module = small_module(tmp_path, compile=EAGER_COMPILE)
    names = list(module.state_dict())
    module.apply_performance_options("cpu")
    compiled = module._compiled["net"]
    assert compiled._orig_mod is module.net
    assert list(module.state_dict()) == names, "checkpoints keep their parameter names"
    calls = []
    monkey = lambda *args: calls.append(args) or compiled(*args)  # noqa: E731
    module._compiled["net"] = monkey
    module.log = lambda *args, **kwargs: None
    batch = {
        "image": torch.rand(2, 3, 32, 32),
        "occlusion": torch.zeros(2, 1, 32, 32),
        "target": torch.ones(2, 1, 32, 32),
    }
    loss = module.training_step(batch, 0)
    loss.backward()
    assert len(calls) == 1 and torch.isfinite(loss)
    module.sample_masks(torch.zeros(1, 4, 32, 32), steps=2)
    assert len(calls) == 1, "sampling runs the plain network"


@pytest.mark.parametrize(
    "key,value,word",
    [("channels_last", "yes", "channels_last"), ("compile", "fast", "compile"), ("flash", "true", "performance.flash")],
)
def test_bad_performance_options_are_one_line(tmp_path, key, value, word):
    with pytest.raises(Exception) as info:
        small_module(tmp_path, **{key: value})
    error = info.value
    while not isinstance(error, ConfigError) and error.__cause__ is not None:
        error = error.__cause__  # through Hydra's instantiation wrapper
    assert isinstance(error, ConfigError) and word in str(error) and "\n" not in str(error)


def test_synced_validation_logs_every_quartile_on_every_rank(tmp_path, monkeypatch):
    """Ranks reduce synced metrics key by key: a rank that skipped an empty quartile would pair up wrong keys."""
    module = small_module(tmp_path)
    logged = {}
    monkeypatch.setattr(module, "log", lambda key, value, batch_size=None, **kw: logged.update({key: batch_size}))
    terms = {"loss": torch.ones(3), "mse": torch.ones(3), "vb": torch.ones(3)}
    t = torch.tensor([0, 10, 20])  # all in the first quartile
    module._trainer = SimpleNamespace(world_size=2)
    module._log_terms("val", terms, t, sync_dist=True)
    assert {k for k in logged if "_q" in k} == {f"val/{n}_q{q}" for n in terms for q in range(NUM_LOSS_QUARTILES)}
    assert logged["val/loss_q0"] == 3 and logged["val/loss_q3"] == 0
    logged.clear()
    module._trainer = SimpleNamespace(world_size=1)
    module._log_terms("val", terms, t, sync_dist=True)
    assert {k for k in logged if "_q" in k} == {f"val/{n}_q0" for n in terms}


@pytest.mark.slow
def test_training_with_every_option_on(tmp_path):
    cfg = compose(
        "train",
        [
            f"paths.output_dir={tmp_path}",
            "debug=default",
            *TINY,
            "trainer.max_steps=2",
            "trainer.val_check_interval=2",
            "callbacks.checkpoint.every_n_train_steps=2",
            "model.module.performance.channels_last=true",
            f"model.module.performance.compile={EAGER_COMPILE}",
        ],
    )
    metrics = train(cfg)
    assert torch.isfinite(torch.tensor(metrics["val/loss"]))
    saved = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    plain = small_module(tmp_path / "plain")
    assert list(saved["state_dict"]) == list(plain.state_dict())
    assert saved["optimizer_states"][0]["param_groups"][0]["fused"] is True
