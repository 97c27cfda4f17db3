"""Defaults the official code sets: EMA warm-up copies, CUDA mixed precision, the WRN baseline's schedule."""

from __future__ import annotations

import pytest
import torch

from ddae_core import build_model
from ddae_core.engine.device import amp_dtype_for, cpu_supports_bf16, grad_scaler_for, needs_grad_scaler
from ddae_core.engine.ema import EMA
from ddae_core.engine.errors import ConfigError
from ddae_core.engine.evaluation.noisy import wrn_lr
from ddae_core.engine.nets.blocks import AttentionBlock

from .fixtures import micro_config


def test_ema_copies_at_the_first_two_updates_then_warms_up_as_ema_pytorch():
    torch.manual_seed(0)
    model = build_model(micro_config("ddpm"))
    ema = EMA(model, decay=0.9999)
    expected = None
    for k in range(1, 6):
        with torch.no_grad():
            for p in model.net.parameters():
                p.add_(torch.randn_like(p) * 0.1)
        live = [p.detach().clone() for p in model.net.parameters()]
        ema.update(model)
        # ema-pytorch 0.2.x (update_after_step=0): update 1 copies (step <= update_after_step), update 2
        # initialises by copying and lerps the copy onto itself; from update k = 3 the decay is 1 - k^(-2/3).
        if k <= 2:
            expected = live
            assert ema.current_decay() == 0.0
        else:
            decay = 1 - k ** (-2 / 3)
            assert abs(ema.current_decay() - decay) < 1e-12
            expected = [e + (w - e) * (1 - decay) for e, w in zip(expected, live)]
        for shadow, want in zip(ema.model.net.parameters(), expected):
            torch.testing.assert_close(shadow, want, atol=1e-6, rtol=1e-6)


def test_cuda_autocast_defaults_to_fp16_with_a_grad_scaler_as_the_official_runs():
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    # Even on a GPU with bf16 kernels, `auto` is the official fp16 (train.py --use_amp with GradScaler).
    assert amp_dtype_for(cuda, "auto", cuda_bf16=True) == torch.float16
    assert amp_dtype_for(cuda, "fp16", cuda_bf16=True) == torch.float16
    assert amp_dtype_for(cuda, "bf16", cuda_bf16=True) == torch.bfloat16
    assert amp_dtype_for(cuda, "bf16", cuda_bf16=False) == torch.float16
    assert amp_dtype_for(cuda, "off", cuda_bf16=True) is None
    assert needs_grad_scaler(torch.float16) and not needs_grad_scaler(torch.bfloat16) and not needs_grad_scaler(None)
    # The CPU keeps fp32 unless bf16 is asked for (and has kernels).
    assert amp_dtype_for(cpu, "auto") is None and amp_dtype_for(cpu, "fp16") is None
    assert amp_dtype_for(cpu, "bf16") in (torch.bfloat16 if cpu_supports_bf16() else None,)


def test_an_fp16_training_step_goes_through_the_grad_scaler(workspace):
    from ddae_core.engine.reporting import Reporter
    from ddae_core.engine.spec.run_spec import load_spec
    from ddae_core.engine.training import Trainer
    from ddae_core.jobs.specs import create_job

    from .test_engine_training import micro_spec

    run = create_job(workspace, micro_spec())
    trainer = Trainer(load_spec(run), run, Reporter(run, enabled=False), workspace)
    # The CUDA default, on the CPU's fp16 autocast: the same scale, unscale, clip, step, update sequence.
    trainer.model.amp_dtype = torch.float16
    trainer.scaler = grad_scaler_for(trainer.device, trainer.model.amp_dtype)
    before = [p.detach().clone() for p in trainer.model.net.parameters()]
    loss = trainer.train_step(0)
    assert torch.isfinite(loss)
    assert trainer.scaler.get_scale() == 2.0 ** 16   # no overflow: the step was taken, the scale kept
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.net.parameters()))


