"""The environment as Dreamer sees it: every episode's last observation is a step of its own.

A gymnax env resets inside ``step`` and hands the last observation over in
``info["final_observation"]``. A world model must see that observation (it
carries the terminal reward and ``terminal`` flag) *and* the next episode's
first one, so :class:`DelayedReset` spreads them over two steps, as
DreamerV3's environment loop does:

* step k ends the episode: it returns the final observation, the reward,
  ``terminal`` / ``last`` flags, and keeps the already-reset inner state;
* step k + 1 ignores the action and returns the new episode's first
  observation with ``first`` true and reward 0.

So a replayed step t always holds ``(x_t, r_t, terminal_t, first_t)`` of
one observation. The extra step per episode counts as an env step.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

from mnemax.envs import FlattenObservation
from mnemax.envs import make as make_env
from mnemax.envs.popgym.cards import CardObservations


class DreamerStep(NamedTuple):
    """One step as Dreamer records it, ``[B, ...]`` under vmap."""

    obs: jax.Array  # x_t
    reward: jax.Array  # r_t, the reward of the transition into x_t (0 at a first step)
    terminal: jax.Array  # x_t ends the episode by termination (no bootstrap past it)
    last: jax.Array  # x_t ends the episode (terminated or truncated)
    first: jax.Array  # x_t starts an episode


@struct.dataclass
class DelayedResetState:
    inner: Any  # the wrapped env's state (already reset while ``pending``)
    pending: jax.Array  # bool: the last step ended an episode; the next step shows the reset observation
    next_obs: jax.Array  # the reset observation to show when ``pending``


class DelayedReset:
    """Wrap an auto-resetting gymnax env so that final and first observations are separate steps (see module doc)."""

    def __init__(self, env: Any):
        self.env = env

    @staticmethod
    def _observation(obs: jax.Array) -> jax.Array:
        """uint8 frames stay uint8 (the world model scales them; the replay keeps a quarter of the bytes), the rest float32."""
        return obs if obs.dtype == jnp.uint8 else obs.astype(jnp.float32)

    def reset(self, key: jax.Array, params: Any) -> tuple[DreamerStep, DelayedResetState]:
        obs, inner = self.env.reset(key, params)
        false = jnp.zeros((), bool)
        obs = self._observation(obs)
        step = DreamerStep(obs, jnp.zeros((), jnp.float32), false, false, jnp.ones((), bool))
        return step, DelayedResetState(inner, false, obs)

    def step(self, key: jax.Array, state: DelayedResetState, action: Any, params: Any) -> tuple[DreamerStep, DelayedResetState]:
        obs, inner, reward, terminated, truncated, info = self.env.step(key, state.inner, action, params)
        obs = self._observation(obs)
        final = info["final_observation"].astype(obs.dtype)
        last = jnp.logical_or(terminated, truncated)
        live = DreamerStep(
            obs=jnp.where(last, final, obs),
            reward=jnp.asarray(reward, jnp.float32),
            terminal=jnp.asarray(terminated, bool),
            last=last,
            first=jnp.zeros((), bool),
        )
        shown = DreamerStep(state.next_obs, jnp.zeros((), jnp.float32), jnp.zeros((), bool), jnp.zeros((), bool), jnp.ones((), bool))
        pending = state.pending
        step = jax.tree.map(lambda a, b: jnp.where(pending, a, b), shown, live)
        new_state = DelayedResetState(
            inner=jax.tree.map(lambda a, b: jnp.where(pending, a, b), state.inner, inner),
            pending=jnp.logical_and(~pending, last),
            next_obs=jnp.where(pending, state.next_obs, obs),
        )
        return step, new_state


def make_dreamer_env(name: str, **kwargs: Any) -> tuple[Any, Any]:
    """``mnemax.envs.make(name, **kwargs)`` with observations flattened to vectors, unless they are images ``[H, W, C]``.

    POPGym's card games are built with ``one_hot=True`` unless ``kwargs`` says
    otherwise: their observations are discrete card values, which DreamerV3
    one-hot encodes. Held as one float (0-3 for a suit), neighbouring values
    cost the decoder little to confuse, and an S5 world model on
    RepeatPreviousEasy kept only about one bit of each earlier card and never
    learned the reward; one-hot, it does (docs/WORLDMODELS.md,
    "RepeatPreviousEasy: observe the cards one-hot").
    """
    env, params = make_env(name, **kwargs)
    if isinstance(env, CardObservations) and "one_hot" not in kwargs:
        env, params = make_env(name, **kwargs, one_hot=True)
    shape = jax.eval_shape(env.reset, jax.random.key(0), params)[0].shape
    if len(shape) != 3:
        env = FlattenObservation(env)
    return env, params
