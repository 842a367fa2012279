"""A short PPO run on one environment of each installed JAX suite, per backbone, into docs/ENVIRONMENTS.md.

    python scripts/env_suites.py --backbones gru s5 transformer

Each cell is ``python scripts/train.py env=<id> backbone=<backbone> total_steps=<n>``
(PPO's default config; ``n`` per suite in ``RUNS``, or ``--total-steps`` for
all), run resumably in ``docs/results/env-suites/<backbone>/<suite>``: a
finished cell is skipped and a stopped one continues, so the command can be
rerun until every cell is done. Its return at the start and at the end
(metrics.csv, summary.json) goes into the generated block of
docs/ENVIRONMENTS.md, next to the suite's published baseline where one
exists. Suites that are not installed are listed as not run.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "ENVIRONMENTS.md"
RUNS_DIR = ROOT / "docs" / "results" / "env-suites"
EARLY_UPDATES = 10

# One environment per suite: its id, env steps (Craftax and the 128 x 128 pixels of POPGym Arcade run at a
# few hundred steps/s on two CPU cores), Hydra overrides, and the suite's own published baseline.
RUNS = {
    "craftax": (
        "craftax/Craftax-Classic-Symbolic-v1",
        65_536,
        [],
        "PPO, 1e9 steps: about 90% of the optimal return (Matthews et al. 2024, arXiv:2402.16801, abstract)",
    ),
    "navix": ("navix/Navix-DoorKey-5x5-v0", 262_144, [], "no published figure at this budget"),
    "xminigrid": (
        "xminigrid/XLand-MiniGrid-R1-9x9",
        262_144,
        ["env.kwargs.benchmark=trivial-local"],
        "none: the locally generated benchmark is not the paper's",
    ),
    "popgym_arcade": ("popgym_arcade/CountRecallEasy", 65_536, ["env.kwargs.partial_obs=true"], "no published figure at this budget"),
}


def early_return(metrics_csv: Path) -> float:
    """Mean of the episode returns logged in the first ``EARLY_UPDATES`` updates (the barely trained policy)."""
    with metrics_csv.open() as f:
        values = [float(row["episode_return"]) for row in csv.DictReader(f) if int(row["update"]) <= EARLY_UPDATES]
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


def run_suite(env: str, overrides: list[str], backbone: str, total_steps: int, run_dir: Path) -> bool:
    """Train (or continue) one cell in ``run_dir``; True when it was already finished.

    The command that trains it from scratch (without the folder) goes to command.txt.
    """
    from mnemax.experiment.compare import resumable_run

    settings = [f"env={env}", f"backbone={backbone}", f"total_steps={total_steps}", *overrides]
    _, result = resumable_run([*settings, "progress=false", "keep_checkpoints=1"], run_dir)
    (run_dir / "command.txt").write_text(" ".join(["python scripts/train.py", *settings]) + "\n")
    return result.already_finished


def table_row(suite: str, backbone: str, run_dir: Path) -> tuple[str, str | None]:
    """The markdown row of one cell from its run folder, and its command (None when it has no finished run)."""
    env, _, _, baseline = RUNS[suite]
    summary_path = run_dir / "summary.json"
    if not summary_path.exists():
        return f"| {suite} | {backbone} | `{env}` | not run yet | | | | {baseline} |", None
    s = json.loads(summary_path.read_text())
    row = (
        f"| {suite} | {backbone} | `{s['env']}` | {early_return(run_dir / 'metrics.csv'):.3f} | {s['final_return_mean']:.3f} | "
        f"{s['env_steps']:,.0f} | {s['steps_per_second']:,.0f} | {baseline} |"
    )
    return row, (run_dir / "command.txt").read_text().strip()


def write_doc(runs_dir: Path, backbones: list[str], command: str) -> str:
    """Replace the ``ppo-runs`` block of docs/ENVIRONMENTS.md with a row per suite and backbone; return the block."""
    cells = [table_row(suite, backbone, runs_dir / backbone / suite) for suite in RUNS for backbone in backbones]
    rows, commands = zip(*cells)
    body = (
        f"PPO (configs/agent/ppo.yaml, 16 envs x 128 steps), one seed (0), each core at its configs/backbone "
        f"defaults, on a shared 2-core CPU. Written by `{command}`; the rows' commands are below. "
        f"Early return: mean episode return logged in the first {EARLY_UPDATES} updates "
        f"({EARLY_UPDATES * 2048:,} env steps, the barely trained policy); final: mean of the last logged returns.\n\n"
        "| suite | core | env | early return | final return | env steps | steps/s | published baseline |\n"
        "|---|---|---|---|---|---|---|---|\n"
        + "\n".join(rows)
        + "\n\n```\n"
        + "\n".join(c for c in commands if c)
        + "\n```"
    )
    from mnemax.experiment.markdown import replace_section

    replace_section(DOC, "ppo-runs", body, "# Environments\n")
    return body


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--total-steps", type=int, default=None, help="env steps of every run (default: per suite, RUNS)")
    parser.add_argument("--backbones", nargs="+", default=["gru"])
    parser.add_argument("--suites", nargs="*", default=list(RUNS), choices=list(RUNS), help="suites to run")
    parser.add_argument("--table-only", action="store_true", help="rebuild the table from the run folders")
    parser.add_argument("--runs-dir", default=str(RUNS_DIR))
    args = parser.parse_args(argv)
    runs_dir = Path(args.runs_dir)
    from mnemax.experiment.runtime import configure_jax

    configure_jax()  # train.py's JAX setup, before anything starts JAX's CPU backend: it sets an XLA flag
    from mnemax.envs import registry
    from mnemax.envs.suite_adapter import suite_installed

    packages = {suite.prefix.rstrip("/"): suite for suite in registry.SUITES}
    for backbone in [] if args.table_only else args.backbones:
        for suite in args.suites:
            env, steps, overrides, _ = RUNS[suite]
            if not suite_installed(packages[suite].package):
                print(f"{suite}: not installed, skipped", flush=True)
                continue
            done = run_suite(env, overrides, backbone, args.total_steps or steps, runs_dir / backbone / suite)
            print(f"{suite} {backbone}: {'already done' if done else 'trained'}", flush=True)
    command = "python scripts/env_suites.py --backbones " + " ".join(args.backbones)
    print(write_doc(runs_dir, args.backbones, command))


if __name__ == "__main__":
    main()
