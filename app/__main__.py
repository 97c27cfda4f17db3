"""`python -m app`: the desktop app, as `ddae-studio` and `python main.py` start it."""

import sys

from app.studio import main

sys.exit(main(prog="python -m app"))
