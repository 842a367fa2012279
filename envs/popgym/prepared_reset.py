"""Auto-reset from a next episode prepared inside the state ("optimistic reset", as in Craftax).

gymnax's ``Environment.step`` calls ``reset_env`` at every step and keeps its
result only where the episode ended; under ``jax.vmap`` no branch can skip
it. When a reset draws a lot of randomness (a shuffled layout of cards, a
fresh set of bandit arms) that reset dominates the cost of every step. An
environment built on :class:`PreparedResetEnvironment` instead keeps the
randomness of its next episode in its state, refreshes a little of it at each
step of the current episode, and starts the next episode with
:meth:`~PreparedResetEnvironment.restart`, which only rearranges arrays.
``reset_env`` (what ``reset`` calls) still draws everything afresh.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
from gymnax.environments import environment


class PreparedResetEnvironment(environment.Environment):
    """A gymnax environment whose ``step`` auto-resets with :meth:`restart` instead of ``reset_env``."""

    def restart(self, state: Any, params: Any) -> tuple[jax.Array, Any]:
        """The first observation and state of the episode prepared in ``state``; draws no random numbers."""
        raise NotImplementedError

    @partial(jax.jit, static_argnames=("self",))
    def step(self, key: jax.Array, state: Any, action: Any, params: Any = None):
        """gymnax 1.x ``step``: ``(obs, state, reward, terminated, truncated, info)``, auto-resetting on done."""
        if params is None:
            params = self.default_params
        obs_step, state_step, reward, terminated, info = self.step_env(key, state, action, params)
        truncated = self.is_truncated(state_step, params)
        done = jnp.logical_or(terminated, truncated)
        obs_restart, state_restart = self.restart(state_step, params)
        state = jax.tree.map(lambda new, old: jax.lax.select(done, new, old), state_restart, state_step)
        obs = jax.tree.map(lambda new, old: jax.lax.select(done, new, old), obs_restart, obs_step)
        info = {**info, "terminated": terminated, "truncated": truncated, "final_observation": obs_step}
        return obs, state, reward, terminated, truncated, info
