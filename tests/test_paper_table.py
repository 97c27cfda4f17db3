"""The paper's tables: a group table as Markdown and LaTeX, a run's README row, and the CLI that prints them."""

from __future__ import annotations

import subprocess
import sys

import pytest

from db.paper_table import CheckpointPair, checkpoint_pair, readme_row
from db.testing import write_lab
from tests.fixtures import ROOT, ingest


@pytest.fixture
def lab(workspace):
    truth = write_lab(workspace, n_Ts=(1000, 256), seeds=2)
    ingest(workspace)
    return truth


def ddae(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ddae_core.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


CAPTION = ("2 groups; mean ± sample standard deviation over each group's runs; accuracies of each run's best probe "
           "grid (its protocol), baselines as measured by those grids.")


def test_group_table_as_markdown_and_latex_exactly(workspace, lab):
    done = ddae("runs", "list", "--workspace", str(workspace), "--kind", "train", "--group-by", "diffusion.n_T",
                "--metrics", "best,fid", "--format", "markdown")
    assert done.returncode == 0, done.stderr
    # best: 0.5256 and 0.5556 (n_T 256), 0.60 and 0.63 (n_T 1000); FID 27.44 and 28.44, 20 and 21.
    assert done.stdout == (
        "| diffusion.n_T | n | Best probe acc. (%) | Best FID | Protocol | Baselines: pixels / random init (%) |\n"
        "| --- | --- | --- | --- | --- | --- |\n"
        "| 256 | 2 | 54.06 ± 2.12 | 27.94 ± 0.71 | fast | 30.00 / 20.00 |\n"
        "| 1000 | 2 | 61.50 ± 2.12 | 20.50 ± 0.71 | fast | 30.00 / 20.00 |\n"
        "\n" + CAPTION + "\n")
    done = ddae("runs", "list", "--workspace", str(workspace), "--kind", "train", "--group-by", "diffusion.n_T",
                "--format", "latex")
    assert done.stdout == (
        "\\begin{table}[t]\n\\centering\n\\begin{tabular}{lrrll}\n\\toprule\n"
        "diffusion.n\\_T & n & Best probe acc. (\\%) & Protocol & Baselines: pixels / random init (\\%) \\\\\n"
        "\\midrule\n"
        "256 & 2 & 54.06 $\\pm$ 2.12 & fast & 30.00 / 20.00 \\\\\n"
        "1000 & 2 & 61.50 $\\pm$ 2.12 & fast & 30.00 / 20.00 \\\\\n"
        "\\bottomrule\n\\end{tabular}\n"
        "\\caption{" + CAPTION.replace(" ± ", " $\\pm$ ") + "}\n\\end{table}\n")


def test_cli_lists_setting_columns_sorted_by_a_metric_and_says_one_sentence_for_mistakes(workspace, lab):
    done = ddae("runs", "list", "--workspace", str(workspace), "--kind", "train", "--columns", "diffusion.n_T,fid",
                "--sort", "fid", "--ascending", "--where", "diffusion.n_T = 1000 or seed = 1")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[-2:] == ["DIFFUSION.N_T", "FID"]
    assert [line.split()[-2:] for line in lines[1:]] == [["1000", "20.00"], ["1000", "21.00"], ["256", "28.44"]]
    done = ddae("runs", "list", "--workspace", str(workspace), "--group-by", "diffusion.n_T", "--metrics", "colour")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "Cannot aggregate 'colour'" in done.stderr


def test_readme_row_pairs_the_best_probe_and_the_best_fid_checkpoints():
    pair = checkpoint_pair({800: 0.9005, 1999: 0.8823, 400: 0.85}, {800: 4.09, 1999: 3.62})
    assert pair == CheckpointPair(800, 4.09, 0.9005, 1999, 3.62, 0.8823)
    assert readme_row("DDPM_ddpm.yaml", "DDPM", "35.7M UNet", pair) == (
        "  <tr>\n    <td>DDPM_ddpm.yaml</td>\n    <td>DDPM</td>\n    <td>35.7M UNet</td>\n"
        "    <td>800</td>\n    <td>4.09</td>\n    <td>90.05</td>\n"
        "    <td>1999</td>\n    <td>3.62</td>\n    <td>88.23</td>\n  </tr>\n")
    same = checkpoint_pair({1200: 0.945}, {1200: 2.23, 1999: 2.5})
    assert readme_row("EDM_ddpmpp.yaml", "EDM", "56.5M DDPM++", same).splitlines()[-2] == \
        '    <td colspan="3">(same)</td>'
    assert checkpoint_pair({}, {1: 3.0}) is None


def test_readme_row_of_a_lab_run(workspace, lab):
    train = next(iter(lab))
    done = ddae("runs", "readme-row", "--workspace", str(workspace), train)
    assert done.returncode == 0, done.stderr
    assert "<td>T1000 seed 0</td>" in done.stdout and '<td colspan="3">(same)</td>' in done.stdout
    assert "<td>100</td>\n    <td>20.00</td>\n    <td>60.00</td>" in done.stdout
