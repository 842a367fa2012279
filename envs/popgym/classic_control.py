"""CartPole and Pendulum seen through part of their state: the machinery of POPGym's control families.

POPGym (Morad et al. 2023) makes gymnasium's CartPole-v1 and Pendulum-v1
partially observable by hiding state components (and, in the noisy variants,
adding Gaussian noise clipped to the observation bounds). The physics here is
gymnax's own ``CartPole`` / ``Pendulum`` ``step_env``, which integrates the same
Euler equations as gymnasium (in float32 instead of float64).

What POPGym changes, and this module reproduces:

- Episodes end by truncation after ``max_episode_length`` steps (no 500-step
  ``TimeLimit``); CartPole also terminates when the pole falls, and then
  ``terminated`` and ``truncated`` may both be true on the last step, as in the
  original.
- Rewards are rescaled so that an episode's return lies in [-1, 1]: CartPole
  pays ``1 / max_episode_length`` per step (the pole-fell step included, as
  gymnasium pays 1 there); Pendulum maps its cost range [-16.2736044, 0]
  linearly onto [-1, 1] and divides by ``max_episode_length``.
- Noise ``N(0, noise_sigma**2)`` is added independently to every observed
  component, at reset and at every step, then clipped to the observation box.

Each family module (``position_only_cartpole`` and so on) subclasses one of
the two classes below and states which components it sees.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces
from gymnax.environments.classic_control import cartpole, pendulum

# gymnasium's Pendulum-v1 cost lies in [-PENDULUM_COST_RANGE, 0]: pi**2 + 0.1 * 8**2 + 0.001 * 2**2.
PENDULUM_COST_RANGE = 16.2736044


@struct.dataclass
class CartPoleParams(cartpole.EnvParams):
    """gymnax's CartPole parameters plus the observation noise (traced, so it can be vmapped)."""

    noise_sigma: float = 0.0


@struct.dataclass
class PendulumParams(pendulum.EnvParams):
    """gymnax's Pendulum parameters plus the observation noise (traced, so it can be vmapped)."""

    noise_sigma: float = 0.0


class PartiallyObservedControl(environment.Environment):
    """A gymnax control task observed through some of its state components, with optional clipped noise.

    Subclasses set ``dynamics`` (a gymnax env whose ``step_env`` / ``reset_env``
    are reused unchanged) and implement ``_components`` (the noiseless
    observation, ``[D]`` float32), ``_scale_reward`` and ``observation_bounds``.
    Setting the class attribute ``noisy`` adds ``N(0, noise_sigma**2)`` noise
    and clips to the observation box, as POPGym's noisy variants do.
    """

    noisy: bool = False

    def __init__(self, dynamics: environment.Environment, max_episode_length: int, noise_sigma: float):
        super().__init__()
        if isinstance(max_episode_length, bool) or not isinstance(max_episode_length, int) or max_episode_length < 1:
            raise ValueError(
                f"max_episode_length must be a positive integer, got {max_episode_length!r}; pass e.g. 200."
            )
        if isinstance(noise_sigma, bool) or not isinstance(noise_sigma, (int, float)) or not noise_sigma >= 0.0:
            raise ValueError(f"noise_sigma must be a non-negative float, got {noise_sigma!r}; pass e.g. 0.1.")
        self.dynamics = dynamics
        self.max_episode_length = max_episode_length
        self.noise_sigma = float(noise_sigma)

    # --- what a subclass says -------------------------------------------------------------------
    def _components(self, state: Any, first: bool) -> jax.Array:
        """Noiseless observation ``[D]`` of ``state``; ``first`` is true for the observation ``reset`` returns."""
        raise NotImplementedError

    def _scale_reward(self, reward: jax.Array, params: Any) -> jax.Array:
        raise NotImplementedError

    def observation_bounds(self) -> tuple[jax.Array, jax.Array]:
        """``(low, high)``, each ``[D]``: the observation box (noisy observations are clipped to it)."""
        raise NotImplementedError

    # --- gymnax interface -----------------------------------------------------------------------
    def _observe(self, key: jax.Array, state: Any, params: Any, first: bool) -> jax.Array:
        obs = self._components(state, first).astype(jnp.float32)
        if self.noisy:
            low, high = self.observation_bounds()
            noise = params.noise_sigma * jax.random.normal(key, obs.shape, jnp.float32)
            obs = jnp.clip(obs + noise, low, high)
        return obs

    def step_env(self, key: jax.Array, state: Any, action: Any, params: Any):
        # The dynamics are deterministic and ignore ``key``; it only draws the observation noise.
        _, next_state, reward, terminated, info = self.dynamics.step_env(key, state, action, params)
        obs = self._observe(key, next_state, params, first=False)
        reward = self._scale_reward(jnp.asarray(reward, jnp.float32), params)
        return obs, next_state, reward, jnp.asarray(terminated, jnp.bool_), info

    def reset_env(self, key: jax.Array, params: Any):
        state_key, noise_key = jax.random.split(key)
        _, state = self.dynamics.reset_env(state_key, params)
        return self._observe(noise_key, state, params, first=True), state

    def is_terminated(self, state: Any, params: Any) -> jax.Array:
        return self.dynamics.is_terminated(state, params)

    def observation_space(self, params: Any) -> spaces.Box:
        low, high = self.observation_bounds()
        return spaces.Box(low, high, low.shape, jnp.float32)

    def action_space(self, params: Any = None):
        return self.dynamics.action_space(params)

    def state_space(self, params: Any):
        return self.dynamics.state_space(params)

    @property
    def num_actions(self) -> int:
        return self.dynamics.num_actions


