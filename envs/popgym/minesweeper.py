"""MineSweeper with the board hidden: the agent clicks cells and hears only the local mine count.

POPGym's MineSweeper (Morad et al. 2023), on gymnax's API. ``num_mines``
mines lie on distinct cells of a ``rows x cols`` grid, uniformly at random.

- Action: ``Discrete(rows * cols)``, the flat cell index ``row * cols + col``.
  POPGym's action is ``MultiDiscrete([rows, cols])`` = ``(row, col)``; the
  flat index is a bijection, and a uniform flat action is a uniform ``(row, col)``.
- Observation: ``[k]`` float32, ``k`` the number of mines in the 3x3 block
  centred on the clicked cell (the cell itself included, as in POPGym), ``[0.]``
  at reset; in ``Box(0, min(num_mines, 9), (1,))`` (POPGym:
  ``Discrete(min(num_mines + 1, 10))``). Nothing tells the agent which cell it
  clicked: give it its previous action (POPGym marks this env
  ``obs_requires_prev_action``).
- Reward, with ``L = rows * cols - num_mines`` safe cells: revealing a new
  safe cell pays ``1 / L``; clicking a revealed cell costs ``0.5 / (L - 2)``;
  clicking a mine costs ``0.5 + 1 / L`` and terminates. Revealing every safe
  cell once returns exactly 1 (the maximum).
- Termination on a mine or when every safe cell is revealed; truncation after
  ``L`` clicks unless that click terminated (POPGym never reports both).

The mines are laid in ``reset_env``, which gymnax's ``step`` calls on every
step. Unlike Battleship, the next board cannot be built during the episode
(the first click may hit a mine), so the draw is made cheap instead: one
random number and two short prefix sums per mine (``grid_sampling``).
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from mnemax.envs.popgym.grid_sampling import sample_marked_cell

DIFFICULTIES = {
    "Easy": {"dims": (4, 4), "num_mines": 2},
    "Medium": {"dims": (6, 6), "num_mines": 6},
    "Hard": {"dims": (8, 8), "num_mines": 10},
}


@struct.dataclass
class EnvState(environment.EnvState):
    mines: jax.Array  # [R, C] bool
    revealed: jax.Array  # [R, C] bool: safe cells clicked
    exploded: jax.Array  # bool: the last click hit a mine
    time: int


@struct.dataclass
class EnvParams(environment.EnvParams):
    max_steps_in_episode: int = 14


def place_mines(key: jax.Array, dims: tuple[int, int], num_mines: int) -> jax.Array:
    """``[R, C]`` bool with ``num_mines`` distinct cells set, every such set equally likely.

    One mine at a time, each uniform over the cells still free: ``num_mines``
    random numbers rather than a shuffle of the whole grid.
    """
    rows = jnp.arange(dims[0])[:, None]
    cols = jnp.arange(dims[1])[None, :]
    mines = jnp.zeros(dims, jnp.bool_)
    for uniform in jax.random.uniform(key, (num_mines,)):
        row, col = sample_marked_cell(uniform, ~mines)
        mines = mines | ((rows == row) & (cols == col))
    return mines


class MineSweeper(environment.Environment[EnvState, EnvParams]):
    """Hidden-board MineSweeper: reveal every safe cell, remembering where the counts pointed."""

    def __init__(self, dims: Sequence[int] = (4, 4), num_mines: int = 2):
        super().__init__()
        dims = tuple(dims)
        if len(dims) != 2 or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in dims):
            raise ValueError(f"dims must be two positive integers (rows, cols), got {dims!r}; pass e.g. (4, 4).")
        safe_cells = dims[0] * dims[1] - (num_mines if isinstance(num_mines, int) else 0)
        if isinstance(num_mines, bool) or not isinstance(num_mines, int) or num_mines < 1 or safe_cells < 3:
            raise ValueError(
                f"num_mines must be an integer of at least 1 leaving at least 3 safe cells on a {dims} grid "
                f"(the repeat-click penalty divides by safe cells - 2), got {num_mines!r}."
            )
        self.dims = dims
        self.num_mines = num_mines
        self.safe_cells = safe_cells
        self.reveal_reward = 1.0 / safe_cells
        self.mine_reward = -0.5 - self.reveal_reward
        self.repeat_reward = -0.5 / (safe_cells - 2)

    @property
    def default_params(self) -> EnvParams:
        return EnvParams(max_steps_in_episode=self.safe_cells)

    def step_env(self, key: jax.Array, state: EnvState, action: jax.Array, params: EnvParams):
        row, col = jnp.divmod(jnp.asarray(action, jnp.int32), self.dims[1])
        mine = state.mines[row, col]
        seen = state.revealed[row, col]
        reward = jnp.where(mine, self.mine_reward, jnp.where(seen, self.repeat_reward, self.reveal_reward))
        # Mines in the 3x3 block centred on (row, col); the one-cell zero border keeps the block on the grid.
        padded = jnp.pad(state.mines.astype(jnp.int32), 1)
        count = jax.lax.dynamic_slice(padded, (row, col), (3, 3)).sum()
        state = EnvState(
            mines=state.mines,
            revealed=state.revealed.at[row, col].set(seen | ~mine),
            exploded=mine,
            time=state.time + 1,
        )
        obs = count.astype(jnp.float32)[None]
        return obs, state, reward.astype(jnp.float32), self.is_terminated(state, params), {}

    def reset_env(self, key: jax.Array, params: EnvParams):
        state = EnvState(
            mines=place_mines(key, self.dims, self.num_mines),
            revealed=jnp.zeros(self.dims, jnp.bool_),
            exploded=jnp.bool_(False),
            time=0,
        )
        return jnp.zeros(1, jnp.float32), state

    def is_terminated(self, state: EnvState, params: EnvParams) -> jax.Array:
        return state.exploded | jnp.all(state.revealed | state.mines)

    def is_truncated(self, state: EnvState, params: EnvParams) -> jax.Array:
        # POPGym: truncated only when the time limit ends an episode that did not just terminate.
        return (state.time >= params.max_steps_in_episode) & ~self.is_terminated(state, params)

    def observation_space(self, params: EnvParams) -> spaces.Box:
        return spaces.Box(0.0, float(min(self.num_mines, 9)), (1,), jnp.float32)

    def action_space(self, params: Any = None) -> spaces.Discrete:
        return spaces.Discrete(self.dims[0] * self.dims[1])

    @property
    def num_actions(self) -> int:
        return self.dims[0] * self.dims[1]
