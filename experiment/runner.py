"""Config -> trained seeds -> run folder.

:func:`run` builds the env and the agent's trainer from a :class:`RunConfig`,
initialises ``seeds`` runner states under ``jax.vmap`` and then trains in
chunks: one chunk is a compiled ``lax.scan`` of ``K`` vmapped updates, so the
host only wakes between chunks to write metrics, check them for NaN/inf,
update the progress bar, log and checkpoint.

The chunk compiles once per run, ahead of time (``jax.jit(chunk).lower(...)
.compile()``), so its compile time is measured apart from training time. It
takes the number of updates to do as a traced argument and skips the rest of
its ``K`` steps under ``lax.cond``; a last short chunk, a chunk cut at a
checkpoint, and a resumed run all reuse the same executable. Because the RNG
lives in the runner state and every update runs the same program, a run
resumed from a checkpoint reproduces the uninterrupted run bit for bit.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from mnemax.agents.registry import agent_entry
from mnemax.experiment.checkpoints import CheckpointStore
from mnemax.experiment.config import ConfigError, RunConfig, config_hash, run_config_to_dict, stored_config_changes
from mnemax.experiment.env_preflight import nan_source, preflight_message
from mnemax.experiment.interrupts import DeferredInterrupt
from mnemax.experiment.loggers import check_loggers_available, make_loggers
from mnemax.experiment.plots import save_curves, seed_mean_and_std
from mnemax.experiment.progress import RunProgress
from mnemax.experiment.run_folder import (
    MetricsTable,
    RunLock,
    discard_unstarted_run,
    final_return,
    holds_run,
    latest_run_dir,
    new_run_dir,
    read_stored_config,
    read_summary,
    write_error_log,
    write_json,
)

MAY_BE_NAN = ("episode_return", "episode_length")
"""Metrics that are NaN by design when no episode ended in an update; every other metric must stay finite."""
CHUNKS_PER_RUN = 100
"""With ``log_every: null``, a run is split into about this many chunks."""


class DivergenceError(RuntimeError):
    """A loss or statistic became NaN/inf; the message names the update, seed and quantity."""


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped the run; the message says what was kept and how to continue."""


class RunFailed(RuntimeError):
    """An unexpected error stopped the run; ``log_path`` holds its traceback, ``__cause__`` is the error."""

    def __init__(self, message: str, log_path: Path):
        super().__init__(message)
        self.log_path = log_path


@dataclasses.dataclass
class RunResult:
    """What :func:`run` returns: where the run lives, its summary, the final states ``[S, ...]``."""

    run_dir: Path
    summary: dict[str, Any]
    states: Any
    already_finished: bool = False
    """True when ``resume`` found the run finished: nothing was trained and ``states`` is ``None``."""


def chunk_length(num_updates: int, log_every: int | None) -> int:
    """Updates per compiled chunk: ``log_every``, or about ``num_updates / 100`` (at least 1)."""
    length = log_every if log_every is not None else math.ceil(num_updates / CHUNKS_PER_RUN)
    return max(1, min(length, num_updates))


def make_chunk(update: Callable, metric_shapes: dict[str, Any], length: int) -> Callable:
    """``chunk(states, n_active) -> (states, metrics)``: ``length`` scan steps of ``vmap(update)``, the first ``n_active`` real.

    ``states`` leaves are ``[S, ...]``; ``metrics`` leaves ``[length, S]``, zero past ``n_active``.
    """
    vmapped = jax.vmap(update)

    def idle(states):
        return states, {k: jnp.zeros(v.shape, v.dtype) for k, v in metric_shapes.items()}

    def chunk(states, n_active):
        def step(states, index):
            return jax.lax.cond(index < n_active, vmapped, idle, states)

        return jax.lax.scan(step, states, jnp.arange(length))

    return chunk


def seed_keys(seed: int, num_seeds: int) -> jax.Array:
    """``[S, 2]`` keys, seed ``i`` = ``fold_in(PRNGKey(seed), i)``: seed i draws the same stream whatever ``seeds`` is."""
    root = jax.random.PRNGKey(seed)
    return jax.vmap(lambda i: jax.random.fold_in(root, i))(jnp.arange(num_seeds))


