"""NoiseSlider: choose a noise level, DDPM timestep 0..min(n_T, 1000) or EDM sigma index, with its sigma shown.

The slider covers the model's whole range; past the probed heads' timesteps (set_head_timesteps) its label
says plainly that the answer comes from the nearest head, which never saw that much noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSlider, QWidget

from ddae_core.engine.evaluation.certainty import head_range_note

DDPM_POSITIONS = 1000   # t = t_max * (position / 1000)^2: half the travel covers t <= t_max / 4


class NoiseSlider(QWidget):
    """A slider over noise levels; timestepChanged(t) when the user moves it (not on set_timestep)."""

    timestepChanged = Signal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._framework = "ddpm"
        self._lo, self._hi = 0, 0
        self._sigmas: Sequence[float] = ()
        self._t = 0
        self._heads: tuple[int, ...] = ()       # probe heads' timesteps; () for heads that take any
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setEnabled(False)
        self.slider.valueChanged.connect(self._on_slider)
        self.label = QLabel("noise: —")
        self.label.setMinimumWidth(230)
        self.warning = QLabel("")
        self.warning.setWordWrap(True)
        self.warning.setStyleSheet("color: #b00020;")
        self.warning.hide()
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("Noise"))
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.label)
        layout.addWidget(self.warning, 1)

    def configure(self, framework: str, lo: int, hi: int, sigmas: Sequence[float], t: int) -> None:
        """Range lo..hi of `framework` ("ddpm" | "edm"); sigmas[t] is the noise's standard deviation."""
        self._framework, self._lo, self._hi, self._sigmas = framework, int(lo), int(hi), sigmas
        with QSignalBlocker(self.slider):
            if framework == "edm":
                self.slider.setRange(self._lo, self._hi)
            else:
                self.slider.setRange(0, DDPM_POSITIONS)
        self.slider.setEnabled(True)
        self.set_timestep(t)

    def set_head_timesteps(self, timesteps: Sequence[int]) -> None:
        """The timesteps probe heads exist at (warned about outside their range); () for any-t heads."""
        self._heads = tuple(int(t) for t in timesteps)
        self.set_timestep(self._t)

    def disable(self) -> None:
        self.slider.setEnabled(False)
        self.label.setText("noise: —")
        self.warning.hide()

    def clamp(self, t: int) -> int:
        return max(self._lo, min(self._hi, int(t)))

    def timestep(self) -> int:
        return self._t

    def set_timestep(self, t: int, head_timestep: int | None = None) -> None:
        """Show level t (clamped) without emitting; head_timestep names the probe head used, if another."""
        self._t = self.clamp(t)
        with QSignalBlocker(self.slider):
            self.slider.setValue(self._position_of(self._t))
        sigma = self._sigmas[self._t] if 0 <= self._t < len(self._sigmas) else float("nan")
        text = (f"σ index {self._t}: σ = {sigma:.3g}" if self._framework == "edm"
                else f"t = {self._t} (σ ≈ {sigma:.3g})")
        if head_timestep is not None and head_timestep != self._t:
            text += f", head of t={head_timestep}"
        self.label.setText(text)
        note = head_range_note(self._heads, self._t)
        self.warning.setText(note)
        self.warning.setVisible(bool(note))

    def warning_text(self) -> str:
        """The out-of-range warning on show ('' when none)."""
        return self.warning.text() if not self.warning.isHidden() else ""

    def _position_of(self, t: int) -> int:
        if self._framework == "edm":
            return t
        return round(DDPM_POSITIONS * math.sqrt(t / self._hi)) if self._hi > 0 else 0

    def _timestep_at(self, position: int) -> int:
        if self._framework == "edm":
            return position
        return round(self._hi * (position / DDPM_POSITIONS) ** 2)

    def _on_slider(self, position: int) -> None:
        t = self.clamp(self._timestep_at(position))
        if t != self._t:
            self.set_timestep(t)
            self.timestepChanged.emit(t)
