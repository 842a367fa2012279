"""Does thinking help the energy-based world model? Prediction error vs thinking steps, in and out of distribution.

Writes the generated block ``ebwm-<env>`` of docs/EBWM.md and its figure::

    python scripts/ebwm.py [--env pendulum|cartpole] [--updates 300] [--seeds 3] [--seed-offset 0]

Datasets (:data:`DATASETS`): gymnax Pendulum-v1 or CartPole-v1 under a
uniformly random policy, episodes of ``LENGTH`` steps from reset. Pendulum:
training gravity ``g`` drawn in ``[8, 12]``, mass 1; out of distribution
``g = 16`` and mass ``m = 1.6``. CartPole: training pole half-length in
``[0.4, 0.6]``, pole mass 0.1; out of distribution length 1.0 and pole mass
0.5. Every test set but the first lies outside the training range. For each seed it trains
the EBWM (System 1, ``--train-steps`` thinking steps) and the same-size
direct-prediction baseline (``head=direct``) on the same batches for the same
number of updates, then measures, on held-out episodes after a context of
``CONTEXT`` steps:

* one-step error (mean squared error of the target vector ``[symlog obs,
  symlog reward, continue]``) and open-loop error over ``HORIZON`` steps, at
  thinking steps 1, 2, 4, 8, 16;
* best-of-K (K = 8 noisy starts): lowest energy vs a random one vs the mean of
  their errors, and Spearman's rank correlation of energy and error over all
  candidates;
* milliseconds per prediction (batch of 256, compiled) and XLA's FLOP count
  of one prediction.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from scipy.stats import spearmanr

import gymnax

from mnemax.experiment.markdown import replace_section
from mnemax.experiment.compare import count_parameters
from mnemax.worldmodels import SequenceBatch, make_world_model
from mnemax.worldmodels.distributions import symlog
from mnemax.worldmodels.ebwm import EBWMConfig, target_vector
from mnemax.worldmodels.training import fit_world_model

LENGTH, CONTEXT, HORIZON = 32, 16, 8
STEPS = (1, 2, 4, 8, 16)
K = 8
DOC = Path(__file__).resolve().parents[1] / "docs" / "EBWM.md"


@dataclasses.dataclass(frozen=True)
class Dataset:
    """One env's random-policy episodes: the physics drawn per episode for training and for each test set.

    ``physics`` maps a test set's name to ``{param: (low, high)}``, each
    episode drawing its value uniformly (low == high: fixed); the first entry is
    the training distribution. ``set_physics(params, draws)`` returns the env
    params with the drawn values (and whatever depends on them).
    """

    env: str
    obs_size: int
    action_size: int
    physics: dict[str, dict[str, tuple[float, float]]]
    set_physics: Callable[[Any, dict[str, jax.Array]], Any]
    random_action: Callable[[jax.Array, Any], tuple[jax.Array, jax.Array]]  # key, params -> (env action, model input)
    plot: str


def _cartpole_physics(params: Any, draws: dict[str, jax.Array]) -> Any:
    params = params.replace(**draws)
    return params.replace(total_mass=params.masscart + params.masspole, polemass_length=params.masspole * params.length)


def _uniform_torque(key: jax.Array, params: Any) -> tuple[jax.Array, jax.Array]:
    action = jax.random.uniform(key, (1,), minval=-1.0, maxval=1.0)
    return action * params.max_torque, action


def _coin_flip(key: jax.Array, params: Any) -> tuple[jax.Array, jax.Array]:
    action = jax.random.randint(key, (), 0, 2)
    return action, jax.nn.one_hot(action, 2)


DATASETS = {
    "pendulum": Dataset(
        "Pendulum-v1", 3, 1,
        {"in distribution": dict(g=(8.0, 12.0), m=(1.0, 1.0)), "gravity g=16": dict(g=(16.0, 16.0), m=(1.0, 1.0)),
         "mass m=1.6": dict(g=(8.0, 12.0), m=(1.6, 1.6))},
        lambda params, draws: params.replace(**draws), _uniform_torque, "ebwm.png",
    ),
    "cartpole": Dataset(
        "CartPole-v1", 4, 2,
        {"in distribution": dict(length=(0.4, 0.6), masspole=(0.1, 0.1)),
         "pole length 1.0": dict(length=(1.0, 1.0), masspole=(0.1, 0.1)),
         "pole mass 0.5": dict(length=(0.4, 0.6), masspole=(0.5, 0.5))},
        _cartpole_physics, _coin_flip, "ebwm-cartpole.png",
    ),
}


def random_episodes(dataset: Dataset, key: jax.Array, episodes: int, physics: dict[str, tuple[float, float]]) -> SequenceBatch:
    """``episodes`` random-policy episodes of ``LENGTH`` steps from reset, ``[LENGTH, episodes]``, physics drawn per episode.

    The env's own dynamics run for all ``LENGTH`` steps (``step_env``, no
    auto-reset): a CartPole that falls keeps falling, its reward is 0 and its
    continue flag 0 from then on, which the model must predict too.
    """
    env, default = gymnax.make(dataset.env)
    draw_key, reset_key, act_key = jax.random.split(key, 3)
    draw_keys = jax.random.split(draw_key, len(physics))
    draws = {name: jax.random.uniform(k, (episodes,), minval=low, maxval=high) for k, (name, (low, high)) in zip(draw_keys, physics.items())}

    def episode(draw, reset_key, act_key):
        params = dataset.set_physics(default, draw)
        obs, state = env.reset_env(reset_key, params)

        def step(carry, key):
            obs, state, prev, reward, flag = carry
            env_action, action = dataset.random_action(key, params)
            next_obs, state, next_reward, done, _ = env.step_env(key, state, env_action, params)
            return (next_obs, state, action, next_reward, 1.0 - done.astype(jnp.float32)), (obs, prev, reward, flag)

        first = (obs, state, jnp.zeros((dataset.action_size,)), jnp.zeros(()), jnp.ones(()))
        _, data = jax.lax.scan(step, first, jax.random.split(act_key, LENGTH))
        return data

    obs, prev, rewards, continues = jax.vmap(episode)(draws, jax.random.split(reset_key, episodes), jax.random.split(act_key, episodes))
    time_major = lambda x: jnp.swapaxes(x, 0, 1)  # noqa: E731
    resets = jnp.zeros((LENGTH, episodes), bool).at[0].set(True)
    return SequenceBatch(time_major(obs), time_major(prev), time_major(rewards), time_major(continues), resets)


def sample_episodes(data: SequenceBatch, key: jax.Array, batch_size: int = 16) -> SequenceBatch:
    """``batch_size`` whole episodes of ``data``, drawn with replacement."""
    index = jax.random.randint(key, (batch_size,), 0, data.resets.shape[1])
    return jax.tree.map(lambda x: x[:, index], data)


@partial(jax.jit, static_argnums=0)
def step_errors(model, params, data: SequenceBatch, key: jax.Array, steps: jax.Array) -> tuple[jax.Array, jax.Array]:
    """One-step and open-loop errors on ``data`` after ``CONTEXT`` steps, ``steps`` thinking steps (traced: one compile)."""
    context = jax.tree.map(lambda x: x[:CONTEXT], data)
    state = model.observe(params, model.initial_state(data.resets.shape[1]), context, key)
    truth = target_vector(data.obs, data.rewards, data.continues)  # [T, B, Y]
    thought = model.think_next(params, state, data.prev_actions[CONTEXT], key, steps, candidates=1)
    one_step = jnp.mean(jnp.square(thought.target - truth[CONTEXT]))
    rollout = model.imagine_open_loop(params, state, data.prev_actions[CONTEXT : CONTEXT + HORIZON], key, steps)
    reward, flag = symlog(rollout.reward)[..., None], rollout.continues[..., None]
    predicted = jnp.concatenate([rollout.observation, reward, flag], -1)  # observation is already symlog
    return one_step, jnp.mean(jnp.square(predicted - truth[CONTEXT : CONTEXT + HORIZON]))


@partial(jax.jit, static_argnums=0)
def candidate_errors(model, params, data: SequenceBatch, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Best-of-K on ``data``: every candidate's one-step error and final energy, ``[K, B]`` each."""
    context = jax.tree.map(lambda x: x[:CONTEXT], data)
    state = model.observe(params, model.initial_state(data.resets.shape[1]), context, key)
    truth = target_vector(data.obs, data.rewards, data.continues)[CONTEXT]
    thought = model.think_next(params, state, data.prev_actions[CONTEXT], key, candidates=K)
    return jnp.mean(jnp.square(thought.refined - truth[None]), axis=-1), thought.energies