def metrics_block(metrics: dict[str, np.ndarray], n: int, done: int, sps: float, run_seconds: float) -> dict[str, np.ndarray]:
    """A chunk's metrics (``[K, S]``, the first ``n`` real) as metrics.csv columns, ``[n, S]`` each.

    Adds ``update`` (1-based, after ``done`` earlier updates), ``seed``, and the
    chunk's timing columns ``sps`` and ``time_seconds``.
    """
    block = {k: np.asarray(v[:n]) for k, v in metrics.items()}
    num_seeds = block["env_steps"].shape[1]
    block["update"] = np.broadcast_to(np.arange(done + 1, done + n + 1)[:, None], (n, num_seeds))
    block["seed"] = np.broadcast_to(np.arange(num_seeds)[None, :], (n, num_seeds))
    block["sps"] = np.full((n, num_seeds), sps, np.float32)
    block["time_seconds"] = np.full((n, num_seeds), run_seconds, np.float32)
    return block


def first_non_finite(block: dict[str, np.ndarray], names: list[str]) -> tuple[int, int, str, float] | None:
    """``(row, seed, metric, value)`` of the earliest non-finite checked metric in ``block`` (``[n, S]`` each)."""
    found = None
    for name in names:
        if name in MAY_BE_NAN:
            continue
        bad = np.argwhere(~np.isfinite(block[name]))
        if bad.size and (found is None or bad[0][0] < found[0]):
            row, seed = int(bad[0][0]), int(bad[0][1])
            found = (row, seed, name, float(block[name][row, seed]))
    return found


def resolve_run_dir(config: RunConfig, runs_root: str | Path = "runs") -> Path:
    """The run folder: ``run_dir`` if set; on resume the newest ``runs/*-<name>``; else a new timestamped one (not yet made)."""
    experiment = config.experiment
    if experiment.run_dir is not None:
        return Path(experiment.run_dir)
    if experiment.resume:
        path = latest_run_dir(experiment.name, runs_root)
        if path is None:
            raise ConfigError(
                f"resume=true but no run named {experiment.name!r} with a checkpoint exists under {runs_root}/; "
                "set run_dir to the run folder to resume."
            )
        return path
    return new_run_dir(experiment.name, runs_root)


def open_run_dir(config: RunConfig, runs_root: str | Path = "runs") -> tuple[Path, bool]:
    """``(run_dir, created)``: the run folder, made if missing; a folder that cannot be written is a :class:`ConfigError`."""
    experiment = config.experiment
    if experiment.run_dir is None and not experiment.resume:
        try:
            return new_run_dir(experiment.name, runs_root, create=True), True
        except OSError as error:
            raise ConfigError(f"Cannot create a run folder under {runs_root}/ ({error.strerror}); choose a writable runs root or set run_dir.") from error
    path = resolve_run_dir(config, runs_root)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"run_dir {path} is a file, not a folder; point run_dir at a folder (new or a run's own).")
    created = not path.exists()
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        if created:
            shutil.rmtree(path, ignore_errors=True)
        raise ConfigError(f"Cannot write to run_dir {path} ({error.strerror}); choose a folder you can write to.") from error
    return path, created


def _build(config: RunConfig, check_env: bool) -> tuple[Any, Any, Any]:
    """``(env, env_params, trainer)``; a bad env or agent setting, or a user env that fails its checks, is a :class:`ConfigError`."""
    entry = agent_entry(config.agent_name)
    try:
        env, env_params = entry.make_env(config.env.name, **dict(config.env.kwargs))
    except (TypeError, ValueError) as error:
        raise ConfigError(f"Cannot build env {config.env.name!r}: {error}") from error
    if check_env:
        problems = preflight_message(config.env)
        if problems:
            raise ConfigError(problems)
    try:
        trainer = entry.make_trainer(config.agent, env, env_params)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"Cannot build agent {config.agent_name!r} for env {config.env.name!r}: {error}") from error
    return env, env_params, trainer


