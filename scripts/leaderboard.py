"""The POPGym leaderboard: PPO with every memory core on POPGym tasks, into docs/LEADERBOARD.md.

    python scripts/leaderboard.py --total-steps 1e6 --seeds 3

Runs the grid of :mod:`mnemax.experiment.leaderboard` (tasks x cores, each
cell a run folder under ``<root>``), then writes the ranking, the per-cell
table (MMER, final return, steps/s, compile seconds) and a heat map into
docs/LEADERBOARD.md and docs/leaderboard.png. Rerunning the same command
skips finished cells and continues a stopped one (Ctrl-C is safe); a larger
``--total-steps`` starts a new root, the same program at a bigger budget.
``--report-only`` trains nothing and writes the doc from the cells finished so
far, saying how many are missing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str]) -> argparse.Namespace:
    from mnemax.experiment.compare import add_grid_arguments
    from mnemax.experiment.leaderboard import CORES, TASKS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_grid_arguments(parser, total_steps="1e6", unit="cell", name="leaderboard",
                       doc=ROOT / "docs" / "LEADERBOARD.md", figure=ROOT / "docs" / "leaderboard.png",
                       results=ROOT / "docs" / "results")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS))
    parser.add_argument("--cores", nargs="+", default=list(CORES))
    parser.add_argument("--report-only", action="store_true",
                        help="train nothing: write the doc from the cells finished so far and list the missing ones")
    return parser.parse_args(argv)


def train(args: argparse.Namespace, total_steps: int, root: Path) -> list:
    from mnemax.experiment.leaderboard import run_grid

    return run_grid(args.tasks, args.cores, root, total_steps, args.seeds, args.override, train=not args.report_only)


def report(args: argparse.Namespace, cells: list, total_steps: int, command: str, machine: str) -> None:
    from mnemax.experiment.leaderboard import write_report

    command = command.replace(" --report-only", "")  # the doc names the command that trains the grid
    write_report(cells, args.doc, args.figure, command, machine, total_steps, args.seeds,
                 planned=len(args.tasks) * len(args.cores))


def main(argv: list[str] | None = None) -> None:
    from mnemax.experiment.runtime import configure_jax

    configure_jax()  # before anything starts JAX's CPU backend: it sets an XLA flag
    from mnemax.experiment.compare import grid_main

    grid_main("scripts/leaderboard.py", "leaderboard", sys.argv[1:] if argv is None else argv, parse_args, train, report)


if __name__ == "__main__":
    main()
