"""What every agent hands the experiment layer: a :class:`Trainer`, and the pieces all agents share.

``Trainer(init, update, num_updates)``: ``init(key, *args) -> state`` and
``update(state) -> (state, metrics)``, both pure, jittable and vmappable over
seeds; ``metrics`` is a dict of scalars that holds at least ``env_steps``.
:func:`make_train` scans ``update`` for a whole run, for any registered agent.
:func:`episode_metrics` and :func:`action_space` are what every agent reports
about finished episodes and reads from an env's action space.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

Metrics = dict[str, jax.Array]


class Trainer(NamedTuple):
    """``init(key, *args) -> state`` and ``update(state) -> (state, metrics)``; ``num_updates`` updates make a run."""

    init: Callable[..., Any]
    update: Callable[[Any], tuple[Any, Metrics]]
    num_updates: int


def train_function(trainer: Trainer) -> Callable[..., tuple[Any, Metrics]]:
    """``train(key, *args) -> (state, metrics)``: ``init`` then ``lax.scan`` of ``num_updates`` updates.

    ``metrics`` leaves have shape ``[num_updates]``; ``jax.jit(jax.vmap(train))(keys)``
    trains several seeds in one program. ``args`` go to ``init`` (PPO's traced
    :class:`~mnemax.agents.ppo.HParams`).
    """

    def train(key: jax.Array, *args: Any) -> tuple[Any, Metrics]:
        state = trainer.init(key, *args)
        return jax.lax.scan(lambda s, _: trainer.update(s), state, None, length=trainer.num_updates)

    return train


def make_train(config: Any, env: Any, env_params: Any, **options: Any) -> Callable[..., tuple[Any, Metrics]]:
    """``train(key, *args) -> (state, metrics)`` for the registered agent whose config ``config`` is.

    ``options`` go to that agent's ``make_trainer`` (PPO's ``mesh=``).
    """
    from mnemax.agents.registry import agent_for_config

    return train_function(agent_for_config(config).make_trainer(config, env, env_params, **options))


def mean_or_nan(values: jax.Array, ended: jax.Array) -> jax.Array:
    """Mean of ``values`` where ``ended`` (float 0/1, same shape), NaN when nothing ended."""
    count = jnp.sum(ended)
    return jnp.where(count > 0, jnp.sum(values * ended) / jnp.maximum(count, 1.0), jnp.nan)


def episode_metrics(ended: jax.Array, returns: jax.Array, lengths: jax.Array) -> Metrics:
    """``episode_return``, ``episode_length`` (means over the episodes that ended, NaN if none) and ``episodes``.

    ``ended``, ``returns`` and ``lengths`` are ``[T, B]``: whether an episode
    ended at step t, and that episode's undiscounted return and length.
    """
    ended = ended.astype(jnp.float32)
    return {
        "episode_return": mean_or_nan(returns, ended),
        "episode_length": mean_or_nan(lengths.astype(jnp.float32), ended),
        "episodes": jnp.sum(ended),
    }


class ActionSpace(NamedTuple):
    """A gymnax action space as an agent reads it: ``Discrete(n)`` or a ``Box`` of shape ``(A,)``.

    size: ``n`` or ``A``. low, high: ``[A]`` bounds of a Box (``None`` when discrete).
    """

    discrete: bool
    size: int
    low: jax.Array | None
    high: jax.Array | None


def action_space(env: Any, env_params: Any, agent: str) -> ActionSpace:
    """The :class:`ActionSpace` of ``env``; any other space is one sentence naming ``agent`` and the fix."""
    space = env.action_space(env_params)
    if hasattr(space, "n"):
        return ActionSpace(True, int(space.n), None, None)
    shape = tuple(getattr(space, "shape", ()) or ())
    if len(shape) != 1:
        raise ValueError(
            f"{agent} supports Discrete action spaces and Box spaces of shape (A,); this env's action space is "
            f"{type(space).__name__} with shape {shape}. Wrap the env to flatten its actions."
        )
    low = jnp.broadcast_to(jnp.asarray(space.low, jnp.float32), shape)
    high = jnp.broadcast_to(jnp.asarray(space.high, jnp.float32), shape)
    return ActionSpace(False, shape[0], low, high)
