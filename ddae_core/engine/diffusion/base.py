"""What the DDPM and EDM frameworks share: a device cache for constants and the network call signature."""

from __future__ import annotations

from collections.abc import Callable

import torch

# net(network_input, time_input, aug_label) -> network output; the framework never sees the module itself.
NetFn = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]


class Framework:
    name: str
    samplers: tuple[str, ...]
    default_probe_timesteps: tuple[int, ...]
    default_feature_timestep: int
    min_timestep: int
    max_timestep: int

    def on(self, device, table: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The constant table on `device` (copied once per device)."""
        device = torch.device(device)
        cache = self.__dict__.setdefault("_device_cache", {})
        key = (id(table), device)
        if key not in cache:
            cache[key] = {k: v.to(device) for k, v in table.items()}
        return cache[key]

    def check_timestep(self, timestep: int) -> None:
        if not self.min_timestep <= timestep <= self.max_timestep:
            raise ValueError(f"timestep {timestep} is outside {self.min_timestep}..{self.max_timestep} "
                             f"for {self.name.upper()}")

    def as_timesteps(self, timestep, batch: int, device) -> torch.Tensor:
        """An int or a (B,) tensor of timesteps -> a (B,) long tensor on `device`, range-checked."""
        if isinstance(timestep, torch.Tensor):
            t = timestep.to(device=device, dtype=torch.long).reshape(-1)
            if t.numel() == 1:
                t = t.expand(batch)
            lo, hi = int(t.min()), int(t.max())
            self.check_timestep(lo)
            self.check_timestep(hi)
            return t
        self.check_timestep(int(timestep))
        return torch.full((batch,), int(timestep), dtype=torch.long, device=device)
