"""Compare variants (backbones today) across tasks: one run folder per (task, variant), one table, one figure.

:func:`compare` composes every config first (so a typo fails before any
training), runs each through :func:`mnemax.experiment.runner.run`, and writes a
markdown table (final return mean and std over seeds, steps/s, compile
seconds, run folder) and a figure with one panel per task and one curve per
variant (mean and spread over seeds). A variant is a label and its Hydra
overrides, so other comparisons (world models, agents) reuse it unchanged.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
import shlex
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from mnemax.experiment.composition import load_run_config
from mnemax.experiment.plots import _matplotlib, plot_return_curve
from mnemax.experiment.run_folder import load_metrics
from mnemax.experiment.runtime import machine_description


@dataclasses.dataclass(frozen=True)
class Variant:
    """One curve of the comparison: its label and the overrides that make it (``("backbone=gru",)``)."""

    label: str
    overrides: tuple[str, ...]


@dataclasses.dataclass
class ComparisonRow:
    task: str
    variant: str
    summary: dict
    run_dir: Path
    env_steps: np.ndarray  # [U, S]
    returns: np.ndarray  # [U, S]


def resumable_run(overrides: Sequence[str], run_dir: str | Path):
    """Train the config ``overrides`` compose in ``run_dir``, resuming it: ``(config, RunResult)``.

    A finished run is not retrained (``RunResult.already_finished``), a stopped
    one continues from its last checkpoint: the building block of comparisons
    that take longer than one sitting and are rerun until every cell is done.
    """
    from mnemax.experiment.runner import run

    config = load_run_config([*overrides, f"run_dir={run_dir}", "resume=true"])
    return config, run(config)


def add_grid_arguments(parser, *, total_steps: str, unit: str, name: str, doc: str | Path, figure: str | Path,
                       results: str | Path) -> None:
    """The command-line options every resumable comparison script shares (budget, seeds, root, overrides, outputs).

    The cells go to ``results/<name>-<total steps>`` unless ``--root`` says
    otherwise; the repository keeps the small files of each cell there in git
    (config, metrics, summary, evaluation; not checkpoints), so a finished
    cell stays finished in a fresh checkout and a rerun skips it.
    """
    parser.set_defaults(results=str(results))
    parser.add_argument("--total-steps", default=total_steps,
                        help=f"env steps per seed and {unit}; {total_steps} is read as {int(float(total_steps))}")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--root", default=None,
                        help=f"parent of the run folders (default {results}/{name}-<total steps>)")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help=f"an extra Hydra override for every {unit} (repeatable), e.g. agent.learning_rate=3e-4")
    parser.add_argument("--doc", default=str(doc))
    parser.add_argument("--figure", default=str(figure))


@contextlib.contextmanager
def user_errors_exit():
    """Turn what a comparison's user can act on into one line and ``scripts/train.py``'s exit code.

    A bad option or config exits with 2, a diverged run with 1, Ctrl-C with
    130 after saying that the same command continues where it stopped.
    """
    import sys

    from mnemax.experiment.config import ConfigError
    from mnemax.experiment.runner import DivergenceError, RunInterrupted

    try:
        yield
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except DivergenceError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    except RunInterrupted as error:
        print(f"{error}\nRerun the same command to continue where it stopped.", file=sys.stderr)
        sys.exit(130)


def script_command(script: str, argv: Sequence[str]) -> str:
    """The shell line that reruns ``script`` with ``argv``, as the docs print it under a table."""
    return f"python {script} " + " ".join(shlex.quote(a) for a in argv)


def run_grid_command(args, name: str, train: Callable[[int, Path], list]) -> tuple[list, int]:
    """``train(total_steps, root)`` for a script made with :func:`add_grid_arguments`: ``(cells, total_steps)``.

    The root is ``--root`` or ``<results>/<name>-<total steps>``; errors exit as
    :func:`user_errors_exit` says.
    """
    from mnemax.experiment.config import coerce

    with user_errors_exit():
        total_steps = coerce(int, args.total_steps, "--total-steps")
        return train(total_steps, Path(args.root or Path(args.results) / f"{name}-{total_steps}")), total_steps


def grid_main(script: str, name: str, argv: Sequence[str], parse_args, train, report) -> None:
    """The whole ``main`` of a resumable comparison script (``scripts/grounded.py``, ``scripts/leaderboard.py``).

    ``parse_args(argv)`` builds its options with :func:`add_grid_arguments`;
    ``train(args, total_steps, root)`` runs (or skips) every cell and returns
    them; ``report(args, cells, total_steps, command, machine)`` writes the doc
    and the figure. The script calls :func:`~mnemax.experiment.runtime.configure_jax`
    before importing this module (importing it starts JAX's CPU backend).
    """
    args = parse_args(list(argv))
    cells, total_steps = run_grid_command(args, name, lambda steps, root: train(args, steps, root))
    report(args, cells, total_steps, script_command(script, argv), machine_description())
    print(f"wrote {args.doc} and {args.figure}")


def count_parameters(tree) -> int:
    """Number of scalars in a pytree of arrays (or of shapes from ``jax.eval_shape``)."""
    import jax

    return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(tree))


def parameter_count(config) -> int:
    """Trainable parameters of one seed of ``config``'s agent, from shapes alone (nothing is compiled or run)."""
    import jax

    from mnemax.agents.registry import agent_entry

    entry = agent_entry(config.agent_name)
    env, env_params = entry.make_env(config.env.name, **dict(config.env.kwargs))
    trainer = entry.make_trainer(config.agent, env, env_params)
    state = jax.eval_shape(trainer.init, jax.random.key(0))
    return count_parameters(state.params)


def backbone_variants(backbones: Sequence[str]) -> list[Variant]:
    return [Variant(label=name, overrides=(f"backbone={name}",)) for name in backbones]


def compare(
    variants: Sequence[Variant],
    tasks: Sequence[str],
    *,
    seeds: int,
    total_steps: int,
    overrides: Sequence[str] = (),
    runs_root: str | Path = "runs",
    name_prefix: str = "compare",
) -> list[ComparisonRow]:
    """Train every (task, variant) pair with ``seeds`` seeds and ``total_steps`` env steps each."""
    from mnemax.experiment.run_folder import folder_name
    from mnemax.experiment.runner import run

    plans = []
    for task in tasks:
        for variant in variants:
            name = folder_name(f"{name_prefix}-{variant.label}-{task}")
            config = load_run_config(
                [f"env={task}", f"seeds={seeds}", f"total_steps={total_steps}", f"name={name}", *variant.overrides, *overrides]
            )
            plans.append((task, variant, config))
    rows = []
    for task, variant, config in plans:
        result = run(config, runs_root=runs_root)
        metrics = load_metrics(result.run_dir)
        rows.append(
            ComparisonRow(task, variant.label, result.summary, result.run_dir, metrics["env_steps"], metrics["episode_return"])
        )
    return rows


def markdown_table(rows: Sequence[ComparisonRow], command: str, seeds: int, total_steps: int) -> str:
    """The comparison as markdown: a header saying how it was made, then one line per (task, variant)."""
    lines = [
        f"Made by `{command}` on {datetime.date.today().isoformat()}, {machine_description()}.",
        f"{seeds} seed(s) per cell, {total_steps:,} env steps per seed. Final return: mean over seeds of each seed's",
        "mean episode return over the last 10% of updates (± std over seeds). Steps/s count all seeds, compile excluded;",
        "compile s is the ahead-of-time compile of the training chunk (shorter when JAX's persistent cache holds it).",
        "",
        "| task | variant | final return | steps/s | compile s | run folder |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        s = row.summary
        ret = "n/a" if s["final_return_mean"] is None or np.isnan(s["final_return_mean"]) else (
            f"{s['final_return_mean']:.3f} ± {s['final_return_std']:.3f}"
        )
        lines.append(
            f"| {row.task} | {row.variant} | {ret} | {s['steps_per_second']:,.0f} | {s['compile_seconds']:.1f} | `{row.run_dir}` |"
        )
    return "\n".join(lines) + "\n"


def plot_comparison(rows: Sequence[ComparisonRow], path: str | Path) -> None:
    """One panel per task, one curve per variant: return against env steps, mean and +-1 std over seeds."""
    plt = _matplotlib()
    tasks = list(dict.fromkeys(row.task for row in rows))
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.8), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for row in (r for r in rows if r.task == task):
            plot_return_curve(ax, row.env_steps, row.returns, label=row.variant)
        ax.set_title(task, fontsize=10)
        ax.set_xlabel("env steps (per seed)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("episode return")
    axes[0][-1].legend(loc="lower right")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(rows: Sequence[ComparisonRow], doc: str | Path, figure: str | Path, title: str, command: str, seeds: int, total_steps: int) -> None:
    """``doc`` (markdown: title, table, the figure) and ``figure`` (PNG)."""
    plot_comparison(rows, figure)
    doc, figure = Path(doc), Path(figure)
    doc.parent.mkdir(parents=True, exist_ok=True)
    image = os.path.relpath(figure, doc.parent)
    doc.write_text(f"# {title}\n\n{markdown_table(rows, command, seeds, total_steps)}\n![{title}]({image})\n")
