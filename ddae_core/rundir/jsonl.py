"""The one reader of files that grow by whole lines while they are read (events.jsonl, log.txt).

A writer may be anywhere in its last line (or killed there): a last line without its newline is not
complete yet, so it is left for the next read, which starts at the first byte not yet returned.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def complete_lines(data: bytes) -> tuple[list[bytes], int]:
    """The complete lines of `data` (without their newlines), and the bytes they take up.

    A last line without its newline is left out: data[end:] is where the next read begins.
    """
    end = data.rfind(b"\n") + 1
    return data[:end].split(b"\n")[:-1], end


@dataclass
class NewLines:
    """What one read of a growing file returned."""

    start: int                      # the byte the read began at (0 when the file was rewritten)
    end: int                        # the byte after the last complete line: where the next read begins
    size: int                       # the file's size when it was read
    mtime: float
    lines: list[bytes] = field(default_factory=list)
    rewound: bool = False           # the file shrank below the offset (rewritten): read from its start
    overlong: bool = False          # no line ends within `limit` bytes: lines holds them as one, end skips them


def read_new_lines(path: str | Path, offset: int, limit: int) -> NewLines | None:
    """The complete lines added to `path` since byte `offset`, reading at most `limit` bytes.

    None when the file is missing or did not grow; OSError when it cannot be read. A read that finds
    only a torn last line returns no lines and end == offset.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    if st.st_size == offset:
        return None
    rewound = st.st_size < offset
    start = 0 if rewound else offset
    with open(path, "rb") as fh:
        fh.seek(start)
        data = fh.read(limit)
    found = NewLines(start, start, st.st_size, st.st_mtime, rewound=rewound)
    if b"\n" not in data and len(data) >= limit:     # a "line" longer than any reader will hold
        found.lines, found.end, found.overlong = [data], start + len(data), True
        return found
    found.lines, used = complete_lines(data)
    found.end = start + used
    return found


def ends_torn(path: str | Path) -> bool:
    """True if `path` ends in a line without its newline (a writer killed mid-line); False if empty or missing."""
    try:
        with open(path, "rb") as fh:
            if fh.seek(0, os.SEEK_END) == 0:
                return False
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) != b"\n"
    except OSError:
        return False
