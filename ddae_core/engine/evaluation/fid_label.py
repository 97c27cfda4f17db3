"""What an FID was computed with, and how it is labelled wherever it appears (no torch: views import it).

Only pytorch-fid's Inception weights (pt_inception-2015-12-05, SHA-256 below) at 2048 dims give the standard FID,
comparable with published numbers. Every `fid` metric event carries the weights' SHA-256 and the dims; an FID
computed with anything else is also marked by a NONSTANDARD_KEY point at the same step (the index keeps metric
points only, so this is how views learn it), and is shown as non-standard.
"""

from __future__ import annotations

WEIGHTS_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"   # pt_inception-2015-12-05
STANDARD_DIMS = 2048
FID_KEY = "fid"
NONSTANDARD_KEY = "fid/nonstandard"     # 1.0 at each step whose FID is not the standard pair's
NONSTANDARD = "non-standard"


def is_standard(weights_sha256: str, dims: int) -> bool:
    return weights_sha256 == WEIGHTS_SHA256 and int(dims) == STANDARD_DIMS


def describe(weights_sha256: str, dims: int) -> str:
    """'' for the standard pair, else `non-standard FID (Inception SHA-256 0123456789ab..., 64 dims)`."""
    if is_standard(weights_sha256, dims):
        return ""
    weights = "the standard Inception" if weights_sha256 == WEIGHTS_SHA256 else \
        f"Inception SHA-256 {weights_sha256[:12]}..."
    return f"{NONSTANDARD} FID ({weights}, {int(dims)} dims; not comparable with published FIDs)"


def fid_name(standard: bool) -> str:
    """`FID`, or `FID (non-standard)`: the label of an FID axis, curve or column."""
    return "FID" if standard else f"FID ({NONSTANDARD})"
