"""The shared half of the adapters for JAX environment suites (Craftax, Navix, XLand-MiniGrid, POPGym Arcade).

Each suite has its own API: Craftax and POPGym Arcade speak gymnax 0.0.x
(five-value ``step`` whose ``done`` mixes game over and time limit), Navix and
XLand-MiniGrid return a ``Timestep`` whose ``step_type`` (and, for XLand,
``discount``) tells the two apart. :class:`SuiteEnv` turns any of them into a
gymnax 1.x ``Environment``; a subclass only says how to reset and step the
suite *without* its own auto-reset, and which ending was which:

* ``terminated`` is the suite's natural ending (died, reached the goal);
* ``truncated`` is the suite's own time limit, or mnemax's
  ``params.max_steps_in_episode`` when that is shorter; never both on one step
  (a natural ending wins), so value targets bootstrap exactly through time limits;
* auto-reset and ``info["final_observation"]`` come from gymnax's
  ``Environment.step``; observations keep the suite's dtype (pixels stay uint8).

``SuiteParams.inner`` holds the suite's own params (``None`` for suites that
keep their settings on the env object).
"""

from __future__ import annotations

import importlib.util
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from mnemax.envs.auto_reset import auto_reset


@struct.dataclass
class SuiteState(environment.EnvState):
    """gymnax state around the suite's: ``time`` counts steps of this episode.

    ``truncated`` says the step that produced this state hit a time limit (and
    did not end naturally); gymnax's ``step`` reads it through ``is_truncated``.
    """

    inner: Any
    truncated: jax.Array


@struct.dataclass
class SuiteParams(environment.EnvParams):
    """mnemax's time limit (``max_steps_in_episode``, the suite's own by default) and the suite's params."""

    max_steps_in_episode: int = 1000
    inner: Any = None


class MissingSuiteError(ValueError):
    """Raised when an adapted suite's package is not installed."""


def require_suite(module: str, suite: str, extra: str, install: str | None = None) -> None:
    """Raise :class:`MissingSuiteError` naming the install command when ``module`` cannot be imported."""
    if not suite_installed(module):
        command = install or f'pip install "mnemax[{extra}]"'
        raise MissingSuiteError(f"{suite} is not installed; install it with `{command}` to use {extra}/... environments.")


def suite_installed(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it."""
    return importlib.util.find_spec(module) is not None


class SuiteEnv(environment.Environment[SuiteState, SuiteParams]):
    """A suite's environment with gymnax 1.x ``reset``/``step``; see the module docstring.

    Subclasses set ``prefix`` (``"navix/"``) and ``self.env_id`` and implement
    :meth:`suite_reset`, :meth:`suite_step`, the two spaces and ``default_params``.
    """

    prefix = ""
    env_id = ""
    # None: gymnax's auto-reset (a fresh episode computed for every copy on every step); a number: the
    # optimistic auto-reset of mnemax.envs.auto_reset with that many copies per fresh episode.
    reset_ratio: int | None = None

    @property
    def name(self) -> str:
        return self.prefix + self.env_id

    def suite_reset(self, key: jax.Array, inner_params: Any) -> tuple[Any, Any]:
        """``(observation, suite_state)`` of a fresh episode."""
        raise NotImplementedError

    def suite_step(
        self, key: jax.Array, inner_state: Any, action: jax.Array, inner_params: Any
    ) -> tuple[Any, Any, jax.Array, jax.Array, jax.Array, dict[str, Any]]:
        """One step without auto-reset: ``(obs, suite_state, reward, terminated, time_limit_hit, info)``."""
        raise NotImplementedError

    def reset_env(self, key: jax.Array, params: SuiteParams) -> tuple[Any, SuiteState]:
        obs, inner = self.suite_reset(key, params.inner)
        return obs, SuiteState(time=jnp.zeros((), jnp.int32), inner=inner, truncated=jnp.zeros((), bool))

    def step_env(
        self, key: jax.Array, state: SuiteState, action: jax.Array, params: SuiteParams
    ) -> tuple[Any, SuiteState, jax.Array, jax.Array, dict[str, Any]]:
        obs, inner, reward, terminated, time_limit_hit, info = self.suite_step(key, state.inner, action, params.inner)
        time = state.time + 1
        terminated = jnp.asarray(terminated, bool)
        truncated = jnp.logical_and(
            jnp.logical_or(jnp.asarray(time_limit_hit, bool), time >= params.max_steps_in_episode),
            jnp.logical_not(terminated),
        )
        next_state = SuiteState(time=time, inner=inner, truncated=truncated)
        return obs, next_state, jnp.asarray(reward, jnp.float32), terminated, info

    def is_truncated(self, state: SuiteState, params: SuiteParams) -> jax.Array:
        return state.truncated

    @partial(jax.jit, static_argnames=("self",))
    def step(self, key: jax.Array, state: SuiteState, action: jax.Array, params: SuiteParams | None = None):
        """gymnax's ``Environment.step``; with ``reset_ratio`` set, the auto-reset builds only the episodes it needs."""
        if self.reset_ratio is None:
            return super().step(key, state, action, params)
        params = self.default_params if params is None else params
        key_step, key_reset = jax.random.split(key)
        obs_st, state_st, reward, terminated, info = self.step_env(key_step, state, action, params)
        truncated = self.is_truncated(state_st, params)
        done = jnp.logical_or(terminated, truncated)
        obs, state = auto_reset(self.reset_env, self.reset_ratio)(done, key_reset, params, obs_st, state_st)
        info = {**info, "terminated": terminated, "truncated": truncated, "final_observation": obs_st}
        return obs, state, reward, terminated, truncated, info


class LegacyGymnaxSuiteEnv(SuiteEnv):
    """A suite whose envs speak gymnax 0.0.x (``reset_env``, five-value ``step_env`` with one ``done``).

    ``self.legacy_env`` is the suite's env and ``self.legacy_params`` its
    default params; subclasses say which ``done`` was a time limit in
    :meth:`split_done`. The suite's Discrete and Box spaces become gymnax's.
    """

    legacy_env: Any
    legacy_params: Any

    def split_done(self, done: jax.Array, inner_state: Any, inner_params: Any, info: dict) -> tuple[jax.Array, jax.Array]:
        """``(terminated, time_limit_hit)`` of a step that returned ``done``."""
        raise NotImplementedError

    def suite_reset(self, key: jax.Array, inner_params: Any) -> tuple[Any, Any]:
        return self.legacy_env.reset_env(key, inner_params)

    def suite_step(self, key: jax.Array, inner_state: Any, action: jax.Array, inner_params: Any):
        obs, inner_state, reward, done, info = self.legacy_env.step_env(key, inner_state, action, inner_params)
        terminated, time_limit_hit = self.split_done(jnp.asarray(done, bool), inner_state, inner_params, info)
        return obs, inner_state, reward, terminated, time_limit_hit, self.step_info(info)

    def step_info(self, info: dict) -> dict:
        """What of the suite's ``info`` the step passes on (all of it by default)."""
        return info

    def action_space(self, params: SuiteParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(int(self.legacy_env.action_space(self.legacy_params).n))

    def observation_space(self, params: SuiteParams | None = None) -> spaces.Box:
        space = self.legacy_env.observation_space(self.legacy_params if params is None else params.inner)
        return spaces.Box(space.low, space.high, tuple(space.shape), space.dtype)
