"""What a person watching a run sees: a rich progress bar on a terminal, plain lines elsewhere.

The bar shows env steps per seed out of the budget, steps/s (all seeds,
compile excluded), the mean return of the last chunk that ended an episode,
and the time left. Away from a
terminal (a log file, a cluster job) a line is printed at most every
``line_every`` seconds instead.
"""

from __future__ import annotations

import math
import time

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn


class RunProgress:
    """Progress of one run in env steps per seed; a no-op when ``enabled`` is false."""

    def __init__(self, title: str, total_steps: int, enabled: bool = True, console: Console | None = None, line_every: float = 10.0):
        self.console = console or Console(stderr=True)
        self.enabled = enabled
        self.total = total_steps
        self.title = title
        self.line_every = line_every
        self._bar: Progress | None = None
        self._last_line = -math.inf
        self._last_return = math.nan

    def __enter__(self) -> "RunProgress":
        if self.enabled and self.console.is_terminal:
            self._bar = Progress(
                BarColumn(bar_width=24),
                TextColumn("{task.completed:,}/{task.total:,} steps"),
                TextColumn("{task.fields[sps]} steps/s"),
                TextColumn("return {task.fields[ret]}"),
                TimeRemainingColumn(),
                console=self.console,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task(self.title, total=self.total, sps="-", ret="-")
        return self

    def status(self, message: str) -> None:
        """A one-off message (e.g. "compiling")."""
        if self.enabled:
            self.console.print(message, markup=False, highlight=False)

    def update(self, env_steps: float, sps: float, recent_return: float, done: bool = False) -> None:
        """Show progress after a chunk; ``done`` fills the bar (the budget rounds down to whole updates)."""
        if not self.enabled:
            return
        env_steps = self.total if done else env_steps
        if not math.isnan(recent_return):
            self._last_return = recent_return
        ret = "-" if math.isnan(self._last_return) else f"{self._last_return:.3f}"
        if self._bar is not None:
            self._bar.update(self._task, completed=int(env_steps), sps=f"{sps:,.0f}", ret=ret)
            return
        now = time.monotonic()
        if now - self._last_line >= self.line_every or env_steps >= self.total:
            self._last_line = now
            line = f"{self.title}: {int(env_steps):,}/{self.total:,} env steps, {sps:,.0f} steps/s, return {ret}"
            self.console.print(line, markup=False, highlight=False)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
