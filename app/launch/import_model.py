"""Import a model trained elsewhere: the dialog behind File > Import a model… and a checkpoint dropped on the window.

The dialog names the format it detects (an official DDAE `.pth`, a diffusers folder, an EDM pickle, a DiT `.pt`:
named DiT-*, or any `.pt` once a VAE folder is given), asks for the YAML config only where the format carries none
(or, for DiT, where its weights do not say its heads) and for DiT's VAE folder, and queues an `import` job through
the Launcher, the same spec `ddae import` builds (`jobs.eval_specs.import_spec`): the run is named after its source
and records the source's SHA-256 and licence. A bad value is one sentence under the form; nothing is queued.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ddae_core.engine.errors import UserError
from ddae_core.engine.importers import FORMAT_WORDS, detect_format
from ddae_core.jobs.eval_specs import import_spec

from .feed import Launcher


def path_is_file(text: str) -> bool:
    return bool(text) and Path(text).expanduser().is_file()


class ImportDialog(QDialog):
    def __init__(self, launcher: Launcher, source: str | Path | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Import a model")
        self.launcher = launcher
        self.run_id: str | None = None
        self.source, self.config, self.data, self.name = QLineEdit(), QLineEdit(), QLineEdit(), QLineEdit()
        self.vae = QLineEdit()
        self.vae.setPlaceholderText("DiT: the diffusers AutoencoderKL folder of its latents (sd-vae-ft-mse)")
        self.source.setPlaceholderText("a .pth or .pkl file, or a diffusers model folder")
        self.config.setPlaceholderText("the YAML config an official checkpoint was trained with")
        self.data.setPlaceholderText("cifar10 (the dataset its probes and Classify use)")
        self.name.setPlaceholderText("the source's name")
        self.format = QLabel()
        self.format.setWordWrap(True)
        self.error = QLabel()
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #b00020")
        form = QFormLayout()
        form.addRow("Model", self._with_buttons(self.source, ("File…", self._pick_file),
                                                ("Folder…", self._pick_folder)))
        form.addRow("", self.format)
        form.addRow("Config", self._with_buttons(self.config, ("File…", self._pick_config)))
        form.addRow("VAE", self._with_buttons(self.vae, ("Folder…", self._pick_vae)))
        form.addRow("Dataset", self.data)
        form.addRow("Name", self.name)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.import_button = self.buttons.addButton("Import", QDialogButtonBox.ButtonRole.AcceptRole)
        self.buttons.accepted.connect(self.submit)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)
        self.source.textChanged.connect(self._detect)
        self.vae.textChanged.connect(self._detect)
        self.source.setText(str(source) if source else "")
        self._detect()

    @staticmethod
    def _with_buttons(edit: QLineEdit, *buttons) -> QWidget:
        box = QWidget()
        row = QHBoxLayout(box)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(edit, 1)
        for text, slot in buttons:
            button = QPushButton(text)
            button.clicked.connect(slot)
            row.addWidget(button)
        return box

    def detected(self) -> str | None:
        text = self.source.text().strip()
        path = Path(text).expanduser() if text else None
        if path is None or not path.exists():
            return None
        return "dit" if path.is_file() and self.vae.text().strip() else detect_format(path)

    def _detect(self) -> None:
        text = self.source.text().strip()
        fmt = self.detected()
        if not text:
            self.format.setText("Choose a checkpoint file or a diffusers model folder.")
        elif fmt is None:
            self.format.setText(f"{text} does not exist.")
        else:
            self.format.setText(f"Found {FORMAT_WORDS[fmt]}.")
        self.config.setEnabled(fmt in (None, "official", "dit"))
        self.vae.setEnabled(fmt in (None, "dit") or path_is_file(text))
        self.import_button.setEnabled(fmt is not None)

    def _pick_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Model file", "", "Checkpoints (*.pth *.pt *.pkl);;All files (*)")
        if path:
            self.source.setText(path)

    def _pick_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "diffusers model folder")
        if path:
            self.source.setText(path)

    def _pick_vae(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "VAE folder (diffusers AutoencoderKL)")
        if path:
            self.vae.setText(path)

    def _pick_config(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Config", "", "YAML (*.yaml *.yml)")
        if path:
            self.config.setText(path)

    def submit(self) -> str | None:
        """Build the import's spec as `ddae import` does and queue it; a bad value is one sentence, nothing queued."""
        self.error.clear()
        fmt = self.detected()
        try:
            spec = import_spec(self.source.text().strip(),
                               (self.config.text().strip() or None) if fmt in ("official", "dit") else None,
                               name=self.name.text().strip() or None, data=self.data.text().strip() or None,
                               fmt=fmt, vae=self.vae.text().strip() or None)
            self.run_id = self.launcher.submit(spec, name_chosen=bool(self.name.text().strip()))
        except (UserError, OSError) as exc:        # ConfigError included: its sentence names the field
            self.error.setText(str(exc))
            return None
        self.accept()
        return self.run_id
