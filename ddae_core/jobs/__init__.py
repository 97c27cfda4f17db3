"""The job system: job specs, the worker, the scheduler and its backends (local, Slurm), bundled examples."""
