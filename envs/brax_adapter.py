"""Brax environments behind gymnax's 1.x interface: ``make("brax/ant")``.

Brax's own API keeps everything in one ``State`` (``reset(key) -> State``,
``step(state, action) -> State``) and leaves time limits and auto-reset to
wrappers. :class:`BraxEnv` turns a Brax environment into a
``gymnax.environments.environment.Environment`` so that it goes through the
same wrappers, checker and training code as every other mnemax env:

* ``observation_space`` is an unbounded ``Box`` of ``[observation_size]``,
  ``action_space`` a ``Box`` with the actuators' control range (``[-1, 1]``
  where the system names none);
* Brax's ``done`` (the body fell, the pendulum tipped over) becomes
  ``terminated``; reaching ``params.max_steps_in_episode`` (``max_steps``,
  default 1000) becomes ``truncated`` -- never ``terminated`` -- so value
  targets bootstrap through the time limit;
* auto-reset and ``info["final_observation"]`` come from gymnax's
  ``Environment.step``, unchanged.

Backend: the default ``backend="generalized"`` is the fastest-compiling Brax
pipeline whose dynamics agree with MuJoCo. Compile time of a jitted, vmapped
50-step random rollout on 2 CPU cores (jax 0.10.2, brax 0.14.2):

==============  =================  ==========================================
backend         inverted_pendulum  ant (share of steps with the ant fallen)
==============  =================  ==========================================
spring          3.3 s              5.1 s (0%)
generalized     3.6-4.1 s          7.0 s (28%)
mjx             4.6 s              17.0 s (40%)
positional      4.9-5.0 s          9.3 s (18%)
==============  =================  ==========================================

``spring`` compiles fastest but models joints and contacts as stiff springs:
under the same random actions its ant never falls, where MuJoCo's (``mjx``)
and ``generalized`` fall within 50 steps, so it is not the default. Pass
``backend="spring"`` for the quickest compile, ``backend="mjx"`` for MuJoCo itself.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

DEFAULT_BACKEND = "generalized"

# Brax's registry also holds ``fast``, a stub for Brax's own tests, and ``swimmer``,
# whose fluid drag in brax 0.14.2 calls ``jnp.clip(a_min=...)``, removed in jax 0.10;
# neither is listed (``BraxEnv("swimmer")`` still builds one for a compatible jax).
BRAX_ENV_NAMES = (
    "ant",
    "halfcheetah",
    "hopper",
    "humanoid",
    "humanoidstandup",
    "inverted_double_pendulum",
    "inverted_pendulum",
    "pusher",
    "reacher",
    "walker2d",
)


@struct.dataclass
class BraxEnvState(environment.EnvState):
    """gymnax state around Brax's: ``time`` counts steps of the current episode."""

    brax_state: Any


@struct.dataclass
class BraxEnvParams(environment.EnvParams):
    """The time limit is the only parameter; the physics is fixed at construction."""

    max_steps_in_episode: int = 1000


class BraxEnv(environment.Environment[BraxEnvState, BraxEnvParams]):
    """A Brax environment with gymnax 1.x ``reset``/``step`` (see the module docstring).

    Args:
      env_name: a name Brax registers (``brax.envs.get_environment``), e.g. ``"ant"``.
      backend: Brax physics pipeline, ``"generalized"`` by default (see the module docstring).
      max_steps: default time limit, stored in ``default_params.max_steps_in_episode``.
      **env_kwargs: passed to the Brax environment's constructor (``ctrl_cost_weight``, ...).
    """

    def __init__(self, env_name: str, backend: str = DEFAULT_BACKEND, max_steps: int = 1000, **env_kwargs: Any):
        from brax import envs as brax_envs  # imported here: Brax takes a second to import

        if env_name not in brax_envs._envs:  # Brax exposes no public list of its names
            raise ValueError(f"Brax has no environment {env_name!r}; choose one of {', '.join(BRAX_ENV_NAMES)}.")
        if int(max_steps) < 1:
            raise ValueError(f"max_steps must be a positive number of steps, got {max_steps}.")
        self.env_name = env_name
        self.backend = backend
        self.max_steps = int(max_steps)
        self.brax_env = brax_envs.get_environment(env_name, backend=backend, **env_kwargs)
        system = getattr(self.brax_env, "sys", None)
        if system is not None and system.actuator.ctrl_range.shape[0] == self.brax_env.action_size:
            ctrl_range = np.asarray(system.actuator.ctrl_range, dtype=np.float32)
            self._action_low, self._action_high = ctrl_range[:, 0], ctrl_range[:, 1]
        else:
            self._action_low = -np.ones(self.brax_env.action_size, np.float32)
            self._action_high = np.ones(self.brax_env.action_size, np.float32)

    @property
    def default_params(self) -> BraxEnvParams:
        return BraxEnvParams(max_steps_in_episode=self.max_steps)

    @property
    def name(self) -> str:
        return f"brax/{self.env_name}"

    def reset_env(self, key: jax.Array, params: BraxEnvParams) -> tuple[jax.Array, BraxEnvState]:
        brax_state = self.brax_env.reset(key)
        return brax_state.obs, BraxEnvState(time=jnp.zeros((), jnp.int32), brax_state=brax_state)

    def step_env(
        self, key: jax.Array, state: BraxEnvState, action: jax.Array, params: BraxEnvParams
    ) -> tuple[jax.Array, BraxEnvState, jax.Array, jax.Array, dict[str, Any]]:
        del key  # Brax's dynamics are deterministic given the state
        brax_state = self.brax_env.step(state.brax_state, jnp.asarray(action, jnp.float32))
        next_state = BraxEnvState(time=state.time + 1, brax_state=brax_state)
        terminated = brax_state.done > 0.5
        reward = jnp.asarray(brax_state.reward, jnp.float32)
        return brax_state.obs, next_state, reward, terminated, {"metrics": brax_state.metrics}

    def is_terminated(self, state: BraxEnvState, params: BraxEnvParams) -> jax.Array:
        return state.brax_state.done > 0.5

    def action_space(self, params: BraxEnvParams | None = None) -> spaces.Box:
        return spaces.Box(self._action_low, self._action_high, (self.brax_env.action_size,), jnp.float32)

    def observation_space(self, params: BraxEnvParams | None = None) -> spaces.Box:
        return spaces.Box(-jnp.inf, jnp.inf, (self.brax_env.observation_size,), jnp.float32)
