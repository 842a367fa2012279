"""LabyrinthExplore (POPGym): visit every square of a maze seen only through a 3x3 window.

The agent starts at a door on an outer wall of a Hunt-and-Kill maze. Entering
a square for the first time pays ``1 / F``, F the number of FREE squares of
the maze (so exploring all of them pays 1); any other step costs
``1 / episode_length``. The episode terminates once every open square has been
visited. The observation is the 3x3 neighbourhood of popgym's cell codes
(FREE 0, OBSTACLE 1, START 2) and the previous action; the exit door of the
maze generator stays a wall here, as in popgym. See :mod:`mnemax.envs.popgym.maze`.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from mnemax.envs.popgym.maze import FREE, OBSTACLE, MazeDraft, MazeEnv, MazeLayout, MazeParams, MazeState, NO_ACTION

DIFFICULTIES: dict[str, dict[str, Any]] = {
    "Easy": {"maze_dims": (10, 10), "episode_length": 1024},
    "Medium": {"maze_dims": (14, 14), "episode_length": 1024},
    "Hard": {"maze_dims": (18, 18), "episode_length": 1024},
}


@struct.dataclass
class EnvState(MazeState):
    """The maze, the agent's position, the next maze in the making, and

    explored: [H, W] bool, the squares visited this episode (the start included).
    """

    explored: jax.Array


@struct.dataclass
class EnvParams(MazeParams):
    """``max_steps_in_episode`` (episode_length - 1): truncation after it, a step penalty of 1 / (it + 1)."""


class LabyrinthExplore(MazeEnv):
    """Explore a procedurally generated maze. (Arguments: see :class:`MazeEnv`.)"""

    params_type = EnvParams

    @property
    def min_episode_steps(self) -> int:
        # Every FREE square must be entered once: 2 * cells - 1 of them.
        return 2 * self.cells_high * self.cells_wide - 1

    def _begin_episode(self, layout: MazeLayout, next_maze: MazeDraft) -> EnvState:
        explored = jnp.zeros(layout.grid.shape, dtype=bool).at[layout.start[0], layout.start[1]].set(True)
        return EnvState(
            time=jnp.int32(0),
            grid=layout.grid,
            position=layout.start,
            last_action=jnp.int32(NO_ACTION),
            next_maze=next_maze,
            explored=explored,
        )

    def _score(self, before: EnvState, after: EnvState, params: EnvParams) -> tuple[EnvState, jax.Array]:
        row, col = after.position[0], after.position[1]
        first_visit = ~before.explored[row, col]
        new_square_reward = 1.0 / jnp.sum(after.grid == FREE).astype(jnp.float32)
        reward = jnp.where(first_visit, new_square_reward, -params.step_penalty).astype(jnp.float32)
        return after.replace(explored=before.explored.at[row, col].set(True)), reward

    def is_terminated(self, state: EnvState, params: EnvParams) -> jax.Array:
        """Every square that is not a wall has been visited."""
        return jnp.all(state.explored == (state.grid != OBSTACLE))
