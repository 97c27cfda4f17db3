"""The DDAE Studio engine: diffusion pre-training and representation evaluation, free of any GUI."""

from .checkpoint import load_model
from .errors import UserError
from .model import DDAEModel, build_model

__all__ = ["DDAEModel", "UserError", "build_model", "load_model"]
