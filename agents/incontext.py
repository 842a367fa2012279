"""In-context RL with PPO: meta-episodes of randomly projected tasks, and the per-trial curve on held-out ones.

A task is a random linear projection of a control env's observation and a
random permutation (Discrete) or mixing (Box) of its actions
(:class:`~mnemax.envs.MetaRL`), or, for ``xminigrid/...`` ids, an XLand-MiniGrid
ruleset drawn from a benchmark's training or held-out part (the adapter runs
the meta-episode itself: envs/xminigrid_adapter.py). A meta-episode is ``trials`` episodes of one
task; the agent sees its previous action and reward
(:class:`~mnemax.envs.PrevActionReward`) and its backbone resets only between
meta-episodes, so it can learn the task within a meta-episode. Trained on
training tasks, it is evaluated on held-out ones (``eval_tasks=True``): it
learns in context when the last trial returns clearly more than the first.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from mnemax.agents.evaluation import make_evaluate, trial_returns
from mnemax.agents.ppo import PPOConfig, RunnerState
from mnemax.backbones import BackboneSpec
from mnemax.envs import MetaRL, PrevActionReward
from mnemax.envs import make as make_env


def incontext_config(total_steps: int, backbone: BackboneSpec | None = None) -> PPOConfig:
    """The PPO settings of docs/INCONTEXT.md: S5 (2 layers x 64) by default, 64 envs x 128 steps, 4 x 4 minibatches.

    Rollouts are shorter than meta-episodes; the carry saved at each rollout's
    start carries the task knowledge over rollout boundaries.
    """
    return PPOConfig(
        total_steps=int(total_steps),
        num_envs=64,
        num_steps=128,
        update_epochs=4,
        num_minibatches=4,
        learning_rate=1e-3,
        ent_coef=0.01,
        encoder_sizes=(64,),
        head_sizes=(64,),
        activation="tanh",
        backbone=backbone or BackboneSpec.from_dict("s5", 64, {"num_layers": 2, "state_size": 64}),
    )


def make_meta_env(
    name: str,
    trials: int,
    *,
    eval_tasks: bool = False,
    task_seed: int = 0,
    episode_limit: int | None = None,
    **env_kwargs: Any,
) -> tuple[Any, Any]:
    """``PrevActionReward(MetaRL(env, trials, eval_tasks=...))`` over ``mnemax.envs.make(name, **env_kwargs)``.

    Training and held-out envs built with the same ``task_seed`` draw from
    disjoint task sets (MetaRL's task ids), so held-out projections are new.
    ``episode_limit`` replaces the inner env's ``max_steps_in_episode`` (one
    trial's time limit) to keep meta-episodes short.

    An ``xminigrid/...`` id is its own task source: ``PrevActionReward`` over
    the adapter with ``trials``, ``split="train"`` or ``"held_out"`` (by
    ``eval_tasks``; the two never share a ruleset), ``split_seed=task_seed``,
    the benchmark ``trivial-local`` unless ``env_kwargs`` names another, and
    ``episode_limit`` as XLand's own ``max_steps`` per trial.
    """
    if runs_own_trials(name):
        options = {"benchmark": "trivial-local", **env_kwargs, "trials": trials, "split_seed": task_seed,
                   "split": "held_out" if eval_tasks else "train"}
        if episode_limit is not None:
            options["max_steps"] = int(episode_limit)
        env, params = make_env(name, **options)
        return PrevActionReward(env), params
    env, params = make_env(name, **env_kwargs)
    if episode_limit is not None:
        if not hasattr(params, "max_steps_in_episode"):
            raise ValueError(f"{name}'s params have no max_steps_in_episode, so episode_limit cannot be applied.")
        params = params.replace(max_steps_in_episode=int(episode_limit))
    return PrevActionReward(MetaRL(env, trials=trials, eval_tasks=eval_tasks, task_seed=task_seed)), params


def runs_own_trials(name: str) -> bool:
    """Whether the env ``name`` draws its tasks and runs meta-episodes itself (XLand-MiniGrid) instead of through MetaRL."""
    return name.startswith("xminigrid/")


def max_meta_episode_steps(env_params: Any, trials: int, name: str = "") -> int:
    """Steps a meta-episode can take: ``trials`` times the inner env's ``max_steps_in_episode``.

    For an env that runs its own trials (:func:`runs_own_trials`) the params'
    limit already covers the whole meta-episode.
    """
    limit = getattr(env_params, "max_steps_in_episode", None)
    if limit is None:
        raise ValueError("The env's params have no max_steps_in_episode; pass num_steps to evaluate_trials yourself.")
    return int(limit) if runs_own_trials(name) else trials * int(limit)


def evaluate_trials(
    config: PPOConfig,
    state: RunnerState,
    name: str,
    trials: int,
    key: jax.Array,
    *,
    num_envs: int = 64,
    num_steps: int | None = None,
    task_seed: int = 0,
    episode_limit: int | None = None,
    **env_kwargs: Any,
) -> tuple[jax.Array, jax.Array]:
    """Mean and standard error of each trial's return over ``num_envs`` held-out tasks: ``([trials], [trials])``.

    Each environment plays one meta-episode of a task the agent never trained
    on, with ``state``'s policy (sampled actions). ``num_steps`` defaults to the
    longest meta-episode, so every one completes.
    """
    env, params = make_meta_env(
        name, trials, eval_tasks=True, task_seed=task_seed, episode_limit=episode_limit, **env_kwargs
    )
    steps = max_meta_episode_steps(params, trials, name) if num_steps is None else num_steps
    evaluate = make_evaluate(config, env, params, num_envs, steps, info_keys=("trial",))
    returns, complete = trial_returns(evaluate(state, key), trials)
    weight = complete.astype(jnp.float32)[:, None]
    count = jnp.maximum(jnp.sum(weight), 1.0)
    mean = jnp.sum(returns * weight, axis=0) / count
    spread = jnp.sqrt(jnp.sum(weight * (returns - mean) ** 2, axis=0) / jnp.maximum(count - 1.0, 1.0))
    return mean, spread / jnp.sqrt(count)
