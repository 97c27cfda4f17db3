"""The paper's tables as text: a group table as Markdown or LaTeX (mean +- std over the seeds, protocol and
baselines labelled), and a train run's best-probe vs best-FID checkpoints as a row of the official README's
table (FutureXiang/ddae, "Main results"). Plain strings from plain records: the CLI and the app share them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ddae_core.rundir.figures import percent

from .groups import GroupRow, GroupValue, Stats
from .metrics import METRICS

PM = {"markdown": " ± ", "latex": " $\\pm$ ", "text": " ± "}


def value_text(value: GroupValue) -> str:
    return "—" if value is None else str(value)


def number_text(name: str, value: float | None) -> str:
    """A metric's value as the tables show it: accuracies in percent, FID with 2 places, else 4 digits."""
    if value is None:
        return "—"
    metric = METRICS[name]
    if metric.accuracy:
        return percent(value, 2).rstrip("%")
    if name == "fid":
        return f"{value:.2f}"
    if name in ("fid_step", "best_t"):
        return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"
    return f"{value:.4g}"


def stat_text(name: str, stats: Stats | None, style: str = "text") -> str:
    """`61.23 ± 0.45` (mean ± sample std), the mean alone for one member, — for none."""
    if stats is None or stats.mean is None:
        return "—"
    mean = number_text(name, stats.mean)
    return mean if stats.std is None else f"{mean}{PM[style]}{number_text(name, stats.std)}"


def metric_header(name: str) -> str:
    return METRICS[name].label + (" (%)" if METRICS[name].accuracy else "")


def baselines_text(group: GroupRow) -> str:
    """`30.00 / 20.00`: the members' mean raw-pixel / random-init baselines in percent; — when none."""
    if group.baseline_pixels is None and group.baseline_random is None:
        return "—"
    return f"{number_text('best', group.baseline_pixels)} / {number_text('best', group.baseline_random)}"


def table_cells(groups: Sequence[GroupRow], by: Sequence[str], metrics: Sequence[str],
                style: str = "text") -> tuple[list[str], list[list[str]]]:
    """Headers and cells of a group table: the grouping values, n, each metric, protocol, baselines."""
    headers = [*by, "n", *(metric_header(m) for m in metrics), "Protocol", "Baselines: pixels / random init (%)"]
    rows = [[*(value_text(v) for v in g.values), str(g.n), *(stat_text(m, g.stats.get(m), style) for m in metrics),
             ", ".join(g.protocols) or "—", baselines_text(g)] for g in groups]
    return headers, rows


def caption(n_groups: int) -> str:
    return (f"{n_groups} group{'s' if n_groups != 1 else ''}; mean ± sample standard deviation over each group's "
            "runs; accuracies of each run's best probe grid (its protocol), baselines as measured by those grids.")


def markdown(groups: Sequence[GroupRow], by: Sequence[str], metrics: Sequence[str]) -> str:
    headers, rows = table_cells(groups, by, metrics, "markdown")
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n\n" + caption(len(groups)) + "\n"


def _latex_escape(text: str) -> str:
    for a, b in (("\\", "\\textbackslash{}"), ("&", "\\&"), ("%", "\\%"), ("_", "\\_"), ("#", "\\#"),
                 ("—", "--")):
        text = text.replace(a, b)
    return text


def latex(groups: Sequence[GroupRow], by: Sequence[str], metrics: Sequence[str]) -> str:
    headers, rows = table_cells(groups, by, metrics, "latex")
    spec = "l" * len(by) + "r" * (1 + len(metrics)) + "ll"
    escape = [_latex_escape(h) for h in headers]
    lines = ["\\begin{table}[t]", "\\centering", f"\\begin{{tabular}}{{{spec}}}", "\\toprule",
             " & ".join(escape) + " \\\\", "\\midrule"]
    lines += [" & ".join(c if "$\\pm$" in c else _latex_escape(c) for c in row) + " \\\\" for row in rows]
    words = _latex_escape(caption(len(groups))).replace(" ± ", PM["latex"])
    lines += ["\\bottomrule", "\\end{tabular}", f"\\caption{{{words}}}", "\\end{table}"]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class CheckpointPair:
    """A train run's best linear-probe checkpoint and its best-FID checkpoint (steps, FIDs, accuracies)."""

    probe_step: int
    probe_fid: float | None
    probe_acc: float
    fid_step: int
    fid: float
    fid_acc: float | None


def checkpoint_pair(accuracy_by_step: Mapping[int, float], fid_by_step: Mapping[int, float]) -> CheckpointPair | None:
    """The best probe and best FID checkpoints (ties: the earlier step); None unless both were measured."""
    if not accuracy_by_step or not fid_by_step:
        return None
    probe_step = min(accuracy_by_step, key=lambda s: (-accuracy_by_step[s], s))
    fid_step = min(fid_by_step, key=lambda s: (fid_by_step[s], s))
    return CheckpointPair(probe_step, fid_by_step.get(probe_step), accuracy_by_step[probe_step],
                          fid_step, fid_by_step[fid_step], accuracy_by_step.get(fid_step))


def readme_row(config: str, model: str, network: str, pair: CheckpointPair) -> str:
    """The official README's table row (HTML, as it is written there): Config, Model, Network, then the best
    linear-probe checkpoint's step, FID and accuracy, then the best FID checkpoint's, or "(same)" across
    the three when they are one checkpoint. Studio counts steps where the README counts epochs."""
    def cell(text: str, extra: str = "") -> str:
        return f"    <td{extra}>{text}</td>"

    def fid(value: float | None) -> str:
        return "—" if value is None else f"{value:.2f}"

    def acc(value: float | None) -> str:
        return "—" if value is None else f"{100 * value:.2f}"

    cells = [cell(config), cell(model), cell(network),
             cell(str(pair.probe_step)), cell(fid(pair.probe_fid)), cell(acc(pair.probe_acc))]
    if pair.fid_step == pair.probe_step:
        cells.append(cell("(same)", ' colspan="3"'))
    else:
        cells += [cell(str(pair.fid_step)), cell(fid(pair.fid)), cell(acc(pair.fid_acc))]
    return "\n".join(["  <tr>", *cells, "  </tr>"]) + "\n"
