"""Where a job runs: this machine, or a Slurm cluster named by a profile in the workspace's cluster.yaml.

`cluster.yaml` holds the profiles (partition, account, time limit, GPUs per node, setup lines, ...);
a run's `slurm.json` (beside its spec.yaml) names the profile it goes to and, once submitted, its Slurm
job ids. The queue's database has no field for either, so both live in files, like everything a worker
or another process must be able to read back. No database, no Qt, no Slurm commands here.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

from ..engine.errors import UserError
from ..rundir import CLUSTER_FILE, SLURM, atomic_write_text, read_json_dict

LOCAL = "local"                   # the placement "this machine"
LOCAL_LABEL = "this machine"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MEMORY_RE = re.compile(r"^[0-9]+[KMGT]?$", re.IGNORECASE)      # sbatch --mem: 8000, 64G
# sbatch options the queue sets itself, by long and short name, and what a profile's own would break.
QUEUE_SBATCH = {
    "output": "the job's log stays in the run folder, where the queue streams it",
    "error": "the job's log stays in the run folder, where the queue streams it",
    "wrap": "the job runs the queue's worker script",
    "job-name": "the queue names each job after its run",
    "signal": "the queue's worker needs Slurm's USR2 warning to save before a time limit",
    "open-mode": "a requeued job appends to its log",
}
QUEUE_SBATCH_SHORT = {"o": "output", "e": "error", "J": "job-name"}


@dataclass
class ClusterProfile:
    """One Slurm target: what every job sent to it asks of sbatch."""

    name: str
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time_limit: str = "24:00:00"            # sbatch --time: minutes, HH:MM:SS or D-HH:MM:SS
    gpus_per_node: int = 0                  # GPUs one node gives a job (0: a CPU-only cluster)
    cpus_per_gpu: int = 8                   # CPUs per rank of a GPU job
    mem_per_gpu: str | None = None          # e.g. 64G; None: the partition's default
    cpus: int = 1                           # CPUs of a CPU-only job (gpus 0)
    mem: str | None = None                  # memory of a CPU-only job, e.g. 8G
    nodes: int = 1                          # the most nodes one job may span (multi-node DDP above 1)
    constraint: str | None = None
    sbatch: list[str] = field(default_factory=list)   # extra #SBATCH lines: "--exclusive", "--mail-type=END"
    setup: list[str] = field(default_factory=list)    # shell lines before the worker: module load, source venv
    python: str | None = None               # the interpreter on the nodes (default: the one running the queue)
    max_requeues: int = 3                   # time-limit requeues before a job stays interrupted

    @property
    def time_limit_min(self) -> int:
        return parse_time_limit(self.time_limit, self.name)

    def to_yaml_dict(self) -> dict:
        out = {k: v for k, v in asdict(self).items() if k != "name"}
        return {k: v for k, v in out.items() if v not in (None, [], "")}

    def summary(self) -> str:
        """One line for menus and tables: partition, GPUs per node, time limit."""
        parts = [f"partition {self.partition}" if self.partition else "default partition",
                 f"{self.gpus_per_node} GPU/node" if self.gpus_per_node else "CPU only",
                 f"time {self.time_limit}"]
        return f"{self.name} ({', '.join(parts)})"


_INT_FIELDS = ("gpus_per_node", "cpus_per_gpu", "cpus", "nodes", "max_requeues")
_STR_FIELDS = ("partition", "account", "qos", "mem_per_gpu", "mem", "constraint", "python")
_LIST_FIELDS = ("sbatch", "setup")


def parse_time_limit(text, profile: str = "?") -> int:
    """sbatch's time formats (M, M:S, H:M:S, D-H, D-H:M, D-H:M:S) as whole minutes (at least 1)."""
    value = str(text).strip()
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", value)
    if not m:
        raise UserError(f"Cluster profile {profile}: time_limit {value!r} is not a Slurm time "
                        "(minutes, HH:MM:SS or D-HH:MM:SS).")
    days, a, b, c = m.groups()
    if days is not None:                   # D-H, D-H:M, D-H:M:S
        minutes = int(days) * 1440 + int(a) * 60 + int(b or 0) + (1 if c and int(c) else 0)
    elif c is not None:                    # H:M:S
        minutes = int(a) * 60 + int(b) + (1 if int(c) else 0)
    elif b is not None:                    # M:S
        minutes = int(a) + (1 if int(b) else 0)
    else:
        minutes = int(a)
    if minutes < 1:
        raise UserError(f"Cluster profile {profile}: time_limit {value!r} is shorter than a minute.")
    return minutes


