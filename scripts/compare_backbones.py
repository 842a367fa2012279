"""Backbones x memory tasks x seeds in one command; a table in docs/BACKBONES.md and a figure in docs/backbones.png.

    python scripts/compare_backbones.py --backbones gru s5 lru \\
        --envs popgym/RepeatPreviousEasy popgym/RepeatFirstEasy --seeds 3 --total-steps 2e5

Each (task, backbone) pair trains through the same runner as ``scripts/train.py``
and gets its own run folder under ``--runs-root``. Trailing ``key=value``
arguments are Hydra overrides applied to every run (``agent.learning_rate=3e-4``).

``--worldmodel`` compares world-model backbones instead (S4WM's protocol,
:mod:`mnemax.experiment.memory_benchmark`): scripted datasets of the memory
tasks, open-loop imagination error per step, reward-sign accuracy and training
throughput, into docs/MEMORY_BENCHMARK.md and docs/memory_benchmark.png::

    python scripts/compare_backbones.py --worldmodel --envs memory/TwoRooms memory/DistractingMemory \\
        --backbones gru transformer s5 s4d lru --seeds 3 --task-option TwoRooms.episode_length=64
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mnemax.experiment.runtime import configure_jax

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", nargs="+", default=None, help="default gru s5 lru (with --worldmodel: gru transformer s5 s4d lru)")
    parser.add_argument("--envs", nargs="+", default=None, help="default two popgym tasks (with --worldmodel: memory/TwoRooms memory/DistractingMemory)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--total-steps", default="2e5", help="env steps per seed; 2e5 is read as 200000")
    parser.add_argument("--runs-root", default="runs")
    parser.add_argument("--doc", default=None, help="default docs/BACKBONES.md (with --worldmodel: docs/MEMORY_BENCHMARK.md)")
    parser.add_argument("--figure", default=None, help="default docs/backbones.png (with --worldmodel: docs/memory_benchmark.png)")
    world = parser.add_argument_group("world models (--worldmodel)")
    world.add_argument("--worldmodel", action="store_true", help="compare world-model backbones on scripted memory-task datasets")
    world.add_argument("--episodes", type=int, default=64, help="scripted episodes per task, held-out ones included")
    world.add_argument("--eval-episodes", type=int, default=16, help="held-out episodes scored")
    world.add_argument("--updates", type=int, default=300)
    world.add_argument("--batch-size", type=int, default=8, help="whole episodes per update")
    world.add_argument("--features", type=int, default=64, help="backbone and MLP width")
    world.add_argument("--task-option", action="append", default=[], metavar="TASK.NAME=VALUE",
                       help="an environment option (repeatable), e.g. TwoRooms.episode_length=64")
    world.add_argument("--data-dir", default=None, help="write datasets here and reuse them on later runs")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every run, e.g. agent.learning_rate=3e-4")
    args = parser.parse_args(argv)
    if args.worldmodel and args.overrides:
        parser.error(f"--worldmodel takes no Hydra overrides (got {' '.join(args.overrides)}); use --task-option and the sizes above.")
    mode = "worldmodel" if args.worldmodel else "agent"
    for name, value in DEFAULTS[mode].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


DEFAULTS = {
    "agent": {
        "backbones": ["gru", "s5", "lru"],
        "envs": ["popgym/RepeatPreviousEasy", "popgym/RepeatFirstEasy"],
        "doc": str(ROOT / "docs" / "BACKBONES.md"),
        "figure": str(ROOT / "docs" / "backbones.png"),
    },
    "worldmodel": {
        "backbones": ["gru", "transformer", "s5", "s4d", "lru"],
        "envs": ["memory/TwoRooms", "memory/DistractingMemory"],
        "doc": str(ROOT / "docs" / "MEMORY_BENCHMARK.md"),
        "figure": str(ROOT / "docs" / "memory_benchmark.png"),
    },
}


def compare_world_models(args: argparse.Namespace, command: str) -> None:
    """The --worldmodel comparison: train, imagine, score, and write the doc and figure."""
    from mnemax.experiment import memory_benchmark as bench
    from mnemax.experiment.runtime import machine_description

    budget = bench.WorldModelBudget(
        episodes=args.episodes, eval_episodes=args.eval_episodes, updates=args.updates,
        batch_size=args.batch_size, features=args.features,
    )
    try:
        options = [bench.parse_task_option(text) for text in args.task_option]
        rows = bench.compare_world_models(args.envs, args.backbones, args.seeds, budget, options, data_dir=args.data_dir)
    except (TypeError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    bench.write_report(rows, args.doc, args.figure, command, args.seeds, budget, machine_description())


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    configure_jax()  # before anything starts JAX's CPU backend: it sets an XLA flag
    args = parse_args(argv)
    from mnemax.experiment.compare import script_command

    command = script_command("scripts/compare_backbones.py", argv)
    if args.worldmodel:
        compare_world_models(args, command)
        print(f"wrote {args.doc} and {args.figure}")
        return
    from mnemax.experiment.compare import backbone_variants, compare, user_errors_exit, write_report
    from mnemax.experiment.config import coerce

    with user_errors_exit():
        total_steps = coerce(int, args.total_steps, "--total-steps")
        rows = compare(
            backbone_variants(args.backbones),
            args.envs,
            seeds=args.seeds,
            total_steps=total_steps,
            overrides=args.overrides,
            runs_root=args.runs_root,
        )
    write_report(rows, args.doc, args.figure, "Backbones on memory tasks", command, args.seeds, total_steps)
    print(f"wrote {args.doc} and {args.figure}")


if __name__ == "__main__":
    main()
