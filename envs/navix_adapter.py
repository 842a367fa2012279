"""Navix behind gymnax's 1.x interface: ``make("navix/Navix-DoorKey-5x5-v0")``.

Navix (Pignatelli et al., 2024) re-implements MiniGrid in JAX. Its envs return
a ``Timestep`` whose ``step_type`` is 0 (transition), 1 (truncation: ``t``
reached ``max_steps``) or 2 (termination: goal reached, lava, ...), and
auto-reset inside ``step``. This adapter steps Navix without its auto-reset
and maps ``step_type`` 2 to ``terminated``, 1 to ``truncated``. The
observation is Navix's own (by default the symbolic ``[H, W, 3]`` uint8 grid;
pass ``observation_fn=navix.observations.rgb`` for pixels), and the step's
randomness is Navix's, drawn from the key kept in its state.

Install with ``pip install "mnemax[navix]"``.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from gymnax.environments import spaces

from mnemax.envs.suite_adapter import SuiteEnv, SuiteParams, require_suite

NAVIX_TRUNCATION = 1
NAVIX_TERMINATION = 2


# The ids of the pinned release (tests/test_env_suites.py checks them against the installed registry),
# listed here so that mnemax.envs.names() need not import the suite.
NAVIX_ENV_IDS = (
    "Navix-Empty-5x5-v0",
    "Navix-Empty-6x6-v0",
    "Navix-Empty-8x8-v0",
    "Navix-Empty-16x16-v0",
    "Navix-Empty-Random-5x5-v0",
    "Navix-Empty-Random-6x6-v0",
    "Navix-Empty-Random-8x8-v0",
    "Navix-Empty-Random-16x16-v0",
    "Navix-DoorKey-5x5-v0",
    "Navix-DoorKey-6x6-v0",
    "Navix-DoorKey-8x8-v0",
    "Navix-DoorKey-16x16-v0",
    "Navix-DoorKey-Random-5x5-v0",
    "Navix-DoorKey-Random-6x6-v0",
    "Navix-DoorKey-Random-8x8-v0",
    "Navix-DoorKey-Random-16x16-v0",
    "Navix-FourRooms-v0",
    "Navix-KeyCorridorS3R1-v0",
    "Navix-KeyCorridorS3R2-v0",
    "Navix-KeyCorridorS3R3-v0",
    "Navix-KeyCorridorS4R3-v0",
    "Navix-KeyCorridorS5R3-v0",
    "Navix-KeyCorridorS6R3-v0",
    "Navix-LavaGapS5-v0",
    "Navix-LavaGapS6-v0",
    "Navix-LavaGapS7-v0",
    "Navix-SimpleCrossingS9N1-v0",
    "Navix-SimpleCrossingS9N2-v0",
    "Navix-SimpleCrossingS9N3-v0",
    "Navix-SimpleCrossingS11N5-v0",
    "Navix-Dynamic-Obstacles-5x5-v0",
    "Navix-Dynamic-Obstacles-5x5-Random-v0",
    "Navix-Dynamic-Obstacles-6x6-v0",
    "Navix-Dynamic-Obstacles-6x6-Random-v0",
    "Navix-Dynamic-Obstacles-8x8-v0",
    "Navix-Dynamic-Obstacles-16x16-v0",
    "Navix-DistShift1-v0",
    "Navix-DistShift2-v0",
    "Navix-GoToDoor-5x5-v0",
    "Navix-GoToDoor-6x6-v0",
    "Navix-GoToDoor-8x8-v0",
)



class NavixEnv(SuiteEnv):
    """One Navix environment with gymnax 1.x ``reset``/``step`` (see the module docstring).

    Args:
      env_id: one of :data:`NAVIX_ENV_IDS` (``navix.registry()``), e.g. ``"Navix-DoorKey-5x5-v0"``.
      max_steps: Navix's time limit (its own default, 100), also ``default_params.max_steps_in_episode``.
      **navix_kwargs: passed to ``navix.make`` (``observation_fn``, ``reward_fn``, ...).
    """

    prefix = "navix/"

    def __init__(self, env_id: str, max_steps: int = 100, **navix_kwargs: Any):
        require_suite("navix", "Navix", "navix")
        if env_id not in NAVIX_ENV_IDS:
            raise ValueError(f"Navix has no environment {env_id!r}; mnemax.envs.names() lists the navix/ ids.")
        if int(max_steps) < 1:
            raise ValueError(f"max_steps must be a positive number of steps, got {max_steps}.")
        import navix

        self.env_id = env_id
        self.navix_env = navix.make(env_id, max_steps=int(max_steps), **navix_kwargs)
        # Navix's Discrete.n is a JAX array; read it once here so action_space also builds inside jit.
        self.action_count = int(np.asarray(self.navix_env.action_space.maximum)) + 1

    @property
    def default_params(self) -> SuiteParams:
        return SuiteParams(max_steps_in_episode=int(self.navix_env.max_steps))

    def suite_reset(self, key: jax.Array, inner_params: Any) -> tuple[jax.Array, Any]:
        timestep = self.navix_env.reset(key)
        return timestep.observation, timestep

    def suite_step(self, key: jax.Array, inner_state: Any, action: jax.Array, inner_params: Any):
        del key  # Navix draws its randomness from the key in its state
        timestep = self.navix_env._step(inner_state, action)  # Navix's step without its auto-reset
        terminated = timestep.step_type == NAVIX_TERMINATION
        time_limit_hit = timestep.step_type == NAVIX_TRUNCATION
        return timestep.observation, timestep, timestep.reward, terminated, time_limit_hit, {}

    @property
    def num_actions(self) -> int:
        return self.action_count

    def action_space(self, params: SuiteParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(self.action_count)

    def observation_space(self, params: SuiteParams | None = None) -> spaces.Box:
        # Navix declares a maximum (8 for the symbolic grid) below the ids it emits (10 and more), so the
        # bounds here are the dtype's: [0, 255] for uint8 observations.
        space = self.navix_env.observation_space
        info = np.iinfo(space.dtype) if np.issubdtype(space.dtype, np.integer) else np.finfo(space.dtype)
        return spaces.Box(info.min, info.max, tuple(space.shape), space.dtype)
