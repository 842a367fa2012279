"""Compare variants (backbones today) across tasks: one run folder per (task, variant), one table, one figure.

:func:`compare` composes every config first (so a typo fails before any
training), runs each through :func:`mnemax.experiment.runner.run`, and writes a
markdown table (final return mean and std over seeds, steps/s, compile
seconds, run folder) and a figure with one panel per task and one curve per
variant (mean and spread over seeds). A variant is a label and its Hydra
overrides, so other comparisons (world models, agents) reuse it unchanged.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from pathlib import Path
from typing import Sequence

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
