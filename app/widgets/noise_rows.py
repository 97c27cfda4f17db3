"""A probe grid's row labels: the family's own noise index, or log-SNR, the axis every family shares.

The rows of a heatmap stay evenly spaced whichever labels they carry: uneven steps in log-SNR are read from
the labels' numbers, never from the spacing (said in the box's tooltip and the axis label).
"""

from __future__ import annotations

from PySide6.QtWidgets import QComboBox

from ddae_core.engine.evaluation.noise_axis import NoiseAxis

NOISE_AXES = {"index": "noise index", "logsnr": "log-SNR"}
AXIS_TIP = ("Label the rows by the family's own noise index (DDPM t, EDM sigma index, DiT t) or by log-SNR, the "
            "axis every family shares (high: little noise). The rows stay evenly spaced either way: read the steps "
            "between noise levels from the labels, not from the spacing. Hover a cell for both.")
INDEX_ONLY_TIP = "Index only: neither this grid nor its run's spec says the noise schedule, so its rows have no log-SNR"


class NoiseRows:
    """Each row's index label and log-SNR (where the grid's schedule is known), and which of them is shown."""

    def __init__(self) -> None:
        self.box = QComboBox()
        for key, text in NOISE_AXES.items():
            self.box.addItem(text, key)
        self.box.setEnabled(False)
        self.box.setToolTip(INDEX_ONLY_TIP)
        self.timesteps: list[int] = []
        self.labels: dict[int, str] = {}
        self.noise: NoiseAxis | None = None
        self.log_snr: dict[int, float] = {}

    def set_rows(self, timesteps: list[int], labels: dict[int, str]) -> None:
        self.timesteps, self.labels = list(timesteps), dict(labels)
        self._update()

    def set_noise(self, axis: NoiseAxis | None) -> bool:
        """The grid's schedule (None: index only); False when it was already this one."""
        if axis == self.noise:
            return False
        self.noise = axis
        self._update()
        return True

    def _update(self) -> None:
        try:
            self.log_snr = self.noise.log_snrs(self.timesteps) if self.noise else {}
        except ValueError:          # a row outside the schedule: the grid stays on its own index
            self.log_snr = {}
        self.box.setEnabled(bool(self.log_snr))
        self.box.setToolTip(AXIS_TIP if self.log_snr else INDEX_ONLY_TIP)

    def mode(self) -> str:
        """'logsnr' when the rows are labelled by log-SNR, else 'index'."""
        return "logsnr" if self.box.currentData() == "logsnr" and self.log_snr else "index"

    def index_text(self, timestep: int) -> str:
        return self.labels.get(timestep, f"t={timestep}")

    def texts(self) -> list[str]:
        """The rows' labels as drawn."""
        if self.mode() == "logsnr":
            return [f"{self.log_snr[t]:.2f}" if t in self.log_snr else self.index_text(t) for t in self.timesteps]
        return [self.index_text(t) for t in self.timesteps]

    def axis_label(self) -> str:
        return "log-SNR (rows evenly spaced)" if self.mode() == "logsnr" else "noise level"

    def where(self, timestep: int) -> str:
        """`t=11 (log-SNR 6.12)`: both names of a row, for the hover readout."""
        text = self.index_text(timestep)
        return f"{text} (log-SNR {self.log_snr[timestep]:.2f})" if timestep in self.log_snr else text