def run(
    config: RunConfig,
    *,
    runs_root: str | Path = "runs",
    on_chunk: Callable[[int, dict[str, np.ndarray]], None] | None = None,
    check_env: bool = True,
) -> RunResult:
    """Train ``config.experiment.seeds`` seeds of ``config.agent`` on ``config.env``; fill the run folder.

    One process at a time writes a run folder (a second is refused, see
    :class:`~mnemax.experiment.run_folder.RunLock`). ``resume`` continues from
    the latest checkpoint; in a folder without one it starts from update 0, and
    on a finished run it changes nothing. A run that fails before its first
    update leaves no folder behind (or, in a folder that existed, none of its files).

    Args:
      config: the typed run config (see :mod:`mnemax.experiment.config`).
      runs_root: parent of new run folders when ``run_dir`` is unset.
      on_chunk: called after each chunk with the update count and that chunk's
        metrics (``[n, S]`` per column), e.g. for a custom logger or to stop early.
      check_env: run the env checker's cheap part on a user env before compiling
        (see :mod:`mnemax.experiment.env_preflight`).

    Raises:
      ConfigError: a config, run-folder or env problem, found before anything compiles.
      DivergenceError: a metric became NaN/inf; metrics.csv and summary.json keep everything up to it.
      RunInterrupted: Ctrl-C; the state after the last recorded update is checkpointed.
      RunFailed: any other error; its traceback is in ``log_path``, the error itself is ``__cause__``.
    """
    wall_start = time.perf_counter()
    check_loggers_available(config.experiment.loggers)
    run_dir, created = open_run_dir(config, runs_root)
    lock = RunLock(run_dir)
    holder = lock.acquire()
    if holder is not None:
        if created:
            shutil.rmtree(run_dir, ignore_errors=True)
        who = f" (pid {holder})" if holder else ""
        raise ConfigError(
            f"run_dir {run_dir} is in use by another run{who}; wait for it to end, or choose another run_dir."
        )
    try:
        return _run_locked(config, run_dir, created, wall_start, on_chunk, check_env)
    finally:
        lock.release()


def saved_states(config: RunConfig, run_dir: str | Path) -> tuple[int, Any]:
    """``(update, states [S, ...])`` of the newest checkpoint in ``run_dir``, a run of ``config``.

    For analysing a run after it ended (evaluation on other envs, plots):
    the states are restored into the shapes ``config``'s trainer builds, and a
    checkpoint written under another config is refused with the differing keys.
    """
    run_dir = Path(run_dir)
    _, _, trainer = _build(config, check_env=False)
    like = jax.jit(jax.vmap(trainer.init))(seed_keys(config.experiment.seed, config.experiment.seeds))
    config_dict = {**run_config_to_dict(config), "run_dir": str(run_dir), "resume": False}
    store = CheckpointStore(run_dir / "checkpoint", config_hash(config), config_dict)
    try:
        if store.latest_update() is None:
            raise ConfigError(f"{run_dir} holds no checkpoint; train it first (or resume it) with the same config.")
        update, states, _ = store.restore_latest(like)
    finally:
        store.close()
    return update, states


def _starting_point(config: RunConfig, run_dir: Path, store: CheckpointStore) -> tuple[int | None, dict | None]:
    """``(checkpoint update or None, summary of a finished run or None)``, refusing what cannot be continued."""
    experiment = config.experiment
    if not experiment.resume:
        if holds_run(run_dir):
            raise ConfigError(
                f"run_dir {run_dir} already holds a run; set resume=true (--resume) to continue it or choose another run_dir."
            )
        return None, None
    stored = read_stored_config(run_dir)
    changed = [] if stored is None else stored_config_changes(stored, store.config_dict)
    if changed:  # a finished run has no checkpoint to check when only its small files were kept
        raise ConfigError(
            f"The run in {run_dir} was written under another config (changed: {', '.join(changed[:6])}); "
            "resume with the run's own config (its config.yaml) or choose another run_dir."
        )
    latest = store.latest_update()
    if latest is not None:
        store.check_latest()
    summary = read_summary(run_dir)
    if summary is not None and summary.get("status") == "finished":
        return latest, summary
    return latest, None


