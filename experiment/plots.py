"""Return curves: mean over seeds against env steps, with the spread over seeds shaded."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np


def _matplotlib():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def seed_mean_and_std(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``values [U, S]`` (NaN where no episode ended) -> mean and std over seeds, ``[U]`` each, NaN-aware."""
    with warnings.catch_warnings():  # all-NaN rows (no episode ended yet) are expected early on
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values, axis=1), np.nanstd(values, axis=1)


def carry_forward(values: np.ndarray) -> np.ndarray:
    """``values [U, S]`` with each NaN replaced by the seed's last finite value before it (leading NaNs stay).

    An update in which no episode ended (long CartPole episodes) reports NaN;
    the curve shows the return of the last finished episode there instead of a gap.
    """
    values = np.asarray(values, float)
    index = np.where(np.isfinite(values), np.arange(values.shape[0])[:, None], 0)
    last = np.maximum.accumulate(index, axis=0)
    filled = np.take_along_axis(values, last, axis=0)
    seen = np.maximum.accumulate(np.isfinite(values), axis=0)
    return np.where(seen, filled, np.nan)


def plot_return_curve(ax, env_steps: np.ndarray, returns: np.ndarray, label: str | None = None) -> None:
    """Draw one curve on ``ax``: ``env_steps [U, S]``, ``returns [U, S]`` -> mean line and +-1 std band.

    Updates in which a seed finished no episode carry its last finished episode's return.
    """
    from matplotlib.ticker import EngFormatter

    steps = seed_mean_and_std(env_steps)[0] if env_steps.ndim == 2 else env_steps
    mean, std = seed_mean_and_std(carry_forward(returns))
    line = ax.plot(steps, mean, label=label)[0]
    ax.xaxis.set_major_formatter(EngFormatter(sep=""))  # 200000 -> 200k
    if returns.shape[1] > 1:
        ax.fill_between(steps, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)


def save_curves(path: str | Path, env_steps: np.ndarray, returns: np.ndarray, title: str) -> None:
    """``curves.png`` of a run: episode return against env steps per seed, mean and spread over seeds."""
    plt = _matplotlib()
    fig, ax = plt.subplots(figsize=(6, 4))
    plot_return_curve(ax, env_steps, returns, label=f"mean of {returns.shape[1]} seed(s)")
    ax.set_xlabel("env steps (per seed)")
    ax.set_ylabel("episode return")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
