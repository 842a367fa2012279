"""A short PPO run on one environment of each installed JAX suite, through scripts/train.py.

    python scripts/env_suites.py --backbone gru

Each run is ``python scripts/train.py env=<id> backbone=<backbone> total_steps=<n>``
(PPO's default config; ``n`` per suite in ``RUNS``, or ``--total-steps`` for all); its return at the start and at the end (summary.json)
goes into the generated block of docs/ENVIRONMENTS.md, next to the suite's
published baseline where one exists. Suites that are not installed are listed
as skipped.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

from mnemax.envs import registry
from mnemax.envs.suite_adapter import suite_installed
from mnemax.experiment.markdown import replace_section

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "ENVIRONMENTS.md"

# One environment per suite: its id, env steps (Craftax and the 128 x 128 pixels of POPGym Arcade run at a
# few hundred steps/s on two CPU cores), Hydra overrides, and the suite's own published baseline.
RUNS = {
    "craftax": (
        "craftax/Craftax-Classic-Symbolic-v1",
        65_536,
        [],
        "PPO, 1e9 steps: about 90% of the optimal return (Matthews et al. 2024, arXiv:2402.16801, abstract)",
    ),
    "navix": ("navix/Navix-DoorKey-5x5-v0", 262_144, [], "none at this budget"),
    "xminigrid": (
        "xminigrid/XLand-MiniGrid-R1-9x9",
        262_144,
        ["env.kwargs.benchmark=trivial-local"],
        "none: the locally generated benchmark is not the paper's",
    ),
    "popgym_arcade": ("popgym_arcade/CountRecallEasy", 65_536, ["env.kwargs.partial_obs=true"], "none at this budget"),
}


def first_return(metrics_csv: Path) -> float:
    """Mean over seeds of the first logged finite episode return."""
    with metrics_csv.open() as f:
        for row in csv.DictReader(f):
            value = float(row["episode_return"])
            if math.isfinite(value):
                return value
    return math.nan


def run_suite(env: str, overrides: list[str], backbone: str, total_steps: int, run_dir: Path) -> dict:
    command = [
        sys.executable,
        str(ROOT / "scripts" / "train.py"),
        f"env={env}",
        f"backbone={backbone}",
        f"total_steps={total_steps}",
        f"run_dir={run_dir}",
        "progress=false",
        "keep_checkpoints=0",
        *overrides,
    ]
    subprocess.run(command, check=True)
    summary = json.loads((run_dir / "summary.json").read_text())
    summary["start_return"] = first_return(run_dir / "metrics.csv")
    summary["command"] = " ".join(["python scripts/train.py", *command[2:5], *overrides])  # without the run folder
    return summary


def write_doc(rows: list[str], commands: list[str], backbone: str, command: str) -> str:
    """Replace the ``ppo-runs`` block of docs/ENVIRONMENTS.md with ``rows``; return the block."""
    body = (
        f"PPO (configs/agent/ppo.yaml, 16 envs x 128 steps) with a `{backbone}` core, one seed (0), "
        f"on a shared 2-core CPU. Written by `{command}`; each row is its `command` below. "
        "Return at the start is the first logged episode return (the untrained policy); at the end, "
        "the mean of the last logged returns.\n\n"
        "| suite | env | return at start | return at end | env steps | steps/s | published baseline |\n"
        "|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n```\n" + "\n".join(commands) + "\n```"
    )
    replace_section(DOC, "ppo-runs", body, "# Environments\n")
    return body


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--total-steps", type=int, default=None, help="env steps of every run (default: per suite, RUNS)")
    parser.add_argument("--backbone", default="gru")
    parser.add_argument("--suites", nargs="*", default=list(RUNS), choices=list(RUNS))
    args = parser.parse_args(argv)
    command = " ".join(["python scripts/env_suites.py", *(sys.argv[1:] if argv is None else argv)])
    packages = {suite.prefix.rstrip("/"): suite for suite in registry.SUITES}
    rows, commands = [], []
    with tempfile.TemporaryDirectory(prefix="mnemax-env-suites-") as folder:
        for suite in args.suites:
            env, steps, overrides, baseline = RUNS[suite]
            if not suite_installed(packages[suite].package):
                rows.append(f"| {suite} | `{env}` | not installed | | | | {baseline} |")
                continue
            s = run_suite(env, overrides, args.backbone, args.total_steps or steps, Path(folder) / suite)
            rows.append(
                f"| {suite} | `{env}` | {s['start_return']:.3f} | {s['final_return_mean']:.3f} | "
                f"{s['env_steps']:,.0f} | {s['steps_per_second']:,.0f} | {baseline} |"
            )
            commands.append(s["command"])
            print(write_doc(rows, commands, args.backbone, command), flush=True)  # after each run: a partial table survives


if __name__ == "__main__":
    main()
