"""A POPGym leaderboard of every memory core under PPO: one resumable grid of run folders, one table.

Each cell (task, core) trains ``seeds`` seeds together in ``<root>/<task>/<core>``
with ``resume=true`` (see :func:`mnemax.experiment.compare.resumable_run`), so
the same command, rerun, skips finished cells and continues a stopped one;
with a larger ``--total-steps`` (a new root) it is the bigger run. Every core
of a size class gets the same PPO settings and the same width; the table
states each core's parameter count.

Per cell: POPGym's max-mean-episodic-return (MMER: for each seed the best
mean episode return over updates, then mean ± std over seeds), the final
return (mean of the last 10% of updates), steps/s and compile seconds. Per
core: the mean rank over tasks (rank 1 = best final return on a task).
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mnemax.experiment.compare import parameter_count, resumable_run
from mnemax.experiment.composition import backbone_yaml, load_run_config
from mnemax.experiment.markdown import replace_section
from mnemax.experiment.plots import _matplotlib
from mnemax.experiment.run_folder import load_metrics, read_summary

# Tasks where memory matters and PPO learns something at CPU budgets.
TASKS = (
    "popgym/RepeatPreviousEasy",
    "popgym/RepeatFirstEasy",
    "popgym/CountRecallEasy",
    "popgym/AutoencodeEasy",
    "popgym/PositionOnlyCartPoleEasy",
    "popgym/VelocityOnlyCartPoleEasy",
    "popgym/NoisyPositionOnlyPendulumEasy",
    "popgym/HigherLowerEasy",
    "popgym/MineSweeperEasy",
    "popgym/ConcentrationEasy",
    "popgym/BattleshipEasy",
)

CORES = (
    "none", "gru", "lstm", "s5", "s4d", "lru", "transformer",
    "mamba", "mingru", "mlstm", "ffm", "deltanet", "gated_deltanet", "mom", "titans",
)


@dataclasses.dataclass
class LeaderboardCell:
    task: str
    core: str
    run_dir: Path
    summary: dict[str, Any]
    mmer: np.ndarray  # [S]
    final: np.ndarray  # [S] mean return over the last 10% of updates
    parameters: int


def _nan_quiet(reduce, values: np.ndarray, **kwargs) -> np.ndarray:
    """``reduce(values)`` where an all-NaN slice gives NaN without numpy's warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return reduce(values, **kwargs)


def mmer(returns: np.ndarray) -> np.ndarray:
    """POPGym's max-mean-episodic-return per seed: ``returns [U, S]`` -> ``[S]`` (updates without an episode skipped)."""
    return _nan_quiet(np.nanmax, returns, axis=0)


def final_returns(returns: np.ndarray, fraction: float = 0.1) -> np.ndarray:
    """Each seed's mean episode return over the last ``fraction`` of updates, ``[U, S] -> [S]``."""
    tail = returns[-max(1, int(np.ceil(fraction * returns.shape[0]))) :]
    return _nan_quiet(np.nanmean, tail, axis=0)


PARAMETER_BAND = 1.5
"""On every task, the largest memory core's agent has at most this many times the smallest one's parameters."""


def core_overrides(core: str) -> list[str]:
    """The changes a core's YAML names under ``leaderboard:`` (its width, or options), as Hydra overrides.

    Every core runs at its YAML's settings except where those would put its
    agent outside :data:`PARAMETER_BAND` of the others (the GRU is small at
    width 64, a two-layer Transformer large); the ``leaderboard:`` key says
    what changes instead, so ``train.py`` keeps the same defaults.
    """
    changes = backbone_yaml(core).get("leaderboard") or {}
    return [f"backbone.{key}={value}" if key == "features" else f"backbone.options.{key}={value}"
            for key, value in changes.items()]


def cell_overrides(task: str, core: str, total_steps: int, seeds: int, common: Sequence[str]) -> list[str]:
    return [f"env={task}", f"backbone={core}", *core_overrides(core), f"seeds={seeds}", f"total_steps={total_steps}",
            f"name=leaderboard-{core}", "progress=false", *common]


def parameter_spread(cells: Sequence[LeaderboardCell]) -> float:
    """The largest ratio, over tasks, of the most to the fewest parameters among the memory cores (``none`` left out)."""
    ratios = [1.0]
    for task in dict.fromkeys(c.task for c in cells):
        counts = [c.parameters for c in cells if c.task == task and c.core != "none"]
        if counts:
            ratios.append(max(counts) / min(counts))
    return max(ratios)


def run_grid(tasks: Sequence[str], cores: Sequence[str], root: Path, total_steps: int, seeds: int,
             common: Sequence[str] = (), log=print, train: bool = True) -> list[LeaderboardCell]:
    """Train (or skip, or continue) every cell, task by task; returns the finished cells in order.

    With ``train=False`` nothing is trained: the finished cells are read back
    and the others are named as not run yet, so a grid that takes several
    sittings can be reported at any point.
    """
    cells = []
    for task in tasks:
        for core in cores:
            run_dir = root / task.replace("/", "-") / core
            overrides = cell_overrides(task, core, total_steps, seeds, common)
            if train:
                config, result = resumable_run(overrides, run_dir)
                word = "already done" if result.already_finished else "trained"
            elif (read_summary(run_dir) or {}).get("status") == "finished":
                config, word = load_run_config([*overrides, f"run_dir={run_dir}", "resume=true"]), "finished"
            else:
                log(f"{task} {core}: not run yet")
                continue
            returns = load_metrics(run_dir)["episode_return"]
            summary = json.loads((run_dir / "summary.json").read_text())
            cell = LeaderboardCell(task, core, run_dir, summary, mmer(returns), final_returns(returns), parameter_count(config))
            log(f"{task} {core}: {word}; MMER {cell.mmer.mean():.3f}, final {cell.final.mean():.3f}")
            cells.append(cell)
    return cells


