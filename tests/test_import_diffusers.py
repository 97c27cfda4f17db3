"""diffusers UNet2DModel folders of the DDPM layout: parity with diffusers itself, and the import as a run."""

from __future__ import annotations

import json

import pytest
import torch

from ddae_core.engine.checkpoint import load_into
from ddae_core.engine.config import parse_model_config
from ddae_core.engine.errors import UserError
from ddae_core.engine.evaluation.classify import Classifier
from ddae_core.engine.importers import detect_format, source_config, source_state
from ddae_core.engine.model import DDAEModel
from ddae_core.jobs.eval_specs import import_spec, probe_spec
from ddae_core.jobs.specs import create_job, execute

diffusers = pytest.importorskip("diffusers")

# google/ddpm-cifar10-32's unet/config.json (Ho et al.'s CIFAR-10 model), as published.
DDPM_CIFAR10 = {
    "act_fn": "silu", "attention_head_dim": None, "block_out_channels": [128, 256, 256, 256],
    "center_input_sample": False, "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"],
    "downsample_padding": 0, "flip_sin_to_cos": False, "freq_shift": 1, "in_channels": 3, "layers_per_block": 2,
    "mid_block_scale_factor": 1, "norm_eps": 1e-06, "norm_num_groups": 32, "out_channels": 3, "sample_size": 32,
    "time_embedding_type": "positional", "up_block_types": ["UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
}
# A small one of the same layout, with two attention heads (so the q/k/v stacking per head is tested).
SMALL = {**DDPM_CIFAR10, "block_out_channels": [32, 64, 64], "layers_per_block": 1, "sample_size": 16,
         "attention_head_dim": 32, "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D"],
         "up_block_types": ["UpBlock2D", "AttnUpBlock2D", "UpBlock2D"]}
SCHEDULER = {"num_train_timesteps": 1000, "beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": "linear",
             "variance_type": "fixed_small", "clip_sample": True}
DATA = "builtin:shapes?n_train=64&n_test=32"


def make_folder(folder, config: dict, seed: int = 0, safe: bool = True, scheduler: dict = SCHEDULER):
    """A random-init UNet2DModel (GroupNorm affines randomised too) saved as a pipeline folder."""
    torch.manual_seed(seed)
    unet = diffusers.UNet2DModel(**config)
    with torch.no_grad():
        for m in unet.modules():
            if isinstance(m, torch.nn.GroupNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    unet.save_pretrained(folder / "unet", safe_serialization=safe)
    diffusers.DDPMScheduler(**scheduler).save_pretrained(folder / "scheduler")
    return unet.eval()


def studio_model(folder) -> DDAEModel:
    config = source_config(folder, "diffusers")
    model = DDAEModel(parse_model_config(config))
    load_into(model, source_state(folder, "diffusers", config), folder)
    return model.eval()


def diffusers_taps(unet) -> list[torch.nn.Module]:
    """The diffusers modules whose outputs are Studio's taps, in Studio's tap order (enc_*, mid, out_*)."""
    blocks = []
    for group in (unet.down_blocks, [unet.mid_block], unet.up_blocks):
        for block in group:
            if block is unet.mid_block:
                blocks.append(block)
                continue
            attentions = getattr(block, "attentions", None)
            blocks += [attentions[j] if attentions else resnet for j, resnet in enumerate(block.resnets)]
    return blocks


@pytest.mark.parametrize("config, safe", [(SMALL, True), (SMALL, False), (DDPM_CIFAR10, True)],
                         ids=["small-safetensors", "small-bin", "ddpm-cifar10-32"])
def test_converted_network_matches_diffusers_output_and_every_tap(tmp_path, config, safe):
    unet = make_folder(tmp_path, config, safe=safe)
    model = studio_model(tmp_path)
    size = config["sample_size"]
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    acts: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: acts.append(out)) for m in diffusers_taps(unet)]
    for timestep in (1, 11, 500, 1000):         # Studio's 1-indexed steps; diffusers' step index is t - 1
        acts.clear()
        with torch.no_grad():
            theirs = unet(x, timestep - 1).sample
            ours, taps = model.net.forward_taps(x, model.framework.time_input(torch.tensor([timestep])),
                                                taps=model.taps)
        assert (ours - theirs).abs().max() < 1e-5
        assert len(acts) == len(model.taps)
        for name, act in zip(model.taps, acts):
            assert taps[name].shape == act.shape, name
            # fp32 rounding grows with depth and magnitude: 1e-5 of the tap's scale (the 35.7M net's mid tap
            # reaches |3.4| and differs by up to 1.3e-5, 30 ulp; every other tap by under 1e-5).
            assert (taps[name] - act).abs().max() < 1e-5 * max(1.0, act.abs().max().item()), name
    for hook in hooks:
        hook.remove()
    if config is DDPM_CIFAR10:
        assert sum(p.numel() for p in model.net.parameters()) == 35_746_307
        assert sum(p.numel() for p in unet.parameters()) == 35_746_307
        assert model.config.feature_layer == "out_6"


