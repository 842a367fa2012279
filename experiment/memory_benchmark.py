"""World-model backbones on the memory-task suite (S4WM's comparison, Deng et al. 2023, sec. 4-5).

For each task (``memory/<Name>``), backbone and seed:

1. make (or load from ``data_dir``) a dataset of scripted episodes
   (:mod:`mnemax.envs.memory.dataset`); the last ``eval_episodes`` columns are
   held out;
2. train the world model alone (:func:`~mnemax.worldmodels.losses.world_model_loss`)
   on whole training episodes ``[T, B]``, so the context is always in view;
3. on the held-out episodes, observe the context (``t < C``) and imagine the
   query horizon (``t >= C``) open loop under the recorded actions; score the
   decoded frames per imagination step (:func:`~mnemax.envs.memory.metrics.imagination_error`),
   next to the perfect-memory (:func:`~mnemax.envs.memory.metrics.oracle_frames`)
   and no-memory (:func:`~mnemax.envs.memory.metrics.mean_frames`) baselines,
   and the sign of the predicted rewards (:func:`~mnemax.envs.memory.metrics.reward_sign_accuracy`);
4. report training throughput (frames per second of compiled update steps,
   compilation excluded).

:func:`compare_world_models` runs the grid; :func:`write_report` writes the
markdown table and the error-vs-step figure. ``scripts/compare_backbones.py
--worldmodel`` is the command line.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mnemax.backbones import BackboneSpec
from mnemax.envs import make as make_env
from mnemax.envs.memory import MEMORY_ENVS
from mnemax.envs.memory import dataset as memory_dataset
from mnemax.envs.memory import metrics
from mnemax.experiment.composition import backbone_size
from mnemax.experiment.markdown import replace_section
from mnemax.worldmodels.batch import SequenceBatch
from mnemax.worldmodels.registry import make_world_model
from mnemax.worldmodels.sequence_model import WorldModelConfig
from mnemax.worldmodels.training import FitResult, fit_world_model, imagine_after_context

PREFIX = "memory/"
PAPER_NAMES = {"gru": "RSSM", "transformer": "TSSM", "s4d": "S4WM"}
"""The paper's name for the world model built on each backbone."""


@dataclasses.dataclass(frozen=True)
class WorldModelBudget:
    """Sizes of one comparison: data, model and training (the same for every task and backbone)."""

    episodes: int = 64
    eval_episodes: int = 16
    updates: int = 300
    batch_size: int = 8
    features: int = 64
    latent: int = 8
    cnn_depth: int = 8
    learning_rate: float = 3e-4

    def validate(self) -> None:
        for name in ("episodes", "eval_episodes", "updates", "batch_size", "features", "latent", "cnn_depth"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}.")
        if self.eval_episodes >= self.episodes:
            raise ValueError(f"eval_episodes={self.eval_episodes} leaves no training episodes out of {self.episodes}; collect more episodes.")
        if self.batch_size > self.episodes - self.eval_episodes:
            raise ValueError(
                f"batch_size={self.batch_size} exceeds the {self.episodes - self.eval_episodes} training episodes; lower it or collect more."
            )


def parse_task_option(text: str) -> tuple[str, str, Any]:
    """``"TwoRooms.episode_length=64"`` -> ``("TwoRooms", "episode_length", 64)``, the value read as a Python literal."""
    target, sep, value = text.partition("=")
    task, dot, name = target.rpartition(".")
    task = task[len(PREFIX) :] if task.startswith(PREFIX) else task
    if not sep or not dot or task not in MEMORY_ENVS or not name.isidentifier():
        raise ValueError(f"Task options read Task.name=value with Task one of {', '.join(MEMORY_ENVS)} (e.g. TwoRooms.episode_length=64), got {text!r}.")
    try:
        return task, name, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return task, name, value


