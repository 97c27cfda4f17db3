"""The probe protocols by name, and how each is labelled wherever its numbers appear.

- official: the official code's probe (re-augmented, re-noised epochs; Adam 1e-3, cosine, 15 epochs).
- fast: the same heads, optimiser and steps on cached features, one forward pass per timestep and view.
- standardized: fast, with every head seeing zero-mean, unit-variance features (MAE-style non-affine
  BatchNorm before the linear head). Layers' features differ in scale by 10x and more, so one learning
  rate underfits some layers and not others; standardising makes layers comparable. Not the official
  protocol, and labelled as such.
- dit-official: the DDAE code's DiT probe (dit_probe.py): one head per cell on latents read from the latent
  cache, a random augmented copy per image and batch, 30 epochs; a DiT run's official protocol.
- knn: no heads; every cell is a cosine k-NN vote (k=20, T=0.07, DINO's evaluation; knn.py) over the
  cached features, so a whole grid costs its extraction: the instant grid, labelled "k-NN". The fast protocols
  also fill their grid with k-NN cells as soon as their features are cached (instant.py), before any head trains.
- attentive (not the official protocol): per cell a cross-attention pooling head over the tap's spatial tokens
  instead of the mean pool (attentive.py), labelled "attentive".
- aggregate (not the official protocol): standardized, then one linear head over a learned softmax mixture of
  every cell (aggregate.py); its cells are the standardised heads', its mixture's gain is in grid.json.
"""

from __future__ import annotations

from collections.abc import Mapping

from ...rundir.figures import percent, points
from ..spec.fields import PROTOCOLS as PROTOCOLS  # the probe spec's vocabulary, re-exported for the views

SHORT_LABELS = {"fast": "fast", "official": "official", "standardized": "standardised", "knn": "k-NN",
                "dit-official": "official DiT", "attentive": "attentive", "aggregate": "standardised + aggregation"}
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


# A run's headline: its grid's best accuracy, named by that grid's protocol, against that grid's own baselines
# (db/queries.py headline_of picks the grid). The runs table, its tooltip, Compare and `ddae runs list` all
# write it with these, so one run reads the same everywhere.
PROTOCOL_TAGS = {"fast": "fast", "official": "official", "standardized": "std", "knn": "k-NN", "dit-official": "DiT",
                 "attentive": "attn", "aggregate": "std+agg"}
NO_BASELINES = "no baselines"


def accuracy_text(accuracy: float | None, protocol: str | None) -> str:
    """`40.4% (std)`: a grid's best accuracy and its protocol; '' before the grid has a cell."""
    if accuracy is None:
        return ""
    return f"{percent(accuracy)} ({PROTOCOL_TAGS.get(protocol or 'fast', protocol)})"


def gains_text(accuracy: float | None, pixels: float | None, random: float | None) -> str:
    """`+8.1 / +8.2`: points over that grid's raw pixels / random init; 'no baselines' when it measured none."""
    if accuracy is None:
        return ""
    if pixels is None or random is None:
        return NO_BASELINES
    return f"{points(accuracy - pixels)} / {points(accuracy - random)}"


def headline_tooltip(accuracy: float | None, protocol: str | None, pixels: float | None, random: float | None,
                     grid: str | None = None) -> str:
    """One sentence on where the headline comes from: the grid run, its protocol, its baselines or none."""
    if accuracy is None:
        return ""
    label = SHORT_LABELS.get(protocol or "fast", protocol)
    text = f"Best probe cell {percent(accuracy)}, {label} protocol" + (f", of grid run {grid}" if grid else "")
    if pixels is None or random is None:
        return text + "; that grid measured no baselines."
    same = "the same k-NN vote" if protocol == "knn" else "the same heads"
    return (f"{text}; {same} of that grid reach {percent(pixels)} on raw pixels and "
            f"{percent(random)} on the network at random initialisation.")


def headline_line(accuracy: float | None, protocol: str | None, pixels: float | None, random: float | None) -> str:
    """`best probe cell 40.4% (std), +8.1 / +8.2 over raw pixels / random init` (or `, no baselines`)."""
    if accuracy is None:
        return ""
    gains = gains_text(accuracy, pixels, random)
    over = "" if gains == NO_BASELINES else " over raw pixels / random init"
    return f"best probe cell {accuracy_text(accuracy, protocol)}, {gains}{over}"