def _run_locked(
    config: RunConfig,
    run_dir: Path,
    created: bool,
    wall_start: float,
    on_chunk: Callable[[int, dict[str, np.ndarray]], None] | None,
    check_env: bool,
) -> RunResult:
    """:func:`run` once the folder is locked."""
    experiment = config.experiment
    config_dict = {**run_config_to_dict(config), "run_dir": str(run_dir), "resume": False}
    store = CheckpointStore(run_dir / "checkpoint", config_hash(config), config_dict, keep=experiment.keep_checkpoints)
    latest, finished = _starting_point(config, run_dir, store)
    if finished is not None:
        store.close()
        return RunResult(run_dir=run_dir, summary=finished, states=None, already_finished=True)
    fresh = latest is None
    title = f"{config.agent_name}/{config.backbone.name if config.backbone else 'none'} on {config.env.name}"
    progress = RunProgress(title, total_steps=experiment.total_steps, enabled=experiment.progress)
    recorded = False  # becomes true once the first chunk of this process is in metrics.csv
    update, start = 0, 0
    env_spec = config.env
    try:
        if experiment.resume and fresh:
            progress.status(f"{run_dir} holds no checkpoint yet, so the run starts from update 0.")
        _, _, trainer = _build(config, check_env)
        num_updates, num_seeds = int(trainer.num_updates), experiment.seeds
        length = chunk_length(num_updates, experiment.log_every)
        if fresh:
            _write_yaml(run_dir / "config.yaml", config_dict)

        keys = seed_keys(experiment.seed, num_seeds)
        states = jax.jit(jax.vmap(trainer.init))(keys)
        if not fresh:
            start, states, _ = store.restore_latest(states)
        update = start

        metric_shapes = jax.eval_shape(jax.vmap(trainer.update), states)[1]
        if "env_steps" not in metric_shapes:
            raise TypeError(f"Agent {config.agent_name!r} reports no 'env_steps' metric; every trainer's update must.")
        table = MetricsTable(run_dir / "metrics.csv", list(metric_shapes), num_seeds)
        try:
            table.start(keep_updates=start)
        except (OSError, ValueError) as error:
            raise ConfigError(str(error)) from error

        progress.status(f"{title}: compiling {length} update(s) x {num_seeds} seed(s) per chunk ...")
        compile_start = time.perf_counter()
        chunk = jax.jit(make_chunk(trainer.update, metric_shapes, length)).lower(states, np.int32(length)).compile()
        compile_seconds = time.perf_counter() - compile_start
        loggers = make_loggers(experiment.loggers, run_dir, config_dict)
    except BaseException as error:
        store.close()
        if fresh:
            discard_unstarted_run(run_dir, created)
        replacement = _stopped_before_training(error, run_dir if not (fresh and created) else None)
        if replacement is error:
            raise
        raise replacement from (None if isinstance(replacement, KeyboardInterrupt) else error)

    summary_base = {
        "name": experiment.name,
        "agent": config.agent_name,
        "env": config.env.name,
        "backbone": config.backbone.name if config.backbone else "none",
        "seeds": num_seeds,
        "seed": experiment.seed,
        "num_updates": num_updates,
        "updates_per_chunk": length,
        "resumed_from_update": start,
        "compile_seconds": compile_seconds,
        "jax_version": jax.__version__,
        "device": str(jax.devices()[0].platform),
    }
    run_seconds, steps_timed = 0.0, 0.0
    previous_steps = table.column("env_steps")[-1] if start else np.zeros(num_seeds, np.float32)
    status, message = "finished", None

    def finish() -> dict[str, Any]:
        returns, env_steps = table.column("episode_return"), table.column("env_steps")
        mean, std = final_return(returns)
        summary = {
            **summary_base,
            "status": status,
            "updates_done": table.num_updates,
            "env_steps": float(env_steps[-1].mean()) if env_steps.size else 0.0,
            "final_return_mean": mean,
            "final_return_std": std,
            "steps_per_second": steps_timed / run_seconds if run_seconds > 0 else math.nan,
            "wall_seconds": time.perf_counter() - wall_start,
        }
        if message:
            summary["message"] = message
        write_json(run_dir / "summary.json", summary)
        if env_steps.size:
            save_curves(run_dir / "curves.png", env_steps, returns, f"{title} ({num_seeds} seed(s))")
        return summary

    interrupt = DeferredInterrupt()
    try:
        with progress, interrupt:
            while update < num_updates:
                if interrupt.requested:
                    raise KeyboardInterrupt
                stop = num_updates
                if experiment.checkpoint_every:
                    stop = min(stop, (update // experiment.checkpoint_every + 1) * experiment.checkpoint_every)
                n = min(length, stop - update)
                tic = time.perf_counter()
                # The chunk's output is held apart until its metrics are recorded, so `states` always
                # belongs to `update`, whenever an interrupt lands.
                chunk_states, metrics = chunk(states, np.int32(n))
                metrics = jax.device_get(metrics)
                seconds = time.perf_counter() - tic
                chunk_steps = float(np.sum(metrics["env_steps"][n - 1] - previous_steps))
                run_seconds += seconds
                steps_timed += chunk_steps
                sps = chunk_steps / seconds if seconds > 0 else math.nan
                block = metrics_block(metrics, n, update, sps, run_seconds)

                bad = first_non_finite(block, table.metrics)
                if bad is not None:
                    row, seed, name, value = bad
                    table.append({k: v[: row + 1] for k, v in block.items()})
                    status = "diverged"
                    message = divergence_message(update + row + 1, seed, int(block["env_steps"][row, seed]), name, value,
                                                 run_dir, nan_source(env_spec))
                    raise DivergenceError(message)
                table.append(block)
                recorded = True
                states, update, previous_steps = chunk_states, update + n, metrics["env_steps"][n - 1]
                _log(loggers, block)
                with np.errstate(all="ignore"):
                    recent = float(np.nanmean(block["episode_return"])) if np.isfinite(block["episode_return"]).any() else math.nan
                progress.update(float(block["env_steps"][-1].mean()), sps, recent, done=update == num_updates)
                saved = update == num_updates or (
                    experiment.checkpoint_every and update % experiment.checkpoint_every == 0
                )
                if saved:
                    store.save(update, states, {"env_steps": float(block["env_steps"][-1].mean())})
                if on_chunk is not None:
                    on_chunk(update, block)
            if interrupt.requested:
                raise KeyboardInterrupt
    except KeyboardInterrupt as error:
        if not recorded and fresh:
            _close(loggers, store)
            discard_unstarted_run(run_dir, created)
            raise _stopped_before_training(error, None) from None
        status = "interrupted"
        if update > start and store.latest_update() != update:
            store.save(update, states)
        message = f"Interrupted after update {update}; continue with: python scripts/train.py --resume run_dir={run_dir}"
        finish()
        _close(loggers, store)
        raise RunInterrupted(message) from None
    except DivergenceError:
        finish()
        _close(loggers, store)
        raise
    except Exception as error:
        status, message = "failed", f"Stopped by an error after update {update}."
        finish()
        _close(loggers, store)
        log = write_error_log(error, run_dir)
        raise RunFailed(_failure_sentence(error, log), log) from error
    except BaseException:
        status, message = "failed", f"Stopped after update {update}."
        finish()
        _close(loggers, store)
        raise
    summary = finish()
    _close(loggers, store)
    return RunResult(run_dir=run_dir, summary=summary, states=states)


def divergence_message(update: int, seed: int, env_steps: int, name: str, value: float, run_dir: Path, source: str | None) -> str:
    """The sentence a diverged run stops with: where, which quantity, and the env's part when it returned a NaN."""
    head = f"Update {update} (seed {seed}, {env_steps} env steps) produced a non-finite {name} ({value})"
    if source is not None:
        return (
            f"{head} because the env returns a non-finite {source} (a random rollout of it shows NaN {source}s); "
            f"the run stopped, and {run_dir}/metrics.csv keeps every update up to it: fix the env's {source}."
        )
    return (
        f"{head}; the run stopped, and {run_dir}/metrics.csv keeps every update up to it: lower "
        "agent.learning_rate or check the env's rewards and observations."
    )


def _failure_sentence(error: BaseException, log: Path) -> str:
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"The run stopped on an unexpected {type(error).__name__}{': ' + first[:300] if first else ''}; the traceback is in {log}."


def _stopped_before_training(error: BaseException, run_dir: Path | None) -> BaseException:
    """The error a run that never trained raises: config problems as they are, Ctrl-C as :class:`RunInterrupted`, the rest as :class:`RunFailed`."""
    if isinstance(error, (ConfigError, RunInterrupted, RunFailed)):
        return error
    if isinstance(error, KeyboardInterrupt):
        return RunInterrupted("Interrupted before the first update; nothing was kept, so the same command starts the run again.")
    if not isinstance(error, Exception):
        return error
    log = write_error_log(error, run_dir)
    return RunFailed(_failure_sentence(error, log), log)


def _log(loggers: list, block: dict[str, np.ndarray]) -> None:
    """Each logger gets, per update, the mean over seeds of every metric at step = env steps per seed."""
    if not loggers:
        return
    means = {k: seed_mean_and_std(np.asarray(v, np.float64))[0] for k, v in block.items() if k not in ("update", "seed")}
    for i in range(block["update"].shape[0]):
        values = {k: float(v[i]) for k, v in means.items()}
        for logger in loggers:
            logger.log(int(values["env_steps"]), values)


def _close(loggers: list, store: CheckpointStore) -> None:
    for logger in loggers:
        logger.close()
    store.close()


def _write_yaml(path: Path, config: dict[str, Any]) -> None:
    from omegaconf import OmegaConf

    path.write_text(OmegaConf.to_yaml(OmegaConf.create(config)))