def task_name(env_name: str) -> str:
    """``"memory/TwoRooms"`` or ``"TwoRooms"`` -> ``"TwoRooms"``; anything else is refused."""
    task = env_name[len(PREFIX) :] if env_name.startswith(PREFIX) else env_name
    if task not in MEMORY_ENVS:
        raise ValueError(f"{env_name!r} is not a memory task; the world-model comparison takes {', '.join(PREFIX + n for n in MEMORY_ENVS)}.")
    return task


def load_or_collect(task: str, options: dict[str, Any], episodes: int, seed: int, data_dir: str | os.PathLike | None):
    """The dataset of ``episodes`` scripted episodes of ``memory/<task>`` with ``options``, read from ``data_dir`` when written there before."""
    env_name = PREFIX + task
    env, params = make_env(env_name, **options)
    path = None
    if data_dir is not None:
        tag = hashlib.sha1(json.dumps(options, sort_keys=True).encode()).hexdigest()[:8]
        path = Path(data_dir) / f"{task}-{episodes}-seed{seed}-{tag}.npz"
        if path.exists():
            return memory_dataset.load(path), env, params
    arrays = memory_dataset.collect(env, params, episodes, seed=seed)
    data = memory_dataset.MemoryDataset(arrays, memory_dataset.make_header(env_name, options, env, seed, arrays))
    if path is not None:
        memory_dataset.save(path, data)
    return data, env, params


def sequence_batch(data: memory_dataset.MemoryDataset, num_actions: int) -> SequenceBatch:
    """The dataset as the world model's batch ``[T, N]``: frames stay uint8 (the world model scales them to [0, 1]), one-hot ``a_{t-1}``."""
    a = data.arrays
    return SequenceBatch(
        obs=jnp.asarray(a["obs"]),
        prev_actions=jnp.asarray(memory_dataset.previous_actions(a["action"], a["reset"], num_actions)),
        rewards=jnp.asarray(a["reward"], jnp.float32),
        continues=jnp.ones(a["reward"].shape, jnp.float32),  # scripted episodes end by time limit, never by termination
        resets=jnp.asarray(a["reset"]),
    )


def model_config(backbone: str, budget: WorldModelBudget, episode_length: int) -> WorldModelConfig:
    """A small world model on ``backbone`` at its ``memory_benchmark`` size (``configs/backbone/<name>.yaml``).

    The Transformer's window is the episode, so it attends over the whole of it (TSSM).
    """
    spec = backbone_size(backbone, "memory_benchmark", budget.features)
    if backbone == "transformer":
        spec = BackboneSpec.from_dict(backbone, budget.features, {**dict(spec.options), "window": episode_length})
    return WorldModelConfig(
        backbone=spec,
        latent_groups=budget.latent,
        latent_classes=budget.latent,
        hidden=budget.features,
        layers=1,
        cnn_depth=budget.cnn_depth,
    )


def train_world_model(model, data: SequenceBatch, budget: WorldModelBudget, key: jax.Array) -> FitResult:
    """Train on whole episodes ``data [T, N]``, ``budget.batch_size`` episodes (columns) drawn per update."""
    num_episodes = data.resets.shape[1]

    def sample(data: SequenceBatch, key: jax.Array) -> SequenceBatch:
        columns = jax.random.choice(key, num_episodes, (budget.batch_size,), replace=False)
        return jax.tree.map(lambda x: x[:, columns], data)  # frames stay uint8; the model scales them

    return fit_world_model(model, data, sample, budget.updates, budget.learning_rate, key)


