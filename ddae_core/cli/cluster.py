"""`ddae cluster list|check NAME`: the workspace's Slurm cluster profiles (cluster.yaml), and what Slurm
makes of one before a job is sent to it."""

from __future__ import annotations

import argparse
import time

from ..engine.errors import UserError
from ..rundir import JobKind
from .common import add_workspace, workspace_of


def register(sub: argparse._SubParsersAction) -> None:
    cluster = sub.add_parser("cluster", help="Slurm cluster profiles of the workspace (cluster.yaml): list, check")
    csub = cluster.add_subparsers(dest="cluster_command", metavar="ACTION", required=True)

    p = csub.add_parser("list", help="the profiles in cluster.yaml")
    add_workspace(p)
    p.set_defaults(func=cmd_list)

    p = csub.add_parser("check", help="check a profile: Slurm's commands, squeue, sbatch --test-only (and a real job)")
    p.add_argument("name", help="the profile's name in cluster.yaml")
    p.add_argument("--gpus", type=int, default=0, help="check the shape of a job asking for this many GPUs (default 0)")
    p.add_argument("--submit", action="store_true",
                   help="also run a one-minute job that reports the node's Python, torch and whether it sees "
                        "the workspace (the file system the nodes must share)")
    p.add_argument("--timeout", type=float, default=60.0, metavar="S",
                   help="seconds to wait for the --submit job to report; then it is cancelled (default 60)")
    add_workspace(p)
    p.set_defaults(func=cmd_check)


def cmd_list(args) -> int:
    from ..jobs.cluster import cluster_path, load_cluster_file

    workspace = workspace_of(args)
    profiles, default = load_cluster_file(workspace)
    if not profiles:
        print(f"no cluster profiles: write them in {cluster_path(workspace)} (README: 'Running on a Slurm cluster')")
        return 0
    for name, profile in profiles.items():
        mark = "  [default: queued jobs go here unless --cluster local]" if name == default else ""
        print(profile.summary() + mark)
    if default is None:
        print("queued jobs run on this machine unless --cluster NAME")
    return 0


def cmd_check(args) -> int:
    from ..jobs import slurm
    from ..jobs.cluster import get_profile

    workspace = workspace_of(args)
    profile = get_profile(workspace, args.name)
    print(f"profile: {profile.summary()}")
    ok = True

    def step(what: str, action) -> object:
        nonlocal ok
        try:
            result = action()
        except UserError as exc:
            print(f"{what}: FAILED: {exc}")
            ok = False
            return None
        print(f"{what}: ok" + (f" ({result})" if result not in (None, "") else ""))
        return result

    shape = step("job shape", lambda: _shape_text(slurm.job_shape(profile, args.gpus, JobKind.TRAIN)))
    if not slurm.available():
        print("slurm commands: FAILED: sbatch, squeue or scancel is not on PATH here")
        return 1
    step("squeue", lambda: f"it answers; {len(slurm.query(fresh=True))} of your jobs listed")
    if shape is not None:
        step("sbatch --test-only", lambda: slurm.test_only(profile, args.gpus))
    if ok and args.submit:
        step("a job on a node", lambda: _submit_probe(workspace, profile, args.timeout))
    print("the profile looks usable" if ok else "fix what failed above, then check again")
    return 0 if ok else 1


def _shape_text(shape) -> str:
    gpus = f", {shape.gpus_per_node} GPU(s) per node" if shape.gpus_per_node else ", CPU only"
    return f"{shape.nodes} node(s) x {shape.tasks_per_node} task(s){gpus}"


def _submit_probe(workspace, profile, timeout_s: float) -> str:
    """Run node_report on a node through submitit (its folder in the workspace, so the answer needs the
    shared file system too); SlurmError after timeout_s, saying what became of the job."""
    from submitit.core.utils import pickle_load

    from ..jobs import slurm
    from ..jobs.slurm import Shape, SlurmError, sbatch_parameters
    from ..jobs.slurm_job import node_report

    if timeout_s <= 0:
        raise SlurmError(f"--timeout must be a positive number of seconds (got {timeout_s:g}).")
    folder = workspace / ".cluster-check" / profile.name
    executor = slurm.executor(folder, profile)
    params = sbatch_parameters(profile, Shape(1, 1, 0, False), "ddae-check")
    params["time"] = min(params["time"], 5)
    params["additional_parameters"].pop("requeue", None)
    executor.update_parameters(**params)
    try:
        job = executor.submit(node_report, str(workspace))
    except Exception as exc:  # noqa: BLE001 - sbatch's refusal in one sentence
        raise SlurmError(f"sbatch refused the check job: {str(exc).strip().splitlines()[-1]}") from None
    # The result file, not job.done(): submitit asks sacct, which clusters without accounting lack.
    deadline = time.monotonic() + timeout_s
    seen = None                     # the job's last state in squeue, if it ever showed there
    while not job.paths.result_pickle.exists():
        try:
            seen = slurm.query(fresh=True).get(str(job.job_id)) or seen
        except SlurmError:
            pass
        if time.monotonic() > deadline:
            job.cancel(check=False)
            raise SlurmError(_late_probe(job.job_id, profile, timeout_s, seen, folder))
        time.sleep(min(2.0, max(deadline - time.monotonic(), 0.1)))
    outcome, info = pickle_load(job.paths.result_pickle)
    if outcome != "success":
        raise SlurmError(f"job {job.job_id} failed on its node: {str(info).strip().splitlines()[-1]}")
    if not info.get("workspace_visible"):
        raise SlurmError(f"node {info['host']} does not see {workspace}; put the workspace on a shared file system")
    return f"job {job.job_id} on {info['host']}: python {info['python']}, torch {info['torch']}, " \
           f"{info.get('cuda_devices', 0)} CUDA device(s), workspace visible"


def _late_probe(job_id, profile, timeout_s: float, seen, folder) -> str:
    """One sentence for a check job that did not report in time: what was sent, its id, what to look at."""
    sent = f"the check job {job_id} (a one-task node report on profile {profile.name}) did not report within " \
           f"{timeout_s:g} s and was cancelled"
    if seen is None:
        return f"{sent}; it never appeared in squeue, so look at `scontrol show job {job_id}` and slurmctld's log"
    if seen.state == "PENDING":
        return f"{sent} while {seen.label()}; the partition is busy, so try again with a longer --timeout"
    return f"{sent} after squeue showed it {seen.label()}; its log in {folder} says why, and nodes that do " \
           "not see the workspace never write their report"
