"""DDAE Studio from a checkout: `python main.py [--workspace DIR]` (installed, the same app is `ddae-studio`).

Opens the workspace given, else the one open last time, else $DDAE_WORKSPACE or ~/ddae-workspace.
Closing the window leaves running jobs running; opening it again shows them live.
"""

from __future__ import annotations

import sys

from app.studio import main as studio_main


def main(argv: list[str] | None = None) -> int:
    return studio_main(argv, prog="main.py")


if __name__ == "__main__":
    sys.exit(main())