def profile_from_dict(name: str, data) -> ClusterProfile:
    """A validated profile; UserError naming the profile and field otherwise."""
    if not isinstance(name, str) or not NAME_RE.match(name) or name == LOCAL:
        raise UserError(f"Cluster profile name {name!r} must be letters, digits, '.', '_' or '-' "
                        f"(and not {LOCAL!r}, which means this machine).")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(f"Cluster profile {name} in {CLUSTER_FILE} must be a mapping of fields.")
    known = {f.name for f in fields(ClusterProfile)} - {"name"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise UserError(f"Cluster profile {name}: unknown field {unknown[0]!r}; the fields are "
                        f"{', '.join(sorted(known))}.")
    values: dict = {"name": name}
    for key, value in data.items():
        if value is None:
            continue
        if key in _INT_FIELDS:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value > 100_000:
                raise UserError(f"Cluster profile {name}: {key} must be a whole number from 0 (got {value!r}).")
            if key in ("nodes", "cpus", "cpus_per_gpu") and value < 1:
                raise UserError(f"Cluster profile {name}: {key} must be at least 1 (got {value}).")
        elif key in _STR_FIELDS:
            value = str(value).strip()
            if "\n" in value:
                raise UserError(f"Cluster profile {name}: {key} must be one line.")
            value = value or None
            if value and key == "python":
                _check_python(name, value)
            if value and key in ("mem", "mem_per_gpu") and not MEMORY_RE.match(value):
                raise UserError(f"Cluster profile {name}: {key} {value!r} is not a Slurm memory size "
                                "(megabytes, or a number with K, M, G or T such as 64G).")
        elif key in _LIST_FIELDS:
            if isinstance(value, str):
                value = [line for line in value.splitlines() if line.strip()]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise UserError(f"Cluster profile {name}: {key} must be a list of lines.")
            value = [v.strip() for v in value if v.strip()]
            if key == "sbatch":
                value = [v[len("#SBATCH"):].strip() if v.startswith("#SBATCH") else v for v in value]
                for line in value:
                    _refuse_queue_option(name, line)
                bad = next((v for v in value if not v.startswith("--") or " " in v.split("=", 1)[0]), None)
                if bad is not None:
                    raise UserError(f"Cluster profile {name}: sbatch line {bad!r} must be a long option such as "
                                    "--exclusive or --mail-type=END (write -A lab as --account=lab).")
        elif key == "time_limit":
            value = str(value).strip()
        values[key] = value
    profile = ClusterProfile(**values)
    profile.time_limit_min                  # noqa: B018 - validates the time limit
    return profile


def _check_python(profile: str, value: str) -> None:
    """`python:` is one program, an absolute path or a name on the nodes' PATH; it is quoted in the job's
    script and started as the worker's argv[0], so a command line (a wrapper, an activation) cannot work."""
    if any(ch.isspace() for ch in value) or not (value.startswith("/") or "/" not in value) \
            or value.startswith(("-", "~")):
        raise UserError(f"Cluster profile {profile}: python {value!r} must be one program, an absolute path such "
                        "as /opt/venv/bin/python or a name on the nodes' PATH such as python3; put module loads, "
                        "activations and wrappers in setup.")


def _refuse_queue_option(profile: str, line: str) -> None:
    """UserError when an extra sbatch line sets one of the queue's own options (long, short or abbreviated)."""
    option = line.split("=", 1)[0].split(None, 1)[0] if line.strip() else ""
    if option.startswith("--"):
        key = option[2:]
        # sbatch (getopt_long) takes any unambiguous abbreviation, so --out is --output.
        full = next((k for k in QUEUE_SBATCH if k == key or (len(key) >= 3 and k.startswith(key))), None)
    elif option.startswith("-") and len(option) >= 2:
        full = QUEUE_SBATCH_SHORT.get(option[1])
    else:
        full = None
    if full is not None:
        raise UserError(f"Cluster profile {profile}: sbatch line {line!r} sets --{full}, which the queue sets "
                        f"itself ({QUEUE_SBATCH[full]}); remove it.")


def cluster_path(workspace: Path) -> Path:
    return Path(workspace) / CLUSTER_FILE


def load_cluster_file(workspace: Path) -> tuple[dict[str, ClusterProfile], str | None]:
    """cluster.yaml's profiles by name and its `default` (the profile new jobs go to, or None for this
    machine); ({}, None) without the file, UserError on a bad one."""
    path = cluster_path(workspace)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}, None
    except OSError as exc:
        raise UserError(f"Cannot read {path} ({exc.strerror or exc}).") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"{path} is not valid YAML ({str(exc).splitlines()[0]}); fix or remove it.") from None
    if not isinstance(data, dict) or not isinstance(data.get("profiles", {}) or {}, dict):
        raise UserError(f"{path} must hold `profiles:`, a mapping from a profile name to its fields.")
    profiles = {str(name): profile_from_dict(str(name), fields_)
                for name, fields_ in (data.get("profiles") or {}).items()}
    default = data.get("default")
    if default in (None, "", LOCAL, LOCAL_LABEL):
        default = None
    elif str(default) not in profiles:
        raise UserError(f"{path}: default {default!r} is not one of its profiles "
                        f"({', '.join(profiles) or 'it has none'}); name one, or `local` for this machine.")
    return profiles, None if default is None else str(default)


