"""Backbones x memory tasks x seeds in one command; a table in docs/BACKBONES.md and a figure in docs/backbones.png.

    python scripts/compare_backbones.py --backbones gru s5 lru \\
        --envs popgym/RepeatPreviousEasy popgym/RepeatFirstEasy --seeds 3 --total-steps 2e5

Each (task, backbone) pair trains through the same runner as ``scripts/train.py``
and gets its own run folder under ``--runs-root``. Trailing ``key=value``
arguments are Hydra overrides applied to every run (``agent.learning_rate=3e-4``).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from mnemax.experiment.config import ConfigError, coerce
from mnemax.experiment.runtime import configure_jax

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", nargs="+", default=["gru", "s5", "lru"])
    parser.add_argument("--envs", nargs="+", default=["popgym/RepeatPreviousEasy", "popgym/RepeatFirstEasy"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--total-steps", default="2e5", help="env steps per seed; 2e5 is read as 200000")
    parser.add_argument("--runs-root", default="runs")
    parser.add_argument("--doc", default=str(ROOT / "docs" / "BACKBONES.md"))
    parser.add_argument("--figure", default=str(ROOT / "docs" / "backbones.png"))
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every run, e.g. agent.learning_rate=3e-4")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    configure_jax()
    from mnemax.experiment.compare import backbone_variants, compare, write_report
    from mnemax.experiment.runner import DivergenceError

    try:
        total_steps = coerce(int, args.total_steps, "--total-steps")
        rows = compare(
            backbone_variants(args.backbones),
            args.envs,
            seeds=args.seeds,
            total_steps=total_steps,
            overrides=args.overrides,
            runs_root=args.runs_root,
        )
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except DivergenceError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    command = "python scripts/compare_backbones.py " + " ".join(shlex.quote(a) for a in argv)
    write_report(rows, args.doc, args.figure, "Backbones on memory tasks", command, args.seeds, total_steps)
    print(f"wrote {args.doc} and {args.figure}")


if __name__ == "__main__":
    main()
