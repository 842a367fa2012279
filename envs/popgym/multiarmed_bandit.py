"""MultiarmedBandit (POPGym): find and exploit the best of a fresh set of bandit arms each episode.

At reset every arm gets a payout probability drawn uniformly from [0, 1).
Pulling an arm pays ``1 / L`` with its probability and ``-1 / L`` otherwise
(``L = episode_length``); the episode is truncated after ``L`` pulls and never
terminates, so returns lie in [-1, 1]. Always pulling arm ``a`` has expected
return ``2 p_a - 1``.

Observation ``[1]`` float32: 1 if the last pull paid out, else 0 (0 at reset;
POPGym's ``Discrete(2)`` value). Action ``Discrete(num_bandits)``: the arm.
The agent needs its previous action to make sense of an observation
(``obs_requires_prev_action``).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import spaces

from mnemax.envs.popgym.arguments import positive_int
from mnemax.envs.popgym.prepared_reset import PreparedResetEnvironment

DIFFICULTIES: dict[str, dict[str, Any]] = {
    "Easy": {"num_bandits": 10, "episode_length": 200},
    "Medium": {"num_bandits": 20, "episode_length": 400},
    "Hard": {"num_bandits": 30, "episode_length": 600},
}


@struct.dataclass
class EnvState:
    payout_probs: jax.Array  # float32 [num_bandits], each arm's chance to pay out
    time: jax.Array  # int32 [], pulls so far
    next_probs: jax.Array  # float32 [num_bandits], the next episode's arms, redrawn a few per pull


@struct.dataclass
class EnvParams:
    max_steps_in_episode: int = 200  # L, the number of pulls


class MultiarmedBandit(PreparedResetEnvironment):
    """``num_bandits`` Bernoulli arms, fresh each episode, pulled ``episode_length`` times.

    Each pull also redraws ``ceil(num_bandits / episode_length)`` of the next
    episode's arms, in turn, so all are fresh when the episode ends and
    auto-reset draws nothing.
    """

    obs_requires_prev_action = True

    def __init__(self, num_bandits: int = 10, episode_length: int = 200):
        self.num_bandits = positive_int("num_bandits", num_bandits)
        self.episode_length = positive_int("episode_length", episode_length)
        self.redraws_per_pull = -(-self.num_bandits // self.episode_length)

    @property
    def default_params(self) -> EnvParams:
        return EnvParams(max_steps_in_episode=self.episode_length)

    def reset_env(self, key: jax.Array, params: EnvParams) -> tuple[jax.Array, EnvState]:
        probs = jax.random.uniform(key, (self.num_bandits,), jnp.float32)
        return self._start(probs)

    def restart(self, state: EnvState, params: EnvParams) -> tuple[jax.Array, EnvState]:
        return self._start(state.next_probs)

    def _start(self, probs: jax.Array) -> tuple[jax.Array, EnvState]:
        return jnp.zeros((1,), jnp.float32), EnvState(payout_probs=probs, time=jnp.int32(0), next_probs=probs)

    def step_env(self, key, state: EnvState, action, params: EnvParams):
        draws = jax.random.uniform(key, (1 + self.redraws_per_pull,), jnp.float32)
        paid = draws[0] < state.payout_probs[action]
        scale = 1.0 / params.max_steps_in_episode
        reward = jnp.where(paid, scale, -scale).astype(jnp.float32)
        arms = jnp.arange(self.num_bandits)
        next_probs = state.next_probs
        for i in range(self.redraws_per_pull):
            arm = (state.time * self.redraws_per_pull + i) % self.num_bandits
            next_probs = jnp.where(arms == arm, draws[1 + i], next_probs)
        state = state.replace(time=state.time + 1, next_probs=next_probs)
        return paid.astype(jnp.float32)[None], state, reward, jnp.zeros((), bool), {}

    def action_space(self, params: EnvParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(self.num_bandits)

    def observation_space(self, params: EnvParams | None = None) -> spaces.Box:
        return spaces.Box(0.0, 1.0, (1,), jnp.float32)
