"""LabyrinthEscape (POPGym): find the exit of a maze seen only through a 3x3 window.

The agent starts at a door on one outer wall of a Hunt-and-Kill maze and must
reach the exit door on the opposite wall. Each step costs
``1 / episode_length``; reaching the exit adds 1 and terminates, so returns
lie in (-1, 1). The observation is the 3x3 neighbourhood of popgym's cell
codes (FREE 0, OBSTACLE 1, START 2, GOAL 3) and the previous action; see
:mod:`mnemax.envs.popgym.maze`.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from mnemax.envs.popgym.maze import GOAL, MazeDraft, MazeEnv, MazeLayout, MazeParams, MazeState, NO_ACTION

DIFFICULTIES: dict[str, dict[str, Any]] = {
    "Easy": {"maze_dims": (10, 10), "episode_length": 1024},
    "Medium": {"maze_dims": (14, 14), "episode_length": 1024},
    "Hard": {"maze_dims": (18, 18), "episode_length": 1024},
}


@struct.dataclass
class EnvState(MazeState):
    """The maze with the exit marked GOAL, the agent's position and the next maze in the making."""


@struct.dataclass
class EnvParams(MazeParams):
    """``max_steps_in_episode`` (episode_length - 1): truncation after it, a step penalty of 1 / (it + 1)."""


class LabyrinthEscape(MazeEnv):
    """Escape a procedurally generated maze. (Arguments: see :class:`MazeEnv`.)"""

    params_type = EnvParams

    @property
    def min_episode_steps(self) -> int:
        # The doors sit on opposite walls: at least a grid's side apart.
        return min(self.grid_shape()) - 1

    def _begin_episode(self, layout: MazeLayout, next_maze: MazeDraft) -> EnvState:
        return EnvState(
            time=jnp.int32(0),
            grid=layout.grid.at[layout.end[0], layout.end[1]].set(GOAL),
            position=layout.start,
            last_action=jnp.int32(NO_ACTION),
            next_maze=next_maze,
        )

    def _score(self, before: EnvState, after: EnvState, params: EnvParams) -> tuple[EnvState, jax.Array]:
        reward = self.is_terminated(after, params).astype(jnp.float32) - params.step_penalty
        return after, reward.astype(jnp.float32)

    def is_terminated(self, state: EnvState, params: EnvParams) -> jax.Array:
        """The agent stands on the exit."""
        return state.grid[state.position[0], state.position[1]] == GOAL
