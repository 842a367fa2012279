"""Acting with trained PPO parameters, outside training: held-out evaluation and per-trial returns.

``make_evaluate(config, env, env_params, num_envs, num_steps)`` returns a jittable
``evaluate(state, key) -> Episodes``: fresh copies of ``env`` (for instance
``MetaRL(..., eval_tasks=True)``, whose tasks the agent never trained on) run
``num_steps`` steps with the policy of a :class:`~mnemax.agents.ppo.RunnerState`
(its parameters and observation statistics), a recurrent backbone in step mode
with resets at episode starts, exactly as in the rollout. Nothing is learnt.

:func:`trial_returns` turns the steps of a :class:`~mnemax.envs.MetaRL` env into
the return of each trial of the first meta-episode of every environment, the
per-trial curve of in-context RL (the agent improves within a meta-episode
when later trials return more than the first).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from mnemax.agents.ppo import PPOConfig, RunnerState, env_observation_parts, feature_mask, make_network, network_input, policy_distribution
from mnemax.agents.trainer import action_space


class Episodes(NamedTuple):
    """What ``num_steps`` steps of ``num_envs`` environments produced, each ``[T, B]``.

    ``info`` holds the env's per-step ``info`` entries named in ``info_keys``
    (for :class:`~mnemax.envs.MetaRL`: ``trial`` and ``trial_end``), and the
    values named in ``sown`` that the network sowed while choosing step
    ``t``'s action (e.g. DCEM's ``slot_weights``), ``[T, B, ...]``.
    """

    rewards: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    info: dict[str, jax.Array]


def make_evaluate(
    config: PPOConfig,
    env: Any,
    env_params: Any,
    num_envs: int,
    num_steps: int,
    *,
    greedy: bool = False,
    info_keys: tuple[str, ...] = (),
    sown: tuple[str, ...] = (),
) -> Callable[[RunnerState, jax.Array], Episodes]:
    """``evaluate(state, key) -> Episodes``: act with ``state``'s policy in ``num_envs`` fresh envs for ``num_steps``.

    ``env`` must give observations of the shape the policy was trained on
    (the same wrappers, e.g. :class:`~mnemax.envs.PrevActionReward`).
    ``greedy`` takes the most likely action (the mean for a Gaussian policy)
    instead of sampling; in-context RL usually needs the sampled policy,
    since exploring is part of what it learnt.
    """
    if num_envs < 1 or num_steps < 1:
        raise ValueError(f"num_envs and num_steps must be positive integers, got {num_envs} and {num_steps}.")
    actions = action_space(env, env_params, "PPO")
    discrete, action_dim = actions.discrete, actions.size
    parts = env_observation_parts(env, env_params)
    network = make_network(config, action_dim, discrete, parts)
    features = feature_mask(parts)
    reset_envs = jax.vmap(env.reset, in_axes=(0, None))
    step_envs = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def flat(obs: jax.Array) -> jax.Array:
        return obs.reshape(num_envs, -1).astype(jnp.float32)

    def evaluate(state: RunnerState, key: jax.Array) -> Episodes:
        reset_key, key = jax.random.split(key)
        obs, env_state = reset_envs(jax.random.split(reset_key, num_envs), env_params)
        carry = network.initialize_carry(num_envs)

        def step(loop, step_key):
            obs, env_state, carry, starts = loop
            act_key, env_key = jax.random.split(step_key)
            inputs = network_input(config, features, state.obs_stats, obs)
            (carry, (policy_params, _)), variables = network.apply(
                state.params, carry, inputs[None], starts[None], mutable=["intermediates"]
            )
            looked = {name: find_sown(variables.get("intermediates", {}), name)[0] for name in sown}  # [B, ...]
            dist = policy_distribution(discrete, jax.tree.map(lambda p: p[0], policy_params))
            action = dist.mode() if greedy else dist.sample(seed=act_key)
            next_obs, env_state, reward, terminated, truncated, info = step_envs(
                jax.random.split(env_key, num_envs), env_state, action, env_params
            )
            done = jnp.logical_or(terminated, truncated)
            out = Episodes(
                rewards=reward.astype(jnp.float32),
                terminated=terminated,
                truncated=truncated,
                info={**{k: info[k] for k in info_keys}, **looked},
            )
            return (flat(next_obs), env_state, carry, done), out

        start = (flat(obs), env_state, carry, jnp.ones((num_envs,), bool))
        _, episodes = jax.lax.scan(step, start, jax.random.split(key, num_steps))
        return episodes

    return evaluate


def find_sown(intermediates: Any, name: str) -> jax.Array:
    """The one value sown as ``name`` anywhere in a network's ``intermediates`` (its first sow of the call).

    Raises a one-sentence ValueError when no module, or more than one, sowed it.
    """
    leaves = jax.tree_util.tree_flatten_with_path(intermediates, is_leaf=lambda x: isinstance(x, tuple))[0]
    names = [getattr(path[-1], "key", "?") for path, _ in leaves]  # a sow's leaf is the tuple of its values
    found = [leaf for leaf_name, (_, leaf) in zip(names, leaves) if leaf_name == name]
    if len(found) != 1:
        sown = ", ".join(sorted(set(names))) or "nothing"
        raise ValueError(f"The network sowed {len(found)} values named {name!r} (it sows: {sown}).")
    return found[0][0]


def trial_returns(episodes: Episodes, trials: int) -> tuple[jax.Array, jax.Array]:
    """Return of each trial of every environment's first meta-episode: ``(returns [B, trials], complete [B])``.

    ``episodes`` must come from a :class:`~mnemax.envs.MetaRL` env with
    ``info_keys=("trial",)``, starting at a reset. ``complete[b]`` says the
    first meta-episode of env ``b`` ended within the evaluated steps; average
    ``returns`` over those rows only.
    """
    if "trial" not in episodes.info:
        raise ValueError('trial_returns needs the MetaRL "trial" info; evaluate with info_keys=("trial",).')
    done = jnp.logical_or(episodes.terminated, episodes.truncated)  # [T, B]
    # Meta-episodes finished before step t: 0 throughout the first meta-episode.
    finished_before = jnp.cumsum(done, axis=0) - done
    in_first = finished_before == 0
    trial_one_hot = jax.nn.one_hot(episodes.info["trial"], trials, dtype=jnp.float32)  # [T, B, trials]
    returns = jnp.einsum("tb,tbk->bk", episodes.rewards * in_first, trial_one_hot)
    return returns, jnp.any(done, axis=0)
