"""Dreamer's critic targets on CartPole-v1: DreamerV3's against the slow critic's, into docs/WORLDMODELS.md.

    python scripts/critic_targets.py --total-steps 1e5 --seeds 3

Two variants of the shipped Dreamer config (configs/agent/dreamer.yaml, GRU
world model): the lambda-returns bootstrapped from the critic being trained
with a pull towards the slow (EMA) critic's value (DreamerV3's
``imag_loss: {slowtar: False, slowreg: 1.0}``), and bootstrapped from the slow
critic with no pull. Each variant is one resumable run folder of ``--seeds``
seeds trained together, under ``docs/results/dreamer-critic-target-<steps>/``, so the
same command continues a stopped run. ``--report-only`` trains nothing and
writes the ``critic-targets`` block of docs/WORLDMODELS.md (per seed, the mean
episode return in blocks of env steps, how far each run got) and
docs/critic_targets.png from what the runs have written so far.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {
    "dreamerv3-targets": ("agent.slow_target=false", "agent.slow_regularizer=1.0"),
    "slow-critic-targets": ("agent.slow_target=true", "agent.slow_regularizer=0.0"),
}
LABELS = {"dreamerv3-targets": "trained critic + pull to slow (DreamerV3)", "slow-critic-targets": "slow critic, no pull"}
COMMON = ("agent=dreamer", "backbone=gru", "env=CartPole-v1", "progress=false")
BLOCK = 8000  # env steps per column of the table


def parse_args(argv: list[str]) -> argparse.Namespace:
    from mnemax.experiment.compare import add_grid_arguments

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_grid_arguments(parser, total_steps="1e5", unit="variant", name="dreamer-critic-target",
                       doc=ROOT / "docs" / "WORLDMODELS.md", figure=ROOT / "docs" / "critic_targets.png",
                       results=ROOT / "docs" / "results")
    parser.add_argument("--report-only", action="store_true", help="train nothing: report what the runs wrote so far")
    return parser.parse_args(argv)


def train(args: argparse.Namespace, total_steps: int, root: Path) -> dict[str, dict]:
    """Run (or continue) each variant; returns ``{variant: metrics {column: [U, S]}}`` of what exists."""
    from mnemax.experiment.compare import resumable_run
    from mnemax.experiment.run_folder import load_metrics

    runs = {}
    for name, changes in VARIANTS.items():
        run_dir = root / name
        if not args.report_only:
            resumable_run([*COMMON, *changes, f"total_steps={total_steps}", f"seeds={args.seeds}", *args.override], run_dir)
        if (run_dir / "metrics.csv").exists():
            runs[name] = load_metrics(run_dir)
    return runs


def report(args: argparse.Namespace, runs: dict[str, dict], total_steps: int, command: str, machine: str) -> None:
    from mnemax.experiment.markdown import replace_section
    from mnemax.experiment.plots import _matplotlib

    command = command.replace(" --report-only", "")
    reached = {name: int(np.max(m["env_steps"])) for name, m in runs.items()}
    furthest = max(reached.values())
    starts = range(0, furthest - furthest % BLOCK, BLOCK)
    lines = ["| targets | seed | " + " | ".join(f"{b // 1000}-{(b + BLOCK) // 1000}k" for b in starts)
             + " | imagined return, its last block |", "|---|---|" + "---|" * (len(starts) + 1)]
    for name, metrics in runs.items():
        steps, returns, imagined = metrics["env_steps"], metrics["episode_return"], metrics["imagined_return"]  # [U, S]
        done = [start for start in starts if start + BLOCK <= reached[name]]  # the blocks this variant finished
        for seed in range(returns.shape[1]):
            cells = []
            for start in starts:
                inside = (steps[:, seed] > start) & (steps[:, seed] <= start + BLOCK)
                cells.append(f"{np.nanmean(returns[inside, seed]):.0f}" if start in done else "–")
            last = (steps[:, seed] > done[-1]) & (steps[:, seed] <= done[-1] + BLOCK)
            lines.append(f"| {LABELS[name]} | {seed} | " + " | ".join(cells) + f" | {np.nanmean(imagined[last, seed]):.1f} |")
    unfinished = [f"{LABELS[name]} at {steps:,}" for name, steps in reached.items() if steps < total_steps]
    progress = "" if not unfinished else (
        f" Not every run is finished ({'; '.join(unfinished)} of {total_steps:,} env steps; a dash marks a block a "
        "run has not finished); the same command continues them.")
    block = (f"Command: `{command}`\n\nMachine: {machine}. Mean episode return per block of env steps, each seed of "
             f"each variant (seeds trained together).{progress}\n\n" + "\n".join(lines)
             + f"\n\n![return vs env steps]({Path(args.figure).name})")
    replace_section(args.doc, "critic-targets", block, "# World models\n\n")
    plt = _matplotlib()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for name, color in zip(runs, ("tab:blue", "tab:red")):
        metrics = runs[name]
        for seed in range(metrics["episode_return"].shape[1]):
            ax.plot(metrics["env_steps"][:, seed], metrics["episode_return"][:, seed], color=color, alpha=0.6, lw=0.8,
                    label=LABELS[name] if seed == 0 else None)
    ax.set(xlabel="env steps", ylabel="episode return (CartPole-v1)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.figure, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    from mnemax.experiment.runtime import configure_jax

    configure_jax()  # before anything starts JAX's CPU backend: it sets an XLA flag
    from mnemax.experiment.compare import grid_main

    grid_main("scripts/critic_targets.py", "dreamer-critic-target", sys.argv[1:] if argv is None else argv, parse_args, train, report)


if __name__ == "__main__":
    main()
