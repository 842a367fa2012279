"""Craftax behind gymnax's 1.x interface: ``make("craftax/Craftax-Symbolic-v1")``.

Craftax (Matthews et al., 2024) is an open-ended survival game in JAX; its
classic variant re-implements Crafter. Its envs speak gymnax 0.0.x: one
``done`` that is true when the player dies, beats the final boss, *or* reaches
``params.max_timesteps`` (100 000 steps; 10 000 for Classic). This adapter
splits that flag: the death or the boss is ``terminated``; the step limit is
``truncated``. The observation is Craftax's own: a float32 vector
(``Symbolic``) or float32 RGB in [0, 1] (``Pixels``). ``info`` carries
Craftax's achievement flags.

Install with ``pip install "mnemax[craftax]"``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from mnemax.envs.auto_reset import check_reset_ratio
from mnemax.envs.suite_adapter import LegacyGymnaxSuiteEnv, SuiteParams, require_suite

CRAFTAX_ENV_IDS = (
    "Craftax-Symbolic-v1",
    "Craftax-Pixels-v1",
    "Craftax-Classic-Symbolic-v1",
    "Craftax-Classic-Pixels-v1",
)

_NEVER = jnp.iinfo(jnp.int32).max


class CraftaxEnv(LegacyGymnaxSuiteEnv):
    """One Craftax game with gymnax 1.x ``reset``/``step`` (see the module docstring).

    Args:
      env_id: one of :data:`CRAFTAX_ENV_IDS`.
      reset_ratio: vmapped copies per freshly generated world on each step (mnemax.envs.auto_reset);
        16, as in Craftax's own PPO baseline, makes the world generation about 16x rarer; 1 gives
        every copy whose episode ended a world of its own, as gymnax's auto-reset does.
    """

    prefix = "craftax/"

    def __init__(self, env_id: str, reset_ratio: int = 16):
        require_suite("craftax", "Craftax", "craftax")
        if env_id not in CRAFTAX_ENV_IDS:
            raise ValueError(f"Craftax has no environment {env_id!r}; choose one of {', '.join(CRAFTAX_ENV_IDS)}.")
        self.reset_ratio = check_reset_ratio(reset_ratio)
        from craftax.craftax_env import make_craftax_env_from_name

        self.env_id = env_id
        self.legacy_env = make_craftax_env_from_name(env_id, auto_reset=False)
        self.legacy_params = self.legacy_env.default_params

    @property
    def default_params(self) -> SuiteParams:
        return SuiteParams(max_steps_in_episode=int(self.legacy_params.max_timesteps), inner=self.legacy_params)

    def split_done(self, done: jax.Array, inner_state: Any, inner_params: Any, info: dict) -> tuple[jax.Array, jax.Array]:
        # Craftax's game-over test with the step limit taken out: died or beat the boss.
        terminated = self.legacy_env.is_terminal(inner_state, inner_params.replace(max_timesteps=_NEVER))
        return terminated, inner_state.timestep >= inner_params.max_timesteps
