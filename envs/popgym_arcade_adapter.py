"""POPGym Arcade behind gymnax's 1.x interface: ``make("popgym_arcade/CountRecallEasy", partial_obs=True)``.

POPGym Arcade (Wang et al., 2025) renders each game as ``[obs_size, obs_size, 3]``
uint8 pixels (``obs_size`` 128 or 256) and gives every game an MDP twin:
``partial_obs=False`` (the suite's default) shows the full state,
``partial_obs=True`` hides part of it, the memory task. Its envs speak gymnax
0.0.x, with one ``done`` for game over and time limit and ``info["truncated"]``
for the time limit; this adapter makes a ``done`` with ``info["truncated"]``
``truncated`` and any other ``done`` ``terminated``. Pixels stay uint8.

The package's dependency ``stable-gymnax`` installs a fork of gymnax 0.0.x
under the module name ``gymnax``, over mnemax's gymnax 1.x, so the
``popgym_arcade`` extra installs POPGym Arcade without it (its envs run on
gymnax 1.x unchanged): ``pip install "mnemax[popgym_arcade]"`` then
``pip install --no-deps popgym-arcade``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from gymnax.environments import environment

from mnemax.envs.suite_adapter import LegacyGymnaxSuiteEnv, SuiteParams, require_suite

# Longer than any POPGym Arcade game's own limit, used for games that keep their limit private.
_UNSTATED_LIMIT = 1_000_000

POPGYM_ARCADE_INSTALL = 'pip install "mnemax[popgym_arcade]" && pip install --no-deps popgym-arcade'

# The ids of the pinned release (tests/test_env_suites.py checks them against the installed registry),
# listed here so that mnemax.envs.names() need not import the suite.
POPGYM_ARCADE_ENV_IDS = (
    "CartPoleEasy",
    "CartPoleMedium",
    "CartPoleHard",
    "NoisyCartPoleEasy",
    "NoisyCartPoleMedium",
    "NoisyCartPoleHard",
    "CountRecallEasy",
    "CountRecallMedium",
    "CountRecallHard",
    "BattleShipEasy",
    "BattleShipMedium",
    "BattleShipHard",
    "AutoEncodeEasy",
    "AutoEncodeMedium",
    "AutoEncodeHard",
    "NavigatorEasy",
    "NavigatorMedium",
    "NavigatorHard",
    "MineSweeperEasy",
    "MineSweeperMedium",
    "MineSweeperHard",
    "SkittlesEasy",
    "SkittlesMedium",
    "SkittlesHard",
    "BreakoutEasy",
    "BreakoutMedium",
    "BreakoutHard",
    "TetrisEasy",
    "TetrisMedium",
    "TetrisHard",)


class PopGymArcadeEnv(LegacyGymnaxSuiteEnv):
    """One POPGym Arcade game with gymnax 1.x ``reset``/``step`` (see the module docstring).

    Args:
      env_id: one of :data:`POPGYM_ARCADE_ENV_IDS` (``popgym_arcade.registration.REGISTERED_ENVIRONMENTS``).
      **arcade_kwargs: passed to the game (``partial_obs``, ``obs_size``, ...).
    """

    prefix = "popgym_arcade/"

    def __init__(self, env_id: str, **arcade_kwargs: Any):
        require_suite("popgym_arcade", "POPGym Arcade", "popgym_arcade", POPGYM_ARCADE_INSTALL)
        if env_id not in POPGYM_ARCADE_ENV_IDS:
            raise ValueError(f"POPGym Arcade has no game {env_id!r}; mnemax.envs.names() lists the popgym_arcade/ ids.")
        import popgym_arcade

        self.env_id = env_id
        self.legacy_env, self.legacy_params = popgym_arcade.make(env_id, **arcade_kwargs)
        # Half of the games put gymnax's discount() in their step's info. In gymnax 1.x discount() reads
        # is_terminated, which these games do not define (gymnax 0.0.x read their is_terminal), so their step
        # raises NotImplementedError. The value only reaches info, which this adapter drops.
        if type(self.legacy_env).is_terminated is environment.Environment.is_terminated:
            self.legacy_env.is_terminated = self.legacy_env.is_terminal

    @property
    def default_params(self) -> SuiteParams:
        own = getattr(self.legacy_env, "max_steps_in_episode", getattr(self.legacy_env, "max_episode_length", None))
        return SuiteParams(max_steps_in_episode=_UNSTATED_LIMIT if own is None else int(own), inner=self.legacy_params)

    def split_done(self, done: jax.Array, inner_state: Any, inner_params: Any, info: dict) -> tuple[jax.Array, jax.Array]:
        time_limit_hit = jnp.logical_and(done, jnp.asarray(info.get("truncated", False), bool))
        return jnp.logical_and(done, jnp.logical_not(time_limit_hit)), time_limit_hit

    def step_info(self, info: dict) -> dict:
        return {}  # only the game's own terminated/truncated flags, which gymnax's step replaces