def test_schedule_is_diffusers_shifted_by_one_step(tmp_path):
    make_folder(tmp_path, SMALL)
    model = studio_model(tmp_path)
    scheduler = diffusers.DDPMScheduler(**SCHEDULER)
    ours = model.framework.train["alphabar"][1:]
    assert torch.allclose(ours, scheduler.alphas_cumprod, rtol=1e-5, atol=0)
    assert model.framework.time_input(torch.tensor([11])).item() == 10


def test_samplers_feed_the_zero_based_step(tmp_path):
    """DDIM and ancestral sampling hand a diffusers network t - 1 where an official one gets t / T."""
    make_folder(tmp_path, SMALL)
    framework = studio_model(tmp_path).framework
    seen: list[float] = []

    def net(x, time_in, aug_label):
        seen.append(float(time_in[0]))
        return torch.zeros_like(x)

    framework.sample(net, (1, 3, 16, 16), "cpu", sampler="ddim", steps=4)
    assert seen == [750.0, 500.0, 250.0, 0.0]
    seen.clear()
    framework.n_T = 3        # a short ancestral chain
    framework.sample(net, (1, 3, 16, 16), "cpu", sampler="ddpm")
    assert seen == [2.0, 1.0, 0.0]


def test_old_attention_key_names_are_read(tmp_path):
    """Folders saved by diffusers before 0.14 name the attention's parts query/key/value/proj_attn."""
    unet = make_folder(tmp_path, SMALL)
    path = tmp_path / "unet" / "diffusion_pytorch_model.safetensors"
    from safetensors.torch import load_file, save_file

    renames = {".to_q.": ".query.", ".to_k.": ".key.", ".to_v.": ".value.", ".to_out.0.": ".proj_attn."}
    state = {}
    for key, value in load_file(path).items():
        for new, old in renames.items():
            key = key.replace(new, old)
        state[key] = value
    save_file(state, path)
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        assert (studio_model(tmp_path).net(x, torch.tensor([4.0])) - unet(x, 4).sample).abs().max() < 1e-5


@pytest.mark.parametrize("field, value, words", [
    ("beta_schedule", "squaredcos_cap_v2", "linear beta schedule"),
    ("prediction_type", "v_prediction", "epsilon prediction"),
])
def test_unsupported_schedule_is_one_sentence(tmp_path, field, value, words):
    make_folder(tmp_path, SMALL, scheduler={**SCHEDULER, field: value})
    with pytest.raises(UserError, match=words) as err:
        import_spec(tmp_path)
    assert field in str(err.value) and "\n" not in str(err.value)


def test_imported_folder_probes_and_classifies_like_a_trained_run(workspace, tmp_path):
    folder = tmp_path / "ddpm-small"
    make_folder(folder, {**SMALL, "sample_size": 32})
    (folder / "README.md").write_text("---\nlicense: apache-2.0\ntags:\n- pytorch\n---\n# A model card\n")
    assert detect_format(folder) == "diffusers"
    spec = import_spec(folder, data=DATA)
    assert spec["options"]["format"] == "diffusers" and len(spec["options"]["sha256"]) == 64
    assert spec["options"]["licence"] == "apache-2.0" and spec["name"] == "ddpm-small"
    assert spec["config"]["diffusion"] == {"n_T": 1000, "betas": [0.0001, 0.02], "time_input": "index"}
    job = create_job(workspace, spec)
    assert execute(job, workspace, handle_signals=False) == "done"
    probe = create_job(workspace, probe_spec(job, timesteps="11", layers="out_2,out_4", train_limit=32,
                                             test_limit=16, epochs=1, device="cpu"))
    assert execute(probe, workspace, handle_signals=False) == "done"
    grid = json.loads((probe / "grid.json").read_text())
    assert set(grid["accuracy"]["11"]) == {"out_2", "out_4"}
    classifier = Classifier.from_run(job, device="cpu")
    result = classifier.predict(torch.rand(1, 3, 32, 32), 11)
    assert abs(float(result.probabilities.sum()) - 1) < 1e-4