def _official_attention(block: torch.nn.Module, x: torch.Tensor, heads: int, d_k: int) -> torch.Tensor:
    """The official AttentionBlock (model/block.py) written out: per-head [q|k|v], q and k scaled by d_k^-1/4."""
    b, c, h, w = x.shape
    tokens = block.norm(x).view(b, c, -1).permute(0, 2, 1)
    q, k, v = torch.chunk(block.projection(tokens).view(b, -1, heads, 3 * d_k), 3, dim=-1)
    scale = d_k ** -0.25
    attn = torch.einsum("bihd,bjhd->bijh", q * scale, k * scale).softmax(dim=2)
    res = torch.einsum("bijh,bjhd->bihd", attn, v).reshape(b, -1, heads * d_k)
    return block.output(res).permute(0, 2, 1).reshape(b, c, h, w) + x


def test_attn_channels_per_head_gives_the_official_multi_head_attention():
    cfg = micro_config("ddpm")          # attention at 64 channels (level 2 and the middle)
    cfg["network"]["attn_channels_per_head"] = 16
    torch.manual_seed(0)
    net = build_model(cfg).net
    blocks = [m for m in net.modules() if isinstance(m, AttentionBlock)]
    assert blocks and all(m.heads == 4 and m.projection.out_features == 3 * 64 for m in blocks)
    x = torch.randn(2, 64, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(blocks[0](x), _official_attention(blocks[0], x, 4, 16), atol=1e-5, rtol=1e-5)


def test_attn_channels_per_head_wider_than_an_attention_block_is_refused_naming_the_field():
    cfg = micro_config("ddpm")
    cfg["network"]["attn_channels_per_head"] = 128
    with pytest.raises(ConfigError) as err:
        build_model(cfg)
    assert err.value.field == "network.attn_channels_per_head" and "at most 64" in str(err.value)


def _official_wrn_lrs(base: float, epochs: int, warm_epoch: int = 5) -> list[float]:
    """Each epoch's lr as noisy_classifier_WRN.py sets it: warm-up overwrites, CosineAnnealingLR steps per epoch."""
    param = torch.nn.Parameter(torch.zeros(1))
    optim = torch.optim.SGD([param], lr=base, momentum=0.9, weight_decay=5e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optim, epochs)
    lrs = []
    for e in range(epochs):
        if (e + 1) <= warm_epoch:
            for g in optim.param_groups:
                g["lr"] = base * (e + 1.0) / warm_epoch
        lrs.append(optim.param_groups[0]["lr"])
        optim.step()
        scheduler.step()
    return lrs


@pytest.mark.parametrize("epochs", [200, 15, 6, 3])
def test_wrn_learning_rate_is_the_official_warm_up_then_recursive_cosine(epochs):
    official = _official_wrn_lrs(0.1, epochs)
    ours = [wrn_lr(0.1, e, epochs) for e in range(epochs)]
    assert ours == pytest.approx(official, rel=1e-9, abs=1e-15)


def test_wrn_baseline_defaults_to_the_official_200_epochs_and_the_head_to_15(workspace):
    from app.launch.kinds import KIND
    from ddae_core.cli import build_parser
    from ddae_core.jobs.eval_specs import noisy_spec
    from ddae_core.jobs.specs import create_job

    from .test_engine_training import micro_spec

    parent = create_job(workspace, micro_spec())
    assert noisy_spec(parent, baseline="wrn")["options"]["epochs"] == 200
    assert noisy_spec(parent)["options"]["epochs"] == 15
    assert noisy_spec(parent, baseline="wrn", epochs=3)["options"]["epochs"] == 3   # --epochs for short runs
    args = build_parser().parse_args(["noisy-classifier", "--run", parent.name, "--baseline", "wrn"])
    assert args.epochs is None    # the spec, not the CLI, picks the default
    form = {"parent": parent.name, "baseline": "wrn", "epochs": None, "device": "cpu"}   # the app's blank Epochs
    assert KIND["noisy-classifier"].build(form, workspace)["options"]["epochs"] == 200