def imagine_query(model, params, data: SequenceBatch, context: int, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Observe ``data[:context]``, imagine the rest open loop: decoded frames ``[T - C, N, H, W, 3]`` and rewards ``[T - C, N]``."""
    out = imagine_after_context(model, params, data, context, key)
    return jnp.clip(out.observation, 0.0, 1.0), out.reward


def baselines(data: memory_dataset.MemoryDataset) -> dict[str, np.ndarray]:
    """Per-step MSE ``[T - C]`` of the perfect-memory and no-memory predictions on ``data``."""
    obs, context = data.arrays["obs"], data.context_length
    oracle, _ = metrics.oracle_frames(obs, data.arrays["position"], context)
    return {
        "oracle": np.asarray(metrics.imagination_error(oracle, obs, context)),
        "mean_frame": np.asarray(metrics.imagination_error(metrics.mean_frames(obs, context), obs, context)),
    }


def split(data: memory_dataset.MemoryDataset, eval_episodes: int) -> tuple[memory_dataset.MemoryDataset, memory_dataset.MemoryDataset]:
    """Training and held-out datasets: the last ``eval_episodes`` columns are held out."""
    cut = data.num_episodes - eval_episodes
    train = memory_dataset.MemoryDataset({f: a[:, :cut] for f, a in data.arrays.items()}, data.header)
    held = memory_dataset.MemoryDataset({f: a[:, cut:] for f, a in data.arrays.items()}, data.header)
    return train, held


def compare_world_models(
    envs: Sequence[str],
    backbones: Sequence[str],
    seeds: int,
    budget: WorldModelBudget,
    task_options: Sequence[tuple[str, str, Any]] = (),
    data_dir: str | os.PathLike | None = None,
    data_seed: int = 0,
    log=print,
) -> list[dict[str, Any]]:
    """One row per (task, backbone): per-seed error curves ``[seeds, T - C]``, baselines, reward accuracy, throughput."""
    budget.validate()
    if seeds < 1:
        raise ValueError(f"seeds must be a positive integer, got {seeds!r}.")
    rows = []
    for env_name in envs:
        task = task_name(env_name)
        options = {name: value for t, name, value in task_options if t == task}
        data, env, params = load_or_collect(task, options, budget.episodes, data_seed, data_dir)
        train, held = split(data, budget.eval_episodes)
        num_actions = int(env.action_space(params).n)
        train_batch, held_batch = sequence_batch(train, num_actions), sequence_batch(held, num_actions)
        reference = baselines(held)
        for backbone in backbones:
            model = make_world_model(model_config(backbone, budget, data.episode_length), data.arrays["obs"].shape[2:], num_actions)
            imagine = jax.jit(lambda p, b, k, model=model: imagine_query(model, p, b, data.context_length, k))
            errors, accuracies, throughputs, losses = [], [], [], []
            for seed in range(seeds):
                train_key, imagine_key = jax.random.split(jax.random.PRNGKey(seed))
                result = train_world_model(model, train_batch, budget, train_key)
                frames, rewards = imagine(result.params, held_batch, imagine_key)
                errors.append(np.asarray(metrics.imagination_error(frames, held.arrays["obs"], data.context_length)))
                accuracies.append(float(metrics.reward_sign_accuracy(rewards, held.arrays["reward"][data.context_length :])))
                throughputs.append(result.frames_per_second)
                losses.append(float(np.mean(result.losses[-max(1, budget.updates // 10) :])))
                log(
                    f"{task} {backbone} seed {seed}: loss {losses[-1]:.2f}, imagination MSE {errors[-1].mean():.4f} "
                    f"(oracle {reference['oracle'].mean():.4f}, mean frame {reference['mean_frame'].mean():.4f}), "
                    f"reward sign acc {accuracies[-1]:.2f}, {throughputs[-1]:,.0f} frames/s"
                )
            rows.append({
                "task": task, "backbone": backbone, "errors": np.stack(errors), "reward_accuracy": np.asarray(accuracies),
                "frames_per_second": np.asarray(throughputs), "final_loss": np.asarray(losses), **reference,
                "episode_length": data.episode_length, "context_length": data.context_length,
            })
    return rows


def _spread(values: np.ndarray, digits: int = 4) -> str:
    values = np.asarray(values, float)
    if np.all(np.isnan(values)):
        return "-"
    return f"{np.nanmean(values):.{digits}f} ± {np.nanstd(values):.{digits}f}"


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """One line per (task, backbone): imagination MSE (first and last quarter of the query horizon, all of it), baselines, reward accuracy, throughput."""
    lines = [
        "| task | backbone | MSE, first quarter | MSE, last quarter | MSE, all query steps | oracle MSE | mean-frame MSE "
        "| reward sign acc | train frames/s | final loss |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        quarter = max(1, r["errors"].shape[1] // 4)
        name = r["backbone"] + (f" ({PAPER_NAMES[r['backbone']]})" if r["backbone"] in PAPER_NAMES else "")
        accuracy = _spread(r["reward_accuracy"], 2) if r["task"] == "DistractingMemory" else "-"
        lines.append(
            f"| {r['task']} | {name} | {_spread(r['errors'][:, :quarter].mean(1))} | {_spread(r['errors'][:, -quarter:].mean(1))} "
            f"| {_spread(r['errors'].mean(1))} | {r['oracle'].mean():.4f} | {r['mean_frame'].mean():.4f} | {accuracy} "
            f"| {np.mean(r['frames_per_second']):,.0f} | {_spread(r['final_loss'], 1)} |"
        )
    return "\n".join(lines)


def plot(rows: Sequence[dict[str, Any]], figure: str | os.PathLike) -> None:
    """Error vs imagination step, one panel per task, one line per backbone (mean over seeds, band = min..max), baselines dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(r["task"] for r in rows))
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        task_rows = [r for r in rows if r["task"] == task]
        steps = np.arange(1, task_rows[0]["errors"].shape[1] + 1)
        for r in task_rows:
            line, = ax.plot(steps, r["errors"].mean(0), label=r["backbone"])
            ax.fill_between(steps, r["errors"].min(0), r["errors"].max(0), color=line.get_color(), alpha=0.2)
        ax.plot(steps, task_rows[0]["oracle"], "k--", lw=1, label="oracle (perfect memory)")
        ax.plot(steps, task_rows[0]["mean_frame"], "k:", lw=1, label="mean frame (no memory)")
        ax.set(xlabel="imagination step", ylabel="frame MSE", title=f"memory/{task}: context {task_rows[0]['context_length']}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    Path(figure).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(figure, dpi=110)
    plt.close(fig)


def write_report(rows: Sequence[dict[str, Any]], doc: str | os.PathLike, figure: str | os.PathLike, command: str,
                 seeds: int, budget: WorldModelBudget, machine: str) -> None:
    """``doc``: title, setup, the table and the figure; ``figure``: the PNG."""
    plot(rows, figure)
    doc, figure = Path(doc), Path(figure)
    lengths = ", ".join(f"{r['task']} {r['episode_length']} steps (context {r['context_length']})"
                        for r in {r["task"]: r for r in rows}.values())
    block = (
        f"Command: `{command}`\n\nMachine: {machine}. Episodes: {lengths}; {budget.episodes - budget.eval_episodes} training "
        f"and {budget.eval_episodes} held-out scripted episodes per task; {budget.updates} updates of {budget.batch_size} whole "
        f"episodes; {seeds} seeds (model initialisation and batch order; one dataset). Width {budget.features}, "
        f"{budget.latent}x{budget.latent} latents; each backbone at the `memory_benchmark` size of its "
        "configs/backbone/<name>.yaml.\n\n"
        "Frame MSE is per pixel in [0, 1], on open-loop imagination of the query horizon after the context; "
        "mean ± std over seeds. Oracle copies the latest context frame seen at the same position; mean frame outputs "
        "the mean context frame. Throughput counts compiled training steps only.\n\n"
        f"{markdown_table(rows)}\n\n![imagination error per step]({os.path.relpath(figure, doc.parent)})"
    )
    new_document = "# World-model backbones on the memory tasks\n\n"
    replace_section(doc, "results", block, new_document)  # the reading of the results, outside the markers, survives
