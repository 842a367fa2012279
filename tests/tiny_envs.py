"""A base for the tests' hand-written gymnax envs: a step counter with a time limit and two actions."""

from __future__ import annotations

import jax.numpy as jnp
from gymnax.environments import environment, spaces


class CountingEnv(environment.Environment):
    """State is the step count; episodes stop at ``limit`` steps; ``Discrete(2)`` actions.

    Subclasses write ``step_env``, ``get_obs`` and ``observation_space``.
    """

    limit = 8

    @property
    def default_params(self) -> environment.EnvParams:
        return environment.EnvParams(max_steps_in_episode=self.limit)

    def reset_env(self, key, params):
        state = environment.EnvState(time=jnp.int32(0))
        return self.get_obs(state, params), state

    def action_space(self, params=None):
        return spaces.Discrete(2)
