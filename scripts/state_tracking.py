"""State tracking, trained short and tested long, for every backbone over one input array; a table in docs/STATE_TRACKING.md.

    python scripts/state_tracking.py --tasks parity mod3 --steps 200 --batch 16 --seeds 3

Every core that takes one input array runs (``mnemax.backbones.plain_input_names()``,
``--backbones`` picks some), twice where the core has a ``negative_eigenvalues`` option. The tasks, model and
metric are described in :mod:`mnemax.experiment.state_tracking`. Only the
generated block of the document is rewritten, so the reading of the results
around it survives a rerun.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from mnemax.experiment.runtime import configure_jax, machine_description

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", nargs="+", default=None, help="default: every backbone that takes one array")
    parser.add_argument("--tasks", nargs="+", default=["parity", "mod3"])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=16, help="training and test sequences per seed")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--doc", default=str(ROOT / "docs" / "STATE_TRACKING.md"))
    args = parser.parse_args(argv)
    configure_jax()

    import mnemax.backbones as backbones
    from mnemax.experiment.markdown import replace_section
    from mnemax.experiment.state_tracking import TASKS, StateTrackingConfig, format_table, train_and_test, variants

    unknown = sorted(set(args.tasks) - set(TASKS)) + sorted(set(args.backbones or []) - set(backbones.names()))
    if unknown:
        print(f"Unknown task or backbone {', '.join(unknown)}; tasks: {', '.join(TASKS)}; "
              f"backbones: {', '.join(backbones.names())}.", file=sys.stderr)
        return 2
    config = StateTrackingConfig(
        features=args.features, steps=args.steps, batch=args.batch, test_batch=args.batch, seeds=args.seeds
    )
    results, start = {}, time.perf_counter()
    for task in args.tasks:
        for variant in variants(args.backbones or backbones.plain_input_names(), config):
            row = train_and_test(variant, task, config)
            results[(task, variant.label)] = row
            print(f"{task:7s} {variant.label:22s} acc {row['accuracy'].mean(0).round(3)} ({row['train_seconds']:.0f} s)",
                  flush=True)
    command = "python scripts/state_tracking.py " + shlex.join(argv)
    body = "\n".join([
        f"`{command.strip()}` — {config.seeds} seeds, {config.steps} Adam steps of batch {config.batch} at length "
        f"{config.train_length}, width {config.features}, {config.num_layers} layer(s); accuracy over the last "
        f"{config.train_length} steps of {config.test_batch} fresh sequences per seed; "
        f"{time.perf_counter() - start:.0f} s in all on {machine_description()}.",
        "",
        format_table(results, config),
    ])
    replace_section(args.doc, "state-tracking", body, new_document="# State tracking\n")
    print(f"wrote {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