def load_profiles(workspace: Path) -> dict[str, ClusterProfile]:
    """The workspace's cluster profiles by name ({} without cluster.yaml); UserError on a bad file."""
    return load_cluster_file(workspace)[0]


def default_cluster(workspace: Path) -> str | None:
    """The profile new queued jobs of the workspace go to (cluster.yaml's `default`), or None: this machine."""
    return load_cluster_file(workspace)[1]


def save_profiles(workspace: Path, profiles: dict[str, ClusterProfile], default: str | None = None) -> Path:
    """Write cluster.yaml atomically (a header comment, the default placement, then the profiles)."""
    path = cluster_path(workspace)
    if default is not None and default not in profiles:
        raise UserError(f"The default cluster {default!r} is not one of the profiles.")
    body = yaml.safe_dump({"default": default or LOCAL,
                           "profiles": {name: p.to_yaml_dict() for name, p in profiles.items()}},
                          sort_keys=False, default_flow_style=False)
    header = ("# Slurm cluster profiles of this workspace (see README, 'Running on a Slurm cluster').\n"
              "# default: where queued jobs go unless told (--cluster NAME|local); check one with\n"
              "# `ddae cluster check NAME`.\n")
    _write_atomic(path, header + body)
    return path


def get_profile(workspace: Path, name: str) -> ClusterProfile:
    """The profile `name`, or UserError listing the ones there are."""
    profiles = load_profiles(workspace)
    if name not in profiles:
        have = ", ".join(sorted(profiles)) or f"none: {cluster_path(workspace)} has no profiles"
        raise UserError(f"No cluster profile {name!r} in this workspace ({have}); add it to "
                        f"{cluster_path(workspace)} or in the app's settings.")
    return profiles[name]


def check_placement(workspace: Path, name: str | None) -> str | None:
    """A --cluster value as a placement: 'local' / 'this machine' for here (None), an existing profile's
    name, or, when not given (None), the workspace's default."""
    if name is None:
        return default_cluster(workspace)
    if name.strip().lower() in ("", LOCAL, LOCAL_LABEL):
        return None
    get_profile(workspace, name.strip())
    return name.strip()


# slurm.json: the run's placement and its Slurm jobs.
def read_slurm(run_dir: Path) -> dict:
    """The run's slurm.json ({} when it has none or it cannot be read)."""
    return read_json_dict(Path(run_dir) / SLURM) or {}


def write_slurm(run_dir: Path, data: dict) -> None:
    _write_atomic(Path(run_dir) / SLURM, json.dumps(data, indent=1, sort_keys=True) + "\n")


def run_cluster(run_dir: Path) -> str | None:
    """The cluster profile the run is placed on, or None for this machine."""
    name = read_slurm(run_dir).get("cluster")
    return name if isinstance(name, str) and name else None


def set_run_cluster(run_dir: Path, name: str | None) -> None:
    """Place the run on a cluster profile (None: this machine); its job history is kept."""
    data = read_slurm(run_dir)
    if name is None and not data:
        return
    data["cluster"] = name
    write_slurm(run_dir, data)


def record_submission(run_dir: Path, cluster: str, job_id: str, **details) -> None:
    """Note a Slurm submission: the current job id, and the job in the run's history."""
    data = read_slurm(run_dir)
    data["cluster"] = cluster
    data["job_id"] = str(job_id)
    data.setdefault("jobs", []).append({"job_id": str(job_id), "submitted": round(time.time(), 3), **details})
    write_slurm(run_dir, data)


def current_job(run_dir: Path) -> str | None:
    """The Slurm job id of the run's latest submission, or None."""
    job = read_slurm(run_dir).get("job_id")
    return str(job) if job else None


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)
