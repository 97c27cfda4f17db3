"""`python -m ddae_core.worker RUN_DIR`: run one job detached from whoever started it.

The scheduler starts this in its own process session with stdout/stderr going to the run's log.txt.
It never opens the database: everything it has to say goes into events.jsonl.
Exit status: 0 done, 1 failed, 3 cancelled.
"""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path

from .engine.reporting import STOP_FILE

EXIT_CODES = {"done": 0, "failed": 1, "cancelled": 3}
# The job's own loggers: their INFO lines are its words in log.txt (db's INFO lines stay out, as before).
PROJECT_LOGGERS = ("ddae_core",)


def setup_logging() -> None:
    """Send the job's log records where its print()s went: ddae_core's INFO lines to stdout, bare.

    The launcher (the scheduler, or a Slurm node) points stdout and stderr at the run's log.txt, so
    `logging.getLogger(__name__).info(...)` in the engine reads in log.txt exactly as a print did.
    Other libraries keep Python's default: their warnings and errors on stderr (also log.txt), no INFO.
    """
    from .jobs.worklog import job_logging

    for name in PROJECT_LOGGERS:
        job_logging(name)
    others = logging.StreamHandler(sys.stderr)
    others.setFormatter(logging.Formatter("%(message)s"))
    others.setLevel(logging.WARNING)
    logging.getLogger().handlers[:] = [others]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m ddae_core.worker RUN_DIR", file=sys.stderr)
        return 2
    run_dir = Path(args[0]).resolve()
    if not (run_dir / "spec.yaml").is_file():
        print(f"error: {run_dir} is not a run directory (no spec.yaml)", file=sys.stderr)
        return 2
    # A cancel may come while torch is still importing: until the job installs its own handlers,
    # SIGTERM leaves the stop request the job will find (instead of killing it as `interrupted`).
    signal.signal(signal.SIGTERM, lambda signum, frame: (run_dir / STOP_FILE).touch())
    setup_logging()
    from .jobs.specs import execute  # after the argument check, so a usage error is instant
    from .jobs.worklog import LogEcho

    status = execute(run_dir, workspace=run_dir.parent.parent, echo=LogEcho())     # log.txt in words
    return EXIT_CODES.get(status, 1)


if __name__ == "__main__":
    sys.exit(main())
