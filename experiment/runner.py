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
import time
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from mnemax.agents.registry import agent_entry
from mnemax.experiment.checkpoints import CheckpointStore
from mnemax.experiment.config import ConfigError, RunConfig, config_hash, run_config_to_dict
from mnemax.experiment.loggers import check_loggers_available, make_loggers
from mnemax.experiment.plots import save_curves, seed_mean_and_std
from mnemax.experiment.progress import RunProgress
from mnemax.experiment.run_folder import (
    MetricsTable,
    final_return,
    latest_run_dir,
    new_run_dir,
    write_json,
)

MAY_BE_NAN = ("episode_return", "episode_length")
"""Metrics that are NaN by design when no episode ended in an update; every other metric must stay finite."""
CHUNKS_PER_RUN = 100
"""With ``log_every: null``, a run is split into about this many chunks."""


class DivergenceError(RuntimeError):
    """A loss or statistic became NaN/inf; the message names the update, seed and quantity."""


@dataclasses.dataclass
class RunResult:
    """What :func:`run` returns: where the run lives, its summary, the final states ``[S, ...]``."""

    run_dir: Path
    summary: dict[str, Any]
    states: Any


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
    """The run folder: ``run_dir`` if set; on resume the newest ``runs/*-<name>``; else a new timestamped one."""
    experiment = config.experiment
    if experiment.run_dir is not None:
        path = Path(experiment.run_dir)
    elif experiment.resume:
        path = latest_run_dir(experiment.name, runs_root)
        if path is None:
            raise ConfigError(
                f"resume=true but no run named {experiment.name!r} with a checkpoint exists under {runs_root}/; "
                "set run_dir to the run folder to resume."
            )
    else:
        return new_run_dir(experiment.name, runs_root)
    holds_run = (path / "metrics.csv").exists() or (path / "checkpoint").is_dir()
    if experiment.resume and not holds_run:
        raise ConfigError(f"resume=true but {path} holds no run to resume; drop resume or fix run_dir.")
    if not experiment.resume and holds_run:
        raise ConfigError(f"run_dir {path} already holds a run; set resume=true to continue it or choose another run_dir.")
    return path


def _build(config: RunConfig) -> tuple[Any, Any, Any]:
    """``(env, env_params, trainer)``; a bad env or agent setting becomes a :class:`ConfigError`."""
    entry = agent_entry(config.agent_name)
    try:
        env, env_params = entry.make_env(config.env.name, **dict(config.env.kwargs))
    except (TypeError, ValueError) as error:
        raise ConfigError(f"Cannot build env {config.env.name!r}: {error}") from error
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
) -> RunResult:
    """Train ``config.experiment.seeds`` seeds of ``config.agent`` on ``config.env``; fill the run folder.

    Args:
      config: the typed run config (see :mod:`mnemax.experiment.config`).
      runs_root: parent of new run folders when ``run_dir`` is unset.
      on_chunk: called after each chunk with the update count and that chunk's
        metrics (``[n, S]`` per column), e.g. for a custom logger or to stop early.

    Raises:
      ConfigError: a config problem, found before anything compiles.
      DivergenceError: a metric became NaN/inf; metrics.csv and summary.json keep everything up to it.
    """
    wall_start = time.perf_counter()
    experiment = config.experiment
    check_loggers_available(experiment.loggers)
    run_dir = resolve_run_dir(config, runs_root)
    config_dict = {**run_config_to_dict(config), "run_dir": str(run_dir), "resume": False}
    store = CheckpointStore(run_dir / "checkpoint", config_hash(config), config_dict, keep=experiment.keep_checkpoints)
    if experiment.resume:
        store.check_latest()
    _, _, trainer = _build(config)
    num_updates, num_seeds = int(trainer.num_updates), experiment.seeds
    length = chunk_length(num_updates, experiment.log_every)

    run_dir.mkdir(parents=True, exist_ok=True)
    _write_yaml(run_dir / "config.yaml", config_dict)

    keys = seed_keys(experiment.seed, num_seeds)
    states = jax.jit(jax.vmap(trainer.init))(keys)
    start = 0
    if experiment.resume:
        start, states, _ = store.restore_latest(states)

    metric_shapes = jax.eval_shape(jax.vmap(trainer.update), states)[1]
    if "env_steps" not in metric_shapes:
        raise TypeError(f"Agent {config.agent_name!r} reports no 'env_steps' metric; every trainer's update must.")
    table = MetricsTable(run_dir / "metrics.csv", list(metric_shapes), num_seeds)
    table.start(keep_updates=start)

    title = f"{config.agent_name}/{config.backbone.name if config.backbone else 'none'} on {config.env.name}"
    progress = RunProgress(title, total_steps=experiment.total_steps, enabled=experiment.progress)
    progress.status(f"{title}: compiling {length} update(s) x {num_seeds} seed(s) per chunk ...")
    compile_start = time.perf_counter()
    chunk = jax.jit(make_chunk(trainer.update, metric_shapes, length)).lower(states, np.int32(length)).compile()
    compile_seconds = time.perf_counter() - compile_start

    loggers = make_loggers(experiment.loggers, run_dir, config_dict)
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
    update = start
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

    try:
        with progress:
            while update < num_updates:
                stop = num_updates
                if experiment.checkpoint_every:
                    stop = min(stop, (update // experiment.checkpoint_every + 1) * experiment.checkpoint_every)
                n = min(length, stop - update)
                tic = time.perf_counter()
                states, metrics = chunk(states, np.int32(n))
                metrics = jax.device_get(metrics)
                seconds = time.perf_counter() - tic
                chunk_steps = float(np.sum(metrics["env_steps"][n - 1] - previous_steps))
                previous_steps = metrics["env_steps"][n - 1]
                run_seconds += seconds
                steps_timed += chunk_steps
                sps = chunk_steps / seconds if seconds > 0 else math.nan
                block = metrics_block(metrics, n, update, sps, run_seconds)

                bad = first_non_finite(block, table.metrics)
                if bad is not None:
                    row, seed, name, value = bad
                    table.append({k: v[: row + 1] for k, v in block.items()})
                    status = "diverged"
                    message = (
                        f"Update {update + row + 1} (seed {seed}, {int(block['env_steps'][row, seed])} env steps) produced "
                        f"a non-finite {name} ({value}); the run stopped, and {run_dir}/metrics.csv keeps every update "
                        "up to it: lower agent.learning_rate or check the env's rewards and observations."
                    )
                    raise DivergenceError(message)
                table.append(block)
                update += n
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
    except KeyboardInterrupt:
        status = "interrupted"
        if update > start and store.latest_update() != update:
            store.save(update, states)
        message = f"Interrupted after update {update}; continue with resume=true run_dir={run_dir}."
        progress.status(message)
        finish()
        _close(loggers, store)
        raise
    except DivergenceError:
        finish()
        _close(loggers, store)
        raise
    except BaseException:
        status, message = "failed", f"Stopped by an error after update {update}."
        finish()
        _close(loggers, store)
        raise
    summary = finish()
    _close(loggers, store)
    return RunResult(run_dir=run_dir, summary=summary, states=states)


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