def evaluate(model, params, data: SequenceBatch, key: jax.Array) -> dict[str, np.ndarray]:
    """Errors vs thinking steps (one-step and open loop), best-of-K numbers, on ``data``."""
    measured = [step_errors(model, params, data, key, jnp.int32(n)) for n in STEPS]
    errors, energies = candidate_errors(model, params, data, key)
    pick = jax.random.randint(jax.random.fold_in(key, 1), (errors.shape[1],), 0, K)
    return {
        "one_step": np.array([float(m[0]) for m in measured]),
        "open_loop": np.array([float(m[1]) for m in measured]),
        "lowest_energy": float(jnp.mean(jnp.take_along_axis(errors, jnp.argmin(energies, 0)[None], 0))),
        "random_of_k": float(jnp.mean(jnp.take_along_axis(errors, pick[None], 0))),
        "mean_of_k": float(jnp.mean(errors)),
        "spearman": float(spearmanr(np.asarray(energies).ravel(), np.asarray(errors).ravel())[0]),
    }


def prediction_cost(model, params, data: SequenceBatch, steps: int) -> tuple[float, float]:
    """(milliseconds, XLA FLOPs) per prediction of the next target, ``steps`` thinking steps, batch of all of ``data``."""
    state = model.observe(params, model.initial_state(data.resets.shape[1]), jax.tree.map(lambda x: x[:CONTEXT], data), jax.random.key(0))
    predict = jax.jit(lambda s, a: model.think_next(params, s, a, jax.random.key(0), steps, candidates=1).target)
    compiled = predict.lower(state, data.prev_actions[CONTEXT]).compile()
    jax.block_until_ready(compiled(state, data.prev_actions[CONTEXT]))
    tic = time.perf_counter()
    for _ in range(5):
        jax.block_until_ready(compiled(state, data.prev_actions[CONTEXT]))
    batch = data.resets.shape[1]
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return (time.perf_counter() - tic) / 5 / batch * 1e3, float(cost.get("flops", float("nan"))) / batch


