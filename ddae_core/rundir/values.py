"""What a run's device and queue fields may hold (spec.yaml's device:, queue: and meta.json's priority)."""

from __future__ import annotations

DEVICE_REQUESTS = ("auto", "cpu", "cuda")
# SQLite stops at 64-bit integers; a value past these is a typo, and one that reached the index would make
# every later write of the workspace fail.
PRIORITY_LIMIT = 10**9             # priorities run from -PRIORITY_LIMIT to PRIORITY_LIMIT
MAX_GPUS = 1024


def check_priority(value) -> int:
    """`value` as a queue priority; ValueError in one sentence when it is not a whole number in range."""
    if isinstance(value, bool) or not isinstance(value, int) or not -PRIORITY_LIMIT <= value <= PRIORITY_LIMIT:
        raise ValueError(f"A queue priority must be a whole number from {-PRIORITY_LIMIT} to {PRIORITY_LIMIT} "
                         f"(got {value!r}).")
    return value


def check_gpus(value) -> int:
    """`value` as a job's GPU count; ValueError in one sentence when it is not 0 to MAX_GPUS."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_GPUS:
        raise ValueError(f"A job needs 0 (the CPU) to {MAX_GPUS} GPUs (got {value!r}).")
    return value
