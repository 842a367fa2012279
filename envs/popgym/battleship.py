"""Battleship with the board hidden: the agent fires at cells and hears only "hit" or "miss".

POPGym's Battleship (Morad et al. 2023), on gymnax's API. Ships of
``ship_sizes`` lie on a ``board_size x board_size`` grid, each placed
uniformly at random among the straight segments that fit and do not overlap
the ships placed before it.

- Action: ``Discrete(board_size**2)``, the flat cell index
  ``row * board_size + col``. POPGym's action is ``MultiDiscrete([board_size,
  board_size])`` = ``(row, col)``; the flat index is a bijection, and a
  uniform flat action is a uniform ``(row, col)``.
- Observation: ``[1.]`` after a hit, ``[0.]`` after a miss or at reset, float32
  in ``Box(0, 1, (1,))`` (POPGym: ``Discrete(2)``). Nothing tells the agent
  which cell it fired at: give it its previous action (POPGym marks this env
  ``obs_requires_prev_action``).
- Reward: a hit (a ship cell not fired at before) pays ``1 / n_ship_cells``;
  anything else (water, or a ship cell hit before) costs
  ``1 / (board_size**2 - n_ship_cells)``. Hitting every ship cell once and
  nothing else returns exactly 1; firing at every cell once returns 0.
- Termination when every ship cell is hit; truncation after
  ``board_size**2`` shots. Both are true when the last shot sinks the last ship.

Cheap auto-reset. gymnax's ``step`` draws a reset state on every step and
keeps it only where an episode ended; under ``vmap`` a full board placement
per step would cost about ten steps. Here the state carries the next
episode's board (``spare``), built one ship per step during the current
episode; an episode lasts at least ``sum(ship_sizes)`` shots, more than the
number of ships, so the spare is always complete when it is needed, and
``step`` starts the next episode on it instead of calling ``reset_env``. Each
ship of the spare is still drawn exactly as POPGym draws it, with fresh
randomness, so episodes stay independent. (Only if ``max_steps_in_episode``
is set below the number of ships can an episode end before its spare is
complete; the next episode then replays the finished board.)
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from mnemax.envs.popgym.grid_sampling import sample_marked_cell

DIFFICULTIES = {
    "Easy": {"board_size": 8},
    "Medium": {"board_size": 10},
    "Hard": {"board_size": 12},
}


@struct.dataclass
class EnvState(environment.EnvState):
    board: jax.Array  # [N, N] bool: ship cells
    guesses: jax.Array  # [N, N] bool: cells fired at
    hits: jax.Array  # int32: distinct ship cells hit
    time: int
    spare: jax.Array  # [N, N] bool: the next episode's board, under construction
    spare_ships: jax.Array  # int32: ships placed on ``spare`` so far


@struct.dataclass
class EnvParams(environment.EnvParams):
    max_steps_in_episode: int = 100


def place_ship(uniform: jax.Array, board: jax.Array, size: int | jax.Array, longest: int) -> jax.Array:
    """Add one ship of ``size`` cells to ``board`` ``[N, N]`` bool, uniform over the free straight segments.

    POPGym draws a random end cell, axis and direction and retries until the
    segment fits and is free; every segment then has the same chance (two of
    the proposals make it), so one uniform draw (``uniform``, a U[0, 1)
    number) over the free segments has the same law without the loop.
    ``size`` may be traced; ``longest`` (static) bounds it.
    """
    n = board.shape[0]
    # Cells past the edge count as occupied, so a segment that leaves the board is never free.
    edge = longest - 1
    occupied = jnp.pad(board.astype(jnp.int32), ((0, edge), (0, edge)), constant_values=1)
    # across[r, c]: occupied cells in row r, columns c..c+size-1; down[c, r]: in column c, rows r..r+size-1.
    across = sum(jnp.where(i < size, occupied[:n, i : i + n], 0) for i in range(longest))  # [N, N]
    down = sum(jnp.where(i < size, occupied[i : i + n, :n], 0) for i in range(longest)).T  # [N, N]
    line, start = sample_marked_cell(uniform, jnp.concatenate([across, down]) == 0)  # line in [0, 2N)
    is_down = line >= n
    line = line % n
    rows = jnp.arange(n)[:, None]
    cols = jnp.arange(n)[None, :]
    ship_across = (rows == line) & (cols >= start) & (cols < start + size)
    ship_down = (cols == line) & (rows >= start) & (rows < start + size)
    return board | jnp.where(is_down, ship_down, ship_across)


def place_ships(key: jax.Array, board_size: int, ship_sizes: Sequence[int]) -> jax.Array:
    """A fresh ``[N, N]`` bool board holding ``ship_sizes``, placed one after the other as POPGym does."""
    board = jnp.zeros((board_size, board_size), jnp.bool_)
    for uniform, size in zip(jax.random.uniform(key, (len(ship_sizes),)), ship_sizes):
        board = place_ship(uniform, board, size, max(ship_sizes))
    return board


class Battleship(environment.Environment[EnvState, EnvParams]):
    """Hidden-board Battleship: find every ship cell from hit/miss feedback alone."""

    def __init__(self, board_size: int = 10, ship_sizes: Sequence[int] = (2, 3, 3, 4)):
        super().__init__()
        ship_sizes = tuple(ship_sizes)
        if isinstance(board_size, bool) or not isinstance(board_size, int) or board_size < 2:
            raise ValueError(f"board_size must be an integer of at least 2, got {board_size!r}; pass e.g. 10.")
        if not ship_sizes or any(not isinstance(s, int) or not 1 <= s <= board_size for s in ship_sizes):
            raise ValueError(
                f"ship_sizes must be a non-empty list of integers in [1, board_size={board_size}], got {ship_sizes!r}."
            )
        if sum(ship_sizes) > board_size**2 // 2:
            raise ValueError(
                f"ships {ship_sizes} cover {sum(ship_sizes)} cells, more than half of a {board_size}x{board_size} "
                "board, so placement can fail; use fewer or shorter ships or a larger board."
            )
        self.board_size = board_size
        self.ship_sizes = ship_sizes
        self.ship_cells = sum(ship_sizes)

    @property
    def default_params(self) -> EnvParams:
        return EnvParams(max_steps_in_episode=self.board_size**2)

    def step_env(self, key: jax.Array, state: EnvState, action: jax.Array, params: EnvParams):
        row, col = jnp.divmod(jnp.asarray(action, jnp.int32), self.board_size)
        hit = state.board[row, col] & ~state.guesses[row, col]
        hits = state.hits + hit.astype(jnp.int32)
        misses_allowed = self.board_size**2 - self.ship_cells
        reward = jnp.where(hit, 1.0 / self.ship_cells, -1.0 / misses_allowed).astype(jnp.float32)
        # One more ship on the next episode's board, until it has them all.
        building = state.spare_ships < len(self.ship_sizes)
        size = jnp.asarray(self.ship_sizes)[jnp.minimum(state.spare_ships, len(self.ship_sizes) - 1)]
        grown = place_ship(jax.random.uniform(key), state.spare, size, max(self.ship_sizes))
        state = EnvState(
            board=state.board,
            guesses=state.guesses.at[row, col].set(True),
            hits=hits,
            time=state.time + 1,
            spare=jnp.where(building, grown, state.spare),
            spare_ships=state.spare_ships + building.astype(jnp.int32),
        )
        obs = hit.astype(jnp.float32)[None]
        return obs, state, reward, self.is_terminated(state, params), {}

    def _start_episode(self, board: jax.Array) -> tuple[jax.Array, EnvState]:
        empty = jnp.zeros((self.board_size, self.board_size), jnp.bool_)
        state = EnvState(board=board, guesses=empty, hits=jnp.int32(0), time=0, spare=empty, spare_ships=jnp.int32(0))
        return jnp.zeros(1, jnp.float32), state

    def reset_env(self, key: jax.Array, params: EnvParams):
        board_key, spare_key = jax.random.split(key)
        obs, state = self._start_episode(place_ships(board_key, self.board_size, self.ship_sizes))
        spare = place_ships(spare_key, self.board_size, self.ship_sizes)
        return obs, state.replace(spare=spare, spare_ships=jnp.int32(len(self.ship_sizes)))

    @functools.partial(jax.jit, static_argnames=("self",))
    def step(self, key: jax.Array, state: EnvState, action: Any, params: EnvParams | None = None):
        """gymnax's ``step`` (auto-reset, ``info["final_observation"]``), restarting on the pre-drawn board."""
        if params is None:
            params = self.default_params
        obs_st, state_st, reward, terminated, info = self.step_env(key, state, action, params)
        truncated = self.is_truncated(state_st, params)
        done = terminated | truncated
        ready = state_st.spare_ships == len(self.ship_sizes)
        obs_re, state_re = self._start_episode(jnp.where(ready, state_st.spare, state_st.board))
        state = jax.tree.map(lambda fresh, old: jax.lax.select(done, fresh, old), state_re, state_st)
        obs = jax.lax.select(done, obs_re, obs_st)
        info = {**info, "terminated": terminated, "truncated": truncated, "final_observation": obs_st}
        return obs, state, reward, terminated, truncated, info

    def is_terminated(self, state: EnvState, params: EnvParams) -> jax.Array:
        return state.hits == self.ship_cells

    def observation_space(self, params: EnvParams) -> spaces.Box:
        return spaces.Box(0.0, 1.0, (1,), jnp.float32)

    def action_space(self, params: Any = None) -> spaces.Discrete:
        return spaces.Discrete(self.board_size**2)

    @property
    def num_actions(self) -> int:
        return self.board_size**2