class PartiallyObservedCartPole(PartiallyObservedControl):
    """gymnasium's CartPole-v1 seeing only the state components named in ``observed``.

    ``observed`` names fields of gymnax's CartPole ``EnvState`` (``x``,
    ``x_dot``, ``theta``, ``theta_dot``); ``observed_at_reset`` those of the
    first observation (POPGym's VelocityOnlyCartPole shows positions there);
    ``observation_high`` the half-width of the observation box.
    Action: ``Discrete(2)``, 0 pushes left, 1 right.
    """

    observed: tuple[str, ...] = ()
    observed_at_reset: tuple[str, ...] | None = None
    observation_high: tuple[float, ...] = ()

    def __init__(self, max_episode_length: int = 200, noise_sigma: float = 0.0):
        super().__init__(cartpole.CartPole(), max_episode_length, noise_sigma)

    @property
    def default_params(self) -> CartPoleParams:
        return CartPoleParams(max_steps_in_episode=self.max_episode_length, noise_sigma=self.noise_sigma)

    def _components(self, state: cartpole.EnvState, first: bool) -> jax.Array:
        names = self.observed_at_reset if first and self.observed_at_reset is not None else self.observed
        return jnp.stack([getattr(state, name) for name in names])

    def _scale_reward(self, reward: jax.Array, params: CartPoleParams) -> jax.Array:
        # gymnasium pays 1 per step (the step where the pole falls included) and 0 only when
        # stepped after termination; POPGym turns 1 into 1 / max_steps and 0 into -1.
        return jnp.where(reward == 0.0, -1.0, 1.0 / params.max_steps_in_episode).astype(jnp.float32)

    def observation_bounds(self) -> tuple[jax.Array, jax.Array]:
        high = jnp.asarray(self.observation_high, jnp.float32)
        return -high, high


class PartiallyObservedPendulum(PartiallyObservedControl):
    """gymnasium's Pendulum-v1 seeing ``[cos(theta), sin(theta)]`` only (the angular velocity hidden).

    Action: ``Box(-2, 2, (1,))`` torque. Never terminates; truncates after
    ``max_episode_length`` steps.
    """

    def __init__(self, max_episode_length: int = 200, noise_sigma: float = 0.0):
        super().__init__(pendulum.Pendulum(), max_episode_length, noise_sigma)

    @property
    def default_params(self) -> PendulumParams:
        return PendulumParams(max_steps_in_episode=self.max_episode_length, noise_sigma=self.noise_sigma)

    def _components(self, state: pendulum.EnvState, first: bool) -> jax.Array:
        return jnp.stack([jnp.cos(state.theta), jnp.sin(state.theta)])

    def _scale_reward(self, reward: jax.Array, params: PendulumParams) -> jax.Array:
        half_range = PENDULUM_COST_RANGE / 2
        return ((reward + half_range) / half_range / params.max_steps_in_episode).astype(jnp.float32)

    def observation_bounds(self) -> tuple[jax.Array, jax.Array]:
        high = jnp.ones(2, jnp.float32)
        return -high, high