def complete_tasks(cells: Sequence[LeaderboardCell]) -> list[str]:
    """The tasks on which every core that appears in ``cells`` has a finished cell."""
    cores = {c.core for c in cells}
    return [task for task in dict.fromkeys(c.task for c in cells) if {c.core for c in cells if c.task == task} == cores]


def mean_ranks(cells: Sequence[LeaderboardCell]) -> dict[str, float]:
    """Each core's rank on each task by mean final return (1 = best, ties share the mean rank), averaged over tasks.

    Only :func:`complete_tasks` count: on a task where some cores have not run
    yet, a rank would compare a core with fewer rivals than on the others.
    """
    ranks: dict[str, list[float]] = {}
    for task in complete_tasks(cells):
        row = [c for c in cells if c.task == task]
        scores = np.asarray([_nan_quiet(np.nanmean, c.final) for c in row])
        scores = np.where(np.isfinite(scores), scores, -np.inf)
        for c, score in zip(row, scores):
            better, equal = np.sum(scores > score), np.sum(scores == score)
            ranks.setdefault(c.core, []).append(better + (equal + 1) / 2)
    return {core: float(np.mean(r)) for core, r in ranks.items()}


def _spread(values: np.ndarray) -> str:
    return f"{_nan_quiet(np.nanmean, values):.3f} ± {_nan_quiet(np.nanstd, values):.3f}"


def markdown_tables(cells: Sequence[LeaderboardCell]) -> str:
    """The ranking (core, mean rank, parameters) and the per-cell table."""
    ranks = mean_ranks(cells)
    params = {}
    for c in cells:
        params.setdefault(c.core, set()).add(c.parameters)
    tasks = complete_tasks(cells)
    lines = [f"Mean rank over the {len(tasks)} task(s) every core has finished: {', '.join(tasks) or 'none yet'}.", "",
             f"On each task the memory cores' parameter counts are within {parameter_spread(cells):.2f}x of each other.", "",
             "| core | mean rank | parameters (min-max over tasks) |", "|---|---|---|"]
    for core, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        counts = sorted(params[core])
        lines.append(f"| {core} | {rank:.2f} | {counts[0]:,}-{counts[-1]:,} |")
    lines += ["", "| task | core | MMER | final return | steps/s | compile s |", "|---|---|---|---|---|---|"]
    for c in cells:
        s = c.summary
        lines.append(
            f"| {c.task} | {c.core} | {_spread(c.mmer)} | {_spread(c.final)} | {s['steps_per_second']:,.0f} | {s['compile_seconds']:.0f} |"
        )
    return "\n".join(lines)


def plot(cells: Sequence[LeaderboardCell], path: str | os.PathLike) -> None:
    """A heat map of mean final return, each task scaled between its worst (0) and best (1) core."""
    plt = _matplotlib()
    tasks = list(dict.fromkeys(c.task for c in cells))
    cores = list(dict.fromkeys(c.core for c in cells))
    grid = np.full((len(tasks), len(cores)), np.nan)
    for c in cells:
        grid[tasks.index(c.task), cores.index(c.core)] = _nan_quiet(np.nanmean, c.final)
    low, high = _nan_quiet(np.nanmin, grid, axis=1, keepdims=True), _nan_quiet(np.nanmax, grid, axis=1, keepdims=True)
    scaled = (grid - low) / np.where(high > low, high - low, 1.0)
    fig, ax = plt.subplots(figsize=(1 + 0.6 * len(cores), 1 + 0.45 * len(tasks)))
    image = ax.imshow(scaled, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(cores)), cores, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(tasks)), [t.split("/")[-1] for t in tasks], fontsize=8)
    fig.colorbar(image, ax=ax, label="final return, scaled per task (0 worst, 1 best)")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(cells: Sequence[LeaderboardCell], doc: str | os.PathLike, figure: str | os.PathLike,
                 command: str, machine: str, total_steps: int, seeds: int, planned: int | None = None) -> None:
    """Write the tables and the heat map; ``planned`` (the grid's size) names how many cells are still missing."""
    plot(cells, figure)
    doc, figure = Path(doc), Path(figure)
    progress = ""
    if planned is not None and planned > len(cells):
        progress = (f"**{len(cells)} of {planned} cells are finished**; the ranking covers the complete tasks only. "
                    "The same command without `--report-only` trains the rest.\n\n")
    block = (
        f"Command: `{command}`\n\nMachine: {machine}. {seeds} seeds per cell (vmapped), {total_steps:,} env steps per seed; "
        "PPO with the settings of configs/agent/ppo.yaml and every core at the settings of its configs/backbone/<name>.yaml, "
        "with the changes its `leaderboard:` key names.\n\n"
        f"{progress}"
        f"{markdown_tables(cells)}\n\n![final return per task and core]({os.path.relpath(figure, doc.parent)})"
    )
    replace_section(doc, "results", block, "# POPGym leaderboard\n\n")
