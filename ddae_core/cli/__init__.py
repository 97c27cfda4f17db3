"""The `ddae` command line. Each module registers the commands it is named after (`ddae sweep`: sweep.py)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from ..engine.errors import UserError

# Each has register(subparsers); the work of a command is imported inside it, so that `ddae --help` stays fast.
from . import cache, cluster, demo, evaluate, examples, explore, queue, runs, sweep, train

# In `ddae --help`'s order.
COMMANDS = (train, demo, evaluate, explore, sweep, queue, runs, examples, cluster, cache)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ddae", description="DDAE Studio: diffusion pre-training and what its layers know.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()             # a reader gone early (`| head`) shows here, not at exit
        return code
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return 1


def _silence_stdout() -> None:
    """Point stdout at /dev/null: its reader left (a listing piped into `head`), which is no error, and
    Python's final flush would otherwise print a BrokenPipeError traceback."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, ValueError, OSError):
        return                          # not a real file (a test's captured stream)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
