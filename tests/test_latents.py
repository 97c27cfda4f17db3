"""The latent path's VAE and preprocessing: diffusers' AutoencoderKL read offline, the official scaling and
views, and one sentence for each folder that cannot be used."""

from __future__ import annotations

import json

import pytest
import torch

from ddae_core.engine.errors import UserError
from ddae_core.engine.latents import SCALING_FACTOR, load_vae
from ddae_core.engine.latents.preprocess import eval_view, native_views, train_view
from tests.latents_support import save_tiny_vae


@pytest.fixture
def vae_folder(tmp_path):
    return save_tiny_vae(tmp_path / "vae")


def test_round_trip_shapes_and_the_official_scaling(vae_folder):
    vae = load_vae(vae_folder)
    images = torch.rand(3, 3, 64, 64)
    latents = vae.encode(images, torch.Generator().manual_seed(0))
    assert latents.shape == (3, 4, 8, 8) and latents.dtype == torch.float32
    assert vae.latent_shape(256) == (4, 32, 32)
    decoded = vae.decode(latents)
    assert decoded.shape == (3, 3, 64, 64) and decoded.dtype == torch.float32
    assert 0 <= decoded.min() and decoded.max() <= 1

    # What the official code computes: 0.18215 * vae.encode(2x - 1).latent_dist.sample(), decoded from z / 0.18215.
    posterior = vae.model.encode(images * 2 - 1).latent_dist
    noise = torch.randn(posterior.mean.shape, generator=torch.Generator().manual_seed(0))
    expected = SCALING_FACTOR * (posterior.mean + posterior.std * noise)
    torch.testing.assert_close(latents, expected, rtol=0, atol=1e-6)
    official = ((vae.model.decode(latents / SCALING_FACTOR).sample + 1) / 2).clamp(0, 1)
    torch.testing.assert_close(decoded, official, rtol=0, atol=1e-6)


def test_a_seed_gives_the_same_latents_and_another_seed_others(vae_folder):
    vae = load_vae(vae_folder)
    images = torch.rand(2, 3, 64, 64)
    first = vae.encode(images, torch.Generator().manual_seed(5))
    assert torch.equal(first, vae.encode(images, torch.Generator().manual_seed(5)))
    assert not torch.allclose(first, vae.encode(images, torch.Generator().manual_seed(6)))


def test_identity_names_config_and_weights_not_where_they_were_saved(tmp_path, vae_folder):
    identity = load_vae(vae_folder).identity
    assert len(identity) == 16
    assert load_vae(save_tiny_vae(tmp_path / "copy")).identity == identity       # same seed, other folder

    vae = load_vae(vae_folder)
    with torch.no_grad():
        vae.model.encoder.conv_in.weight[0, 0, 0, 0] += 1e-3
    vae.model.save_pretrained(tmp_path / "changed")
    assert load_vae(tmp_path / "changed").identity != identity

    config = json.loads((vae_folder / "config.json").read_text())
    config["scaling_factor"] = 0.5
    (vae_folder / "config.json").write_text(json.dumps(config))
    assert load_vae(vae_folder).identity != identity


def test_a_pipeline_folder_is_read_through_its_vae_folder(tmp_path):
    save_tiny_vae(tmp_path / "pipeline" / "vae")
    assert load_vae(tmp_path / "pipeline").folder == tmp_path / "pipeline" / "vae"


def _refusal(folder) -> str:
    with pytest.raises(UserError) as caught:
        load_vae(folder)
    message = str(caught.value)
    assert "\n" not in message and message.endswith(".")
    return message


def test_refusals_name_the_folder_and_what_to_do(tmp_path, vae_folder):
    assert "does not exist" in _refusal(tmp_path / "nowhere") and "AutoencoderKL" in _refusal(tmp_path / "nowhere")

    (tmp_path / "empty").mkdir()
    assert "holds no config.json" in _refusal(tmp_path / "empty")

    weights = vae_folder / "diffusion_pytorch_model.safetensors"
    saved = weights.read_bytes()
    weights.unlink()
    assert "diffusion_pytorch_model.safetensors" in _refusal(vae_folder)

    weights.write_bytes(saved[: len(saved) // 2])
    assert "cannot be loaded" in _refusal(vae_folder)
    weights.write_bytes(saved)

    config = json.loads((vae_folder / "config.json").read_text())
    (vae_folder / "config.json").write_text(json.dumps({**config, "_class_name": "UNet2DModel"}))
    assert "describes a UNet2DModel, not an AutoencoderKL" in _refusal(vae_folder)
    (vae_folder / "config.json").write_text("{not json")
    assert "cannot be read as JSON" in _refusal(vae_folder)


def test_without_diffusers_the_refusal_names_the_extra(vae_folder, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "diffusers", None)      # `import diffusers` now raises ImportError
    assert "pip install 'ddae-studio[diffusers]'" in _refusal(vae_folder)


def test_the_test_view_is_torchvisions_resize_to_256_within_one_level():
    from PIL import Image
    from torchvision import transforms

    images = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    official = transforms.Compose([transforms.Resize(256), transforms.ToTensor()])
    expected = torch.stack([official(Image.fromarray(image.permute(1, 2, 0).numpy())) for image in images])
    ours = eval_view(images)
    assert ours.shape == (3, 3, 256, 256)
    difference = (ours - expected).abs() * 255
    assert difference.max() <= 1.0 + 1e-4 and difference.mean() < 0.5     # PIL's fixed-point rounding
    assert torch.equal(ours * 255, (ours * 255).round())                    # whole 8-bit levels, as PIL's


def test_the_train_view_flips_and_crops_at_the_native_size_before_resizing():
    images = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    views = native_views(images, augment=True, generator=torch.Generator().manual_seed(2))
    plain = images.float() / 255
    # Each view is its image shifted by up to 4 pixels (zero padding), mirrored for about half of them.
    mirrored = 0
    for view, image in zip(views, plain):
        shifts = [(dy, dx, flip) for flip in (False, True) for dy in range(-4, 5) for dx in range(-4, 5)
                  if torch.equal(view[:, 8:24, 8:24], (image.flip(2) if flip else image)[:, 8 + dy:24 + dy,
                                                                                          8 + dx:24 + dx])]
        assert shifts, "a view that is no shifted (and maybe mirrored) copy of its image"
        mirrored += shifts[0][2]
    assert 16 < mirrored < 48
    resized = train_view(images, generator=torch.Generator().manual_seed(2))
    assert resized.shape == (64, 3, 256, 256)
    torch.testing.assert_close(resized, eval_view((views * 255).round().to(torch.uint8)), rtol=0, atol=0)


def test_under_autocast_the_vae_still_returns_float32_close_to_fp32(vae_folder):
    """The CUDA path's mixed precision (fp16 there, bf16 here on the CPU): outputs stay float32 for the cache."""
    from ddae_core.engine.latents import LatentVAE

    exact = load_vae(vae_folder)
    mixed = LatentVAE(exact.model, folder=exact.folder, identity=exact.identity, device=exact.device,
                      amp_dtype=torch.bfloat16)
    images = torch.rand(2, 3, 64, 64)
    latents = mixed.encode(images, torch.Generator().manual_seed(0))
    assert latents.dtype == torch.float32 and mixed.decode(latents).dtype == torch.float32
    reference = exact.encode(images, torch.Generator().manual_seed(0))
    assert not torch.equal(latents, reference)                          # it did run in bf16
    torch.testing.assert_close(latents, reference, rtol=0.05, atol=0.05)
