"""The network switches other codebases' models need: checked like every config field, absent from official ones."""

from __future__ import annotations

import pytest
import torch

from ddae_core.engine.config import load_config, parse_model_config
from ddae_core.engine.errors import ConfigError
from ddae_core.engine.nets import UNet

from .fixtures import micro_config


def test_official_presets_parse_without_the_switches():
    for preset in ("ddpm-cifar10", "edm-ddpmpp-cifar10"):
        parsed = parse_model_config(load_config(preset))
        assert not {"norm_eps", "out_norm_groups", "downsample_padding", "skip_scale", "resample_shortcut",
                    "decoder_attn"} & parsed.network.keys()
        assert "time_input" not in parsed.diffusion


@pytest.mark.parametrize("field, value", [
    ("network.norm_eps", 0), ("network.out_norm_groups", 7), ("network.downsample_padding", "left"),
    ("network.skip_scale", 2), ("network.resample_shortcut", "yes"), ("network.decoder_attn", "first"),
    ("diffusion.time_input", "integer"),
])
def test_bad_switch_values_name_the_field(field, value):
    cfg = micro_config()
    section, key = field.split(".")
    cfg[section][key] = value
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        parse_model_config(cfg)


def test_edm_ddpmpp_switches_give_edm_parameter_count():
    """EDM's CIFAR-10 DDPM++ (augment_dim 9) has 55,733,891 parameters, as EDM's own code counted them here."""
    cfg = load_config("edm-ddpmpp-aug-cifar10")
    cfg["network"].update({"norm_eps": 1e-6, "out_norm_groups": 32, "skip_scale": 0.5 ** 0.5,
                           "resample_shortcut": True, "decoder_attn": "last"})
    with torch.device("meta"):
        net = UNet(**parse_model_config(cfg).network)
    assert sum(p.numel() for p in net.parameters()) == 55_733_891
