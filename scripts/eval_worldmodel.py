"""Memory probe for world-model backbones (S4WM's protocol, Deng et al. 2023, sec. 4), on data.

1. Collect ``--steps`` steps in ``--envs`` copies of a memory env with a fixed
   policy (uniform random actions under a fixed key).
2. Train the world model alone (:func:`mnemax.worldmodels.losses.world_model_loss`)
   for ``--updates`` steps on windows of ``context + horizon`` steps that begin
   at episode starts (so the context holds what the episode asks to recall).
3. On held-out windows (a second collection with another key), also from episode starts, observe
   ``--context`` steps, then imagine ``--horizon`` steps open loop under the
   recorded actions, and report per imagination step:
   * observation error: squared error of the decoded observation (symlog space), summed over dims;
   * reward accuracy: the predicted reward rounded to the nearest reward value
     seen inside episodes in the data equals the true one.
   Steps after an episode boundary inside the horizon are not scored (the
   prior cannot know the next episode).

``python scripts/eval_worldmodel.py --env popgym/RepeatFirstEasy`` writes a
table and a plot (error vs imagination step, one line per backbone) to
``docs/WORLDMODELS.md`` and ``docs/worldmodels.png``; ``--quick`` runs tiny
sizes and writes nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mnemax.experiment.runtime import configure_jax, machine_description

configure_jax()  # sets an XLA flag, so it runs before gymnax (imported below) starts JAX's backend


import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from mnemax.agents.dreamer_env import DelayedReset, make_dreamer_env  # noqa: E402
from mnemax.backbones import names  # noqa: E402
from mnemax.experiment.composition import backbone_size  # noqa: E402
from mnemax.experiment.markdown import replace_section  # noqa: E402
from mnemax.worldmodels.batch import SequenceBatch  # noqa: E402
from mnemax.worldmodels.distributions import symlog  # noqa: E402
from mnemax.worldmodels.registry import make_world_model  # noqa: E402
from mnemax.worldmodels.sequence_model import WorldModelConfig  # noqa: E402
from mnemax.worldmodels.training import FitResult, fit_world_model, imagine_after_context  # noqa: E402

DOCS = Path(__file__).resolve().parents[1] / "docs"


def collect(env_name: str, num_envs: int, steps: int, key: jax.Array) -> tuple[SequenceBatch, int]:
    """``steps`` x ``num_envs`` steps under uniform random actions: a :class:`SequenceBatch` ``[steps, num_envs]`` and the action count."""
    env, params = make_dreamer_env(env_name)
    space = env.action_space(params)
    if not hasattr(space, "n"):
        raise ValueError(f"The memory probe uses discrete-action envs; {env_name} has a {type(space).__name__} action space.")
    num_actions = int(space.n)
    wrapped = DelayedReset(env)
    reset_key, run_key = jax.random.split(key)
    first, state = jax.vmap(wrapped.reset, in_axes=(0, None))(jax.random.split(reset_key, num_envs), params)

    def step(carry, key):
        current, state, prev_action = carry
        action_key, env_key = jax.random.split(key)
        action = jax.random.randint(action_key, (num_envs,), 0, num_actions)
        following, state = jax.vmap(wrapped.step, in_axes=(0, 0, 0, None))(jax.random.split(env_key, num_envs), state, action, params)
        prev = jnp.where(current.first[:, None], 0.0, prev_action)
        item = (current.obs, prev, current.reward, 1.0 - current.terminal.astype(jnp.float32), current.first)
        return (following, state, jax.nn.one_hot(action, num_actions)), item

    init = (first, state, jnp.zeros((num_envs, num_actions)))
    _, (obs, actions, rewards, continues, resets) = jax.jit(lambda k: jax.lax.scan(step, init, jax.random.split(k, steps)))(run_key)
    return SequenceBatch(obs, actions, rewards, continues, resets), num_actions


def episode_starts(data: SequenceBatch, length: int) -> tuple[np.ndarray, np.ndarray]:
    """``(times, columns)`` of every episode start with ``length`` recorded steps after it (windows begin there)."""
    times, columns = np.nonzero(np.asarray(data.resets)[: data.resets.shape[0] - length + 1])
    if times.size == 0:
        raise ValueError(f"No episode starts with {length} steps after them; collect more --steps or shorten the window.")
    return times.astype(np.int32), columns.astype(np.int32)


def windows(data: SequenceBatch, starts: jax.Array, columns: jax.Array, length: int) -> SequenceBatch:
    """Windows ``[length, N]`` of ``data`` beginning at time ``starts [N]`` in env ``columns [N]``; first step a reset."""
    index = starts[None, :] + jnp.arange(length)[:, None]
    batch = jax.tree.map(lambda x: x[index, columns[None, :]], data)
    return batch._replace(resets=batch.resets.at[0].set(True))


def train_model(model, data: SequenceBatch, updates: int, batch_size: int, length: int, key: jax.Array, lr: float) -> FitResult:
    """Train the world model alone on windows of ``length`` steps that begin at episode starts."""
    start_times, start_columns = episode_starts(data, length)

    def sample(dataset, key: jax.Array) -> SequenceBatch:
        data, times, columns = dataset
        pick = jax.random.randint(key, (batch_size,), 0, times.shape[0])
        return windows(data, times[pick], columns[pick], length)

    return fit_world_model(model, (data, jnp.asarray(start_times), jnp.asarray(start_columns)), sample, updates, lr, key)


def probe(model, params, data: SequenceBatch, context: int, horizon: int, windows_count: int, key: jax.Array):
    """Per-imagination-step observation error and reward accuracy ``[horizon]`` on ``windows_count`` held-out windows."""
    pick_key, imagine_key = jax.random.split(key)
    start_times, start_columns = episode_starts(data, context + horizon)
    pick = jax.random.randint(pick_key, (windows_count,), 0, start_times.shape[0])
    batch = windows(data, jnp.asarray(start_times)[pick], jnp.asarray(start_columns)[pick], context + horizon)
    # Rewards that arrive inside episodes (first steps carry none), e.g. {-1/51, +1/51} in RepeatFirst.
    reward_values = jnp.asarray(np.unique(np.round(np.asarray(data.rewards)[~np.asarray(data.resets)], 6)))

    @jax.jit
    def evaluate(params, batch):
        out = imagine_after_context(model, params, batch, context, imagine_key)
        target = batch.obs[context:]
        error = jnp.sum(jnp.square(out.observation - symlog(target)), axis=-1)  # [H, N]
        predicted = out.reward
        nearest = reward_values[jnp.argmin(jnp.abs(predicted[..., None] - reward_values), axis=-1)]
        correct = (jnp.abs(nearest - batch.rewards[context:]) < 1e-5).astype(jnp.float32)
        valid = jnp.cumprod(1.0 - batch.resets[context:].astype(jnp.float32), axis=0)
        count = jnp.maximum(jnp.sum(valid, axis=1), 1.0)
        return jnp.sum(error * valid, 1) / count, jnp.sum(correct * valid, 1) / count, jnp.sum(valid, 1)

    return jax.device_get(evaluate(params, batch))


def model_config(backbone: str, features: int, quick: bool) -> WorldModelConfig:
    size = 16 if quick else 8
    return WorldModelConfig(
        backbone=backbone_size(backbone, "probe_quick" if quick else "probe", features),
        latent_groups=4 if quick else size,
        latent_classes=4 if quick else size,
        hidden=features,
        layers=1 if quick else 2,
    )


def run_probe(args: argparse.Namespace) -> dict[str, Any]:
    """Collect, train and probe every backbone; returns per-backbone curves and summaries."""
    key = jax.random.PRNGKey(args.seed)
    train_key, test_key, key = jax.random.split(key, 3)
    data, num_actions = collect(args.env, args.envs, args.steps, train_key)
    held_out, _ = collect(args.env, args.envs, args.steps, test_key)
    results = {}
    for backbone in args.backbones:
        config = model_config(backbone, args.features, args.quick)
        model = make_world_model(config, data.obs.shape[2:], num_actions)
        model_key, probe_key = jax.random.split(jax.random.fold_in(key, names().index(backbone)))
        fit = train_model(model, data, args.updates, args.batch, args.context + args.horizon, model_key, args.lr)
        error, accuracy, counted = probe(model, fit.params, held_out, args.context, args.horizon, args.windows, probe_key)
        results[backbone] = {
            "error": np.asarray(error),
            "accuracy": np.asarray(accuracy),
            "counted": np.asarray(counted),
            "final_loss": float(np.mean(fit.losses[-20:])),
            "seconds": fit.seconds,
        }
        print(
            f"{backbone:12s} loss {results[backbone]['final_loss']:.3f}  obs error {error.mean():.3f}  "
            f"reward acc {accuracy.mean():.3f}  ({fit.seconds:.0f} s compiled)",
            flush=True,
        )
    return results


def write_docs(args: argparse.Namespace, results: dict[str, Any]) -> None:
    """Table into docs/WORLDMODELS.md (between probe markers) and the plot docs/worldmodels.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    steps = np.arange(1, args.horizon + 1)
    for backbone, r in results.items():
        axes[0].plot(steps, r["error"], label=backbone)
        axes[1].plot(steps, r["accuracy"], label=backbone)
    axes[0].set(xlabel="imagination step", ylabel="observation error (symlog MSE)", title=f"{args.env}: open-loop error")
    axes[1].set(xlabel="imagination step", ylabel="reward accuracy", title=f"context {args.context} steps", ylim=(0, 1.05))
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(DOCS / "worldmodels.png", dpi=120)
    plt.close(fig)

    quarter = max(1, args.horizon // 4)
    lines = [
        f"Machine: {machine_description()}. Command: `python scripts/eval_worldmodel.py --env {args.env} "
        f"--steps {args.steps} --envs {args.envs} --updates {args.updates} --context {args.context} --horizon {args.horizon}`.",
        "",
        f"| backbone | final train loss | obs error, steps 1-{quarter} | obs error, last {quarter} steps "
        f"| reward acc, steps 1-{quarter} | reward acc, last {quarter} steps | train time (s, compiled run) |",
        "|---|---|---|---|---|---|---|",
    ]
    for backbone, r in results.items():
        lines.append(
            f"| {backbone} | {r['final_loss']:.3f} | {r['error'][:quarter].mean():.3f} | {r['error'][-quarter:].mean():.3f} "
            f"| {r['accuracy'][:quarter].mean():.3f} | {r['accuracy'][-quarter:].mean():.3f} | {r['seconds']:.0f} |"
        )
    replace_section(DOCS / "WORLDMODELS.md", "probe", "\n".join(lines))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="popgym/RepeatFirstEasy")
    parser.add_argument("--backbones", nargs="+", default=["gru", "lstm", "transformer", "s5", "s4d", "lru"])
    parser.add_argument("--steps", type=int, default=2048, help="steps per env collected (train and held-out each)")
    parser.add_argument("--envs", type=int, default=16)
    parser.add_argument("--updates", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--context", type=int, default=16)
    parser.add_argument("--horizon", type=int, default=32)
    parser.add_argument("--windows", type=int, default=256, help="held-out windows scored")
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny sizes; prints the table, writes nothing")
    args = parser.parse_args(argv)
    unknown = [b for b in args.backbones if b not in names()]
    if unknown:
        parser.error(f"unknown backbone(s) {', '.join(unknown)}; choose from {', '.join(names())}")
    if args.steps < args.context + args.horizon:
        parser.error(f"--steps {args.steps} must be at least context + horizon = {args.context + args.horizon}")
    if args.quick:
        args.steps, args.envs, args.updates, args.windows, args.features = min(args.steps, 128), 4, 20, 16, 16
        args.context, args.horizon, args.batch = 8, 8, 4
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    results = run_probe(args)
    if not args.quick:
        write_docs(args, results)
    return results


if __name__ == "__main__":
    main()
