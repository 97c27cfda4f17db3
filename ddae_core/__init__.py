"""The DDAE Studio engine: diffusion pre-training and representation evaluation, free of any GUI."""

import os as _os

# Before torch loads OpenMP: threads that spin while they wait make every op tens of times slower
# as soon as anything else wants the CPU (a second job, the GUI, a test run); measured on 2 cores,
# a training step went from 1.1 s to 25 s. Waiting passively costs little on an idle CPU.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__all__ = ["DDAEModel", "UserError", "build_model", "load_model"]

# The one name table kept (PEP 562), for start-up time: every `ddae_core.x` import runs this file first, and
# `python -m ddae_core.worker` must install its signal handler (and `ddae --help` answer) before torch loads.
_LAZY = {"DDAEModel": ".engine.model", "build_model": ".engine.model", "load_model": ".engine.checkpoint",
         "UserError": ".engine.errors"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'ddae_core' has no attribute {name!r}")