def mean_std(values) -> str:
    values = np.asarray(values, float)
    return f"{values.mean():.4f} ± {values.std():.4f}"


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--seed-offset", type=int, default=0)
    parser.add_argument("--train-steps", type=int, default=4, help="System 1 thinking steps in training")
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--env", choices=sorted(DATASETS), default="pendulum", help="the dataset (section ebwm-<env> of docs/EBWM.md)")
    args = parser.parse_args(argv)
    dataset = DATASETS[args.env]
    jax.config.update("jax_compilation_cache_dir", str(Path.home() / ".cache" / "mnemax-jax"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    size = dict(hidden=args.hidden, layers=2, heads=2, context=8)
    models = {
        "EBWM": make_world_model(EBWMConfig(**size, thinking_steps=args.train_steps, candidate_noise=0.3), (dataset.obs_size,), dataset.action_size),
        "direct": make_world_model(EBWMConfig(**size, head="direct"), (dataset.obs_size,), dataset.action_size),
    }
    counts = {n: count_parameters(m.init(jax.random.key(0))) for n, m in models.items()}
    results: dict[str, dict[str, list]] = {n: {} for n in models}
    seeds = range(args.seed_offset, args.seed_offset + args.seeds)
    for seed in seeds:
        key = jax.random.key(seed)
        physics = list(dataset.physics.values())
        train = random_episodes(dataset, jax.random.fold_in(key, 0), 512, physics[0])
        tests = {name: random_episodes(dataset, jax.random.fold_in(key, 1 + i), 256, p) for i, (name, p) in enumerate(dataset.physics.items())}
        for name, model in models.items():
            tic = time.perf_counter()
            fit = fit_world_model(model, train, sample_episodes, args.updates, 1e-3, jax.random.fold_in(key, 9))
            print(f"seed {seed} {name}: loss {fit.losses[0]:.3f} -> {fit.losses[-1]:.3f} in {time.perf_counter() - tic:.0f}s", flush=True)
            for data_name, data in tests.items():
                results[name].setdefault(data_name, []).append(evaluate(model, fit.params, data, jax.random.key(100 + seed)))
            results[name].setdefault("train_seconds", []).append(fit.seconds)
            if seed == seeds[0]:
                results[name]["cost"] = [prediction_cost(model, fit.params, tests["in distribution"], n) for n in (1, 2, 8)]
    write_doc(args, dataset, results, counts, list(seeds))


def write_doc(args, dataset: Dataset, results, counts, seeds) -> None:
    command = (f"python scripts/ebwm.py --env {args.env} --updates {args.updates} --seeds {args.seeds} "
               f"--seed-offset {args.seed_offset} --train-steps {args.train_steps} --hidden {args.hidden}")
    lines = [
        f"Command: `{command}` (seeds {seeds[0]}-{seeds[-1]}; mean ± std over seeds). Parameters: EBWM {counts['EBWM']}, "
        f"direct {counts['direct']}. Error: mean squared error of `[symlog obs, symlog reward, continue]`.",
        "",
        "| data | error | " + " | ".join(f"{n} steps" for n in STEPS) + " | direct |",
        "|---|---|" + "---|" * (len(STEPS) + 1),
    ]
    for data_name in dataset.physics:
        for kind, label in (("one_step", "one-step"), ("open_loop", f"open loop {HORIZON}")):
            ebwm = np.array([r[kind] for r in results["EBWM"][data_name]])  # [seeds, steps]
            direct = np.array([r[kind][0] for r in results["direct"][data_name]])
            cells = [mean_std(ebwm[:, i]) for i in range(len(STEPS))]
            lines.append(f"| {data_name} | {label} | " + " | ".join(cells) + f" | {mean_std(direct)} |")
    lines += ["", f"Best-of-{K} (one-step error, {args.train_steps} thinking steps, noisy starts):", "",
              "| data | lowest energy | random of K | mean of K | Spearman(energy, error) | gain 2 -> 8 steps |", "|---|---|---|---|---|---|"]
    for data_name in dataset.physics:
        rows = results["EBWM"][data_name]
        gain = [1.0 - r["one_step"][STEPS.index(8)] / r["one_step"][STEPS.index(2)] for r in rows]
        lines.append(
            f"| {data_name} | {mean_std([r['lowest_energy'] for r in rows])} | {mean_std([r['random_of_k'] for r in rows])} | "
            f"{mean_std([r['mean_of_k'] for r in rows])} | {mean_std([r['spearman'] for r in rows])} | {mean_std(gain)} |"
        )
    lines += ["", "Compute per prediction (batch 256, this CPU, seed " + str(seeds[0]) + "):", "",
              "| model | ms, 1 step | ms, 2 steps | ms, 8 steps | FLOPs (XLA; a loop body counted once) |", "|---|---|---|---|---|"]
    for name in ("EBWM", "direct"):
        cells = [f"{ms:.3f}" for ms, _ in results[name]["cost"]]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {results[name]['cost'][0][1]:.3g} |")
    lines += ["", f"Training ({args.updates} updates of 16 x {LENGTH}, compiled, mean seconds): EBWM "
              f"{np.mean(results['EBWM']['train_seconds']):.1f}, direct {np.mean(results['direct']['train_seconds']):.1f}."]
    lines += ["", f"![error vs thinking steps, {dataset.env}]({dataset.plot})"]
    replace_section(DOC, f"ebwm-{args.env}", "\n".join(lines), new_document="# Energy-based world model\n")
    plot(dataset, results)


def plot(dataset: Dataset, results) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, kind in zip(axes, ("one_step", "open_loop")):
        for data_name in dataset.physics:
            values = np.array([r[kind] for r in results["EBWM"][data_name]])
            ax.errorbar(STEPS, values.mean(0), values.std(0), marker="o", label=f"EBWM, {data_name}")
            direct = np.mean([r[kind][0] for r in results["direct"][data_name]])
            ax.axhline(direct, ls="--", lw=0.8, color=ax.lines[-1].get_color())
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("thinking steps")
        ax.set_title(kind.replace("_", "-") + " error (dashed: direct)")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(DOC.with_name(dataset.plot), dpi=120)


if __name__ == "__main__":
    main(sys.argv[1:])
