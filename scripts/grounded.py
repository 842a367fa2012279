"""Grounded fast word learning: PPO with DCEM and other memories on grounded/FastBinding, into docs/GROUNDED.md.

    python scripts/grounded.py --total-steps 3e6 --seeds 3
    python scripts/grounded.py --task shown --variants dcem lstm

``--task`` picks the version of the task (``mnemax.experiment.grounded.TASKS``):
``explore`` (the paper's, default), ``shown`` (objects presented with their
names, egocentric view) or ``fixed-names`` (the control without binding). Each
task has its own results folder, block of docs/GROUNDED.md and figure.

Trains every variant of :mod:`mnemax.experiment.grounded` (DCEM, DCEM without
the reconstruction loss, a single-column memory, LSTM, GRU, Transformer, S5)
on FastBinding-N3, each in ``<root>/<variant>``; evaluates each on N = 3, 5, 8,
held-out objects and held-out names; writes the tables and the learning
curves into docs/GROUNDED.md and docs/grounded.png. Rerunning the same
command skips finished cells and continues stopped ones, so a long comparison
can be run in pieces (stop it with Ctrl-C at any time).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str]) -> argparse.Namespace:
    from mnemax.experiment.compare import add_grid_arguments
    from mnemax.experiment.grounded import TASKS, VARIANTS

    labels = [v.label for v in VARIANTS]
    task = TASKS.get(_task_in(argv), TASKS["explore"])  # an unknown --task is refused by the parser below
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_grid_arguments(parser, total_steps="3e6", unit="variant", name=task.results_name,
                       doc=ROOT / "docs" / "GROUNDED.md", figure=ROOT / "docs" / f"{task.results_name}.png",
                       results=ROOT / "docs" / "results")
    parser.add_argument("--task", default="explore", choices=list(TASKS), help="which version of the task (see above)")
    parser.add_argument("--variants", nargs="+", default=labels, choices=labels, metavar="VARIANT",
                        help=f"which variants to run (default all: {' '.join(labels)})")
    parser.add_argument("--episodes", type=int, default=512, help="evaluation envs per seed and evaluation env")
    return parser.parse_args(argv)


def _task_in(argv: list[str]) -> str:
    """The ``--task`` of ``argv`` (read first: it names the default results folder and figure); ``explore`` if absent."""
    probe = argparse.ArgumentParser(add_help=False)
    probe.add_argument("--task", default="explore")
    return probe.parse_known_args(argv)[0].task


def train(args: argparse.Namespace, total_steps: int, root: Path) -> list:
    from mnemax.experiment.grounded import COMMON, TASKS, VARIANTS, run_cell

    chosen = [variant for variant in VARIANTS if variant.label in args.variants]
    common = (*COMMON, *args.override)
    task = TASKS[args.task]
    return [run_cell(variant, root, total_steps, args.seeds, args.episodes, common=common, task=task) for variant in chosen]


def report(args: argparse.Namespace, cells: list, total_steps: int, command: str, machine: str) -> None:
    from mnemax.experiment.grounded import TASKS, write_report

    write_report(cells, args.doc, args.figure, command, machine, task=TASKS[args.task])


def main(argv: list[str] | None = None) -> None:
    from mnemax.experiment.runtime import configure_jax

    configure_jax()  # before anything starts JAX's CPU backend: it sets an XLA flag
    from mnemax.experiment.compare import grid_main
    from mnemax.experiment.grounded import TASKS

    argv = sys.argv[1:] if argv is None else argv
    task = TASKS.get(_task_in(argv), TASKS["explore"])
    grid_main("scripts/grounded.py", task.results_name, argv, parse_args, train, report)


if __name__ == "__main__":
    main()
