"""The run folder ``runs/<timestamp>-<name>/``: where it goes, ``metrics.csv``, ``summary.json``.

``metrics.csv`` has one row per update per seed: ``update`` (1-based count of
updates done), ``seed`` (index in the vmapped batch), the trainer's metrics
(``env_steps`` per seed, ``episode_return`` (``nan`` where no episode ended),
losses, ...), ``sps`` (env steps per second over all seeds in that chunk,
compile excluded) and ``time_seconds`` (run time so far, compile excluded).
Floats are written with 9 significant digits, which round-trips float32
exactly, so a file read back gives the very numbers that were written.
"""

from __future__ import annotations

import csv
import datetime
import json
import math
import os
import re
import shutil
import tempfile
import traceback
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

LEADING_METRICS = ("env_steps", "episode_return", "episode_length", "episodes")
TIMING_COLUMNS = ("sps", "time_seconds")
LOCK_FILE = "run.lock"
"""Held (``flock``) by the process writing the folder; see :class:`RunLock`."""
RUN_FILES = ("config.yaml", "metrics.csv", "summary.json", "curves.png")
"""What a run writes beside ``checkpoint/`` and the loggers' folders."""
FINAL_FRACTION = 0.1
"""``final_return_*`` average the last 10% of updates."""


def folder_name(name: str) -> str:
    """A run name made safe for a folder name (``popgym/RepeatFirstEasy`` -> ``popgym-RepeatFirstEasy``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "run"


def new_run_dir(name: str, root: str | Path = "runs", create: bool = False) -> Path:
    """``<root>/<YYYYmmdd-HHMMSS>-<name>``, with a numeric suffix if that folder already exists.

    With ``create`` the folder is made here, atomically, so two runs started in
    the same second never share it.
    """
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{stamp}-{folder_name(name)}"
    path, index = base, 1
    while True:
        if not create and not path.exists():
            return path
        if create:
            try:
                path.mkdir(parents=True)
                return path
            except FileExistsError:
                pass
        path, index = Path(f"{base}-{index}"), index + 1


def latest_run_dir(name: str, root: str | Path = "runs") -> Path | None:
    """The newest ``<root>/*-<name>`` folder that holds a checkpoint, or ``None``."""
    pattern = re.compile(r"\d{8}-\d{6}-" + re.escape(folder_name(name)) + r"(-\d+)?$")
    root = Path(root)
    if not root.is_dir():
        return None
    found = sorted(p for p in root.iterdir() if pattern.match(p.name) and (p / "checkpoint").is_dir())
    return found[-1] if found else None


class RunLock:
    """An exclusive lock on ``<run_dir>/run.lock``, held while one process writes the run folder.

    It is an ``fcntl.flock``: the operating system drops it when the process
    ends, however it ends (crash, SIGKILL, out of memory), so a dead run never
    leaves the folder locked. The holder's pid is written into the file for the
    message a second run gets. Where ``fcntl`` does not exist (Windows) the
    lock is a no-op.
    """

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / LOCK_FILE
        self._file = None

    def acquire(self) -> str | None:
        """Take the lock; ``None`` on success, else the holder's pid as written in the file (may be empty)."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not on Linux or macOS
            return None
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip()
            handle.close()
            return holder
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._file = handle
        return None

    def release(self) -> None:
        """Drop the lock (closing the file releases the ``flock``); the file stays, so no race on its name."""
        if self._file is not None:
            self._file.close()
            self._file = None


def holds_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds (part of) a run: a metrics table or a checkpoint folder."""
    return (run_dir / "metrics.csv").exists() or (run_dir / "checkpoint").is_dir()


def read_stored_config(run_dir: Path) -> dict[str, Any] | None:
    """``config.yaml`` of ``run_dir`` as a plain dict, or ``None`` when there is none."""
    from omegaconf import OmegaConf

    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        return None
    stored = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    return stored if isinstance(stored, dict) else None


def read_summary(run_dir: Path) -> dict[str, Any] | None:
    """``summary.json`` of ``run_dir``, or ``None`` when it is missing or unreadable."""
    try:
        return json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return None


def discard_unstarted_run(run_dir: Path, created: bool) -> None:
    """Remove what a run that never trained wrote, so the folder can be used again as if it never ran.

    A folder the run created goes entirely; in a folder that existed before,
    only the run's own files go.
    """
    if created:
        shutil.rmtree(run_dir, ignore_errors=True)
        return
    for name in RUN_FILES:
        (run_dir / name).unlink(missing_ok=True)


def write_error_log(error: BaseException, run_dir: Path | None) -> Path:
    """Write ``error``'s traceback to ``<run_dir>/error.log``, or to a temporary file when the folder is gone."""
    text = "".join(traceback.format_exception(error))
    if run_dir is not None and run_dir.is_dir():
        path = run_dir / "error.log"
        try:
            path.write_text(text)
            return path
        except OSError:
            pass
    handle, name = tempfile.mkstemp(prefix="mnemax-error-", suffix=".log")
    with os.fdopen(handle, "w") as f:
        f.write(text)
    return Path(name)


def ordered_metric_names(names: Sequence[str]) -> list[str]:
    """Metric columns: env steps and episode statistics first, the rest alphabetically."""
    return [n for n in LEADING_METRICS if n in names] + sorted(n for n in names if n not in LEADING_METRICS)


def _cell(value: float) -> str:
    return format(value, ".9g")  # float32 round-trips exactly; NaN and inf read back as themselves


class MetricsTable:
    """``metrics.csv`` on disk plus the same numbers in memory, ``[U, S]`` per column.

    Rows are appended and flushed after every chunk, so a run that stops (NaN,
    Ctrl-C, a crash) keeps everything up to its last chunk.
    """

    def __init__(self, path: str | Path, metric_names: Sequence[str], num_seeds: int):
        self.path = Path(path)
        self.metrics = ordered_metric_names(metric_names)
        self.columns = ["update", "seed", *self.metrics, *TIMING_COLUMNS]
        self.num_seeds = num_seeds
        self._blocks: list[dict[str, np.ndarray]] = []

    def start(self, keep_updates: int = 0) -> None:
        """Open the file; with ``keep_updates > 0`` (resume) keep its first ``keep_updates`` updates and drop the rest."""
        kept = self._read(keep_updates) if keep_updates > 0 else None
        with self.path.open("w", newline="") as f:
            csv.writer(f).writerow(self.columns)
        if kept is not None:
            self.append(kept)

    def _read(self, keep_updates: int) -> dict[str, np.ndarray]:
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path} is missing, so the run cannot resume with its history; start a new run_dir.")
        with self.path.open(newline="") as f:
            rows = [r for r in csv.DictReader(f) if int(r["update"]) <= keep_updates]
        if len(rows) != keep_updates * self.num_seeds:
            raise ValueError(
                f"{self.path} holds {len(rows)} rows for the first {keep_updates} updates, expected "
                f"{keep_updates * self.num_seeds}; the run folder is incomplete, start a new run_dir."
            )
        return _columns(rows, self.columns, self.num_seeds)

    def append(self, block: dict[str, np.ndarray]) -> None:
        """Write ``block`` (every column ``[n, S]``) and flush."""
        self._blocks.append(block)
        n = block["update"].shape[0]
        with self.path.open("a", newline="") as f:
            writer = csv.writer(f)
            for i in range(n):
                for s in range(self.num_seeds):
                    row = [int(block["update"][i, s]), int(block["seed"][i, s])]
                    row += [_cell(float(block[c][i, s])) for c in self.columns[2:]]
                    writer.writerow(row)

    def column(self, name: str) -> np.ndarray:
        """One column over the whole run so far, ``[U, S]``."""
        if not self._blocks:
            return np.zeros((0, self.num_seeds), np.float32)
        return np.concatenate([b[name] for b in self._blocks], axis=0)

    @property
    def num_updates(self) -> int:
        return sum(b["update"].shape[0] for b in self._blocks)


def final_return(returns: np.ndarray, fraction: float = FINAL_FRACTION) -> tuple[float, float]:
    """Mean and std over seeds of each seed's mean return over the last ``fraction`` of updates.

    ``returns [U, S]`` has NaN where no episode ended; a seed with no finished
    episode in that window counts as NaN and is left out.
    """
    if returns.shape[0] == 0:
        return math.nan, math.nan
    last = max(1, math.ceil(fraction * returns.shape[0]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        per_seed = np.nanmean(returns[-last:], axis=0)
        return float(np.nanmean(per_seed)), float(np.nanstd(per_seed))


def _json_ready(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.generic):
        return _json_ready(value.item())
    return value


def write_json(path: str | Path, value: dict[str, Any]) -> None:
    """Strict JSON (NaN and inf become ``null``), keys in insertion order."""
    Path(path).write_text(json.dumps(_json_ready(value), indent=2) + "\n")


def load_metrics(run_dir: str | Path) -> dict[str, np.ndarray]:
    """A finished run's ``metrics.csv`` as ``{column: [U, S]}`` (float32; ``update``/``seed`` int64)."""
    path = Path(run_dir) / "metrics.csv"
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return {}
    return _columns(rows, list(rows[0]), len({r["seed"] for r in rows}))


def _columns(rows: list[dict[str, str]], columns: Sequence[str], num_seeds: int) -> dict[str, np.ndarray]:
    """CSV rows -> ``{column: [U, S]}``, ordered by update then seed; a missing cell reads as NaN."""
    rows = sorted(rows, key=lambda r: (int(r["update"]), int(r["seed"])))
    out = {}
    for column in columns:
        values = [float(r[column]) if r.get(column) not in (None, "") else math.nan for r in rows]
        dtype = np.int64 if column in ("update", "seed") else np.float32
        out[column] = np.asarray(values).astype(dtype).reshape(-1, num_seeds)
    return out
