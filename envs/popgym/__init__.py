"""The POPGym memory suite (Morad et al. 2023) ported to JAX on gymnax's 1.x API.

Each family lives in its own module as a class named exactly as in the
original ``popgym`` package, with a module-level ``DIFFICULTIES`` table mapping
"Easy" / "Medium" / "Hard" to constructor keyword arguments. ``POPGYM_ENVS``
maps full names ("RepeatPreviousEasy") to factories ``(**kwargs) -> (env,
params)``; keyword arguments override the difficulty's settings.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

# family name -> module under mnemax.envs.popgym
FAMILIES: dict[str, str] = {
    "Autoencode": "autoencode",
    "Battleship": "battleship",
    "Concentration": "concentration",
    "CountRecall": "count_recall",
    "HigherLower": "higher_lower",
    "LabyrinthEscape": "labyrinth_escape",
    "LabyrinthExplore": "labyrinth_explore",
    "MineSweeper": "minesweeper",
    "MultiarmedBandit": "multiarmed_bandit",
    "NoisyPositionOnlyCartPole": "noisy_position_only_cartpole",
    "NoisyPositionOnlyPendulum": "noisy_position_only_pendulum",
    "PositionOnlyCartPole": "position_only_cartpole",
    "PositionOnlyPendulum": "position_only_pendulum",
    "RepeatFirst": "repeat_first",
    "RepeatPrevious": "repeat_previous",
    "VelocityOnlyCartPole": "velocity_only_cartpole",
}
LEVELS = ("Easy", "Medium", "Hard")


def _factory(family: str, level: str) -> Callable[..., tuple[Any, Any]]:
    def make(**kwargs: Any) -> tuple[Any, Any]:
        module = importlib.import_module(f"{__name__}.{FAMILIES[family]}")
        env = getattr(module, family)(**{**module.DIFFICULTIES[level], **kwargs})
        return env, env.default_params

    make.__doc__ = f"Build popgym/{family}{level}."
    return make


POPGYM_ENVS: dict[str, Callable[..., tuple[Any, Any]]] = {
    f"{family}{level}": _factory(family, level) for family in FAMILIES for level in LEVELS
}

__all__ = ["FAMILIES", "LEVELS", "POPGYM_ENVS"]
