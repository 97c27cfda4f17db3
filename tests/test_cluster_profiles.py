"""Cluster profiles that cannot do harm on the node: no Slurm needed.

The profile's `python` is quoted in the job's script (it is shell there), sbatch lines that would take over
the queue's own options are refused in one sentence, and `ddae cluster check --submit` ends within its
timeout when the job never shows in squeue (here a stand-in sbatch/squeue on PATH, as a broken slurmctld
would answer)."""

from __future__ import annotations

import os
import stat
import time

import pytest

from ddae_core.engine.errors import UserError
from ddae_core.jobs import slurm
from ddae_core.jobs.cluster import ClusterProfile, profile_from_dict, save_profiles
from ddae_core.jobs.slurm import Shape, sbatch_parameters


@pytest.mark.parametrize("line, option", [
    ("--output=/tmp/x.log", "--output"), ("--out=/tmp/x.log", "--output"), ("-o /tmp/x.log", "--output"),
    ("--error=x", "--error"), ("-e x", "--error"), ("--wrap=true", "--wrap"), ("--job-name=mine", "--job-name"),
    ("-J mine", "--job-name"), ("#SBATCH --output=x", "--output"), ("--signal=USR1@60", "--signal"),
])
def test_sbatch_lines_that_take_over_the_queues_options_are_refused(line, option):
    with pytest.raises(UserError, match=f"sbatch line .* sets {option}, which the queue sets itself .*; remove it"):
        profile_from_dict("a100", {"sbatch": [line]})


def test_ordinary_sbatch_lines_still_pass():
    profile = profile_from_dict("a100", {"sbatch": ["--exclusive", "--mail-type=END", "--export=ALL"]})
    assert profile.sbatch == ["--exclusive", "--mail-type=END", "--export=ALL"]


@pytest.mark.parametrize("python", ["conda run -n lab python", "venv/bin/python", "~/venv/bin/python", "-c"])
def test_python_is_one_program_not_a_command_line(python):
    with pytest.raises(UserError, match="python .* must be one program, an absolute path .*put module loads"):
        profile_from_dict("a100", {"python": python})


def test_memory_sizes_are_slurms():
    assert profile_from_dict("a", {"mem_per_gpu": "64G", "mem": "8000"}).mem == "8000"
    with pytest.raises(UserError, match="mem_per_gpu '64 gigs' is not a Slurm memory size"):
        profile_from_dict("a", {"mem_per_gpu": "64 gigs"})


def test_python_is_quoted_in_the_nodes_script(tmp_path, stand_in_slurm):
    odd = "/opt/lab$(touch${IFS}pwned);x/bin/python"            # one program, but shell on the node unquoted
    profile = profile_from_dict("a100", {"python": odd})
    executor = slurm.executor(tmp_path, profile)
    executor.update_parameters(**sbatch_parameters(profile, Shape(1, 1, 0, False), "ddae-x"))
    script = executor._make_submission_file_text(executor._submitit_command_str, "uid")
    srun = next(line for line in script.splitlines() if line.startswith("srun"))
    assert f"'{odd}' -u -m submitit.core._submit" in srun
    # The interpreter running the queue (the default) is quoted the same way.
    plain = slurm.executor(tmp_path, ClusterProfile("b"))
    assert plain._submitit_command_str.startswith(f"{slurm.shlex.quote(slurm.node_python(ClusterProfile('b')))} -u")


@pytest.fixture
def stand_in_slurm(tmp_path, monkeypatch):
    """sbatch that accepts everything, squeue that lists nothing, scancel and srun that do nothing."""
    pytest.importorskip("submitit")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scripts = {"sbatch": "echo 'Submitted batch job 4242'", "squeue": "true", "scancel": "true", "srun": "true"}
    for name, body in scripts.items():
        path = bin_dir / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    slurm.forget_cache()
    yield bin_dir
    slurm.forget_cache()


def test_cluster_check_submit_ends_within_its_timeout_when_the_job_never_shows(tmp_path, stand_in_slurm, capsys):
    from ddae_core.cli import main

    workspace = tmp_path / "ws"
    save_profiles(workspace, {"test": ClusterProfile("test", time_limit="10")})
    start = time.monotonic()
    code = main(["cluster", "check", "test", "--workspace", str(workspace), "--submit", "--timeout", "2"])
    took = time.monotonic() - start
    out = capsys.readouterr().out
    assert code == 1 and took < 30, (took, out)
    assert "a job on a node: FAILED: the check job 4242 (a one-task node report on profile test) did not report " \
           "within 2 s and was cancelled; it never appeared in squeue, so look at `scontrol show job 4242`" in out
    assert "Traceback" not in out
