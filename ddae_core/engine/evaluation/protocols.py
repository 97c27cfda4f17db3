"""The probe protocols by name, and how each is labelled wherever its numbers appear.

- official: the official code's probe (re-augmented, re-noised epochs; Adam 1e-3, cosine, 15 epochs).
- fast: the same heads, optimiser and steps on cached features, one forward pass per timestep and view.
- standardized: fast, with every head seeing zero-mean, unit-variance features (MAE-style non-affine
  BatchNorm before the linear head). Layers' features differ in scale by 10x and more, so one learning
  rate underfits some layers and not others; standardising makes layers comparable. Not the official
  protocol, and labelled as such.
"""

from __future__ import annotations

from collections.abc import Mapping

PROTOCOLS = {
    "fast": "fast (official optimiser on cached features)",
    "official": "official",
    "standardized": "standardised heads (MAE-style, not the official protocol)",
}
SHORT_LABELS = {"fast": "fast", "official": "official", "standardized": "standardised"}
# Metrics a probe reports for its baselines (at its checkpoint step); views read them from the store.
BASELINE_KEYS = {"pixels": "probe/baseline/pixels", "random_init": "probe/baseline/random_init"}
BASELINE_LABELS = {"pixels": "raw pixels", "random_init": "random init"}


def protocol_of(options: Mapping) -> str:
    """The protocol of a probe's options or grid.json; older runs said fast + standardize(d): true."""
    protocol = str(options.get("protocol") or "fast")
    if protocol == "fast" and (options.get("standardize") or options.get("standardized")):
        return "standardized"
    return protocol


def is_standardized(options: Mapping) -> bool:
    return protocol_of(options) == "standardized"
