"""The gridworld every memory task is built on: movement, the egocentric view, and the scripted tour.

State and conventions shared by the suite:

* The world is a grid of tile codes, padded with ``V`` cells of VOID on every
  side so that the ``V x V`` view never leaves it; positions are in padded
  coordinates (``world_position`` removes the padding).
* Actions: 0 up, 1 right, 2 down, 3 left. A move into a cell whose code is
  not passable leaves the agent where it was.
* Observations are ``[V * P, V * P, 3]`` uint8 frames (32 x 32 x 3 by
  default: ``V = 8`` cells of ``P = 4`` pixels), the agent drawn as a white
  cell at ``(V // 2, V // 2)``. The view is top-down and north-up (it moves
  with the agent but does not turn), and walls do not occlude it.
* ``max_steps_in_episode = episode_length - 1``: an episode has
  ``episode_length`` observations (the reset one included), then it is
  truncated; no memory task terminates early.
* ``context_length``: the first ``context_length`` observations are the
  context (exploration, the cue, the keys); the rest is the query horizon a
  world model must imagine (the revisit, the teleport, the reward, the doors).

The scripted data policy is a *tour*: a sequence of waypoints drawn with the
episode and kept in the state (``state.tour``). :func:`scripted_policy`
walks to the current waypoint, rows first, then columns; the environment
issues the next waypoint when the agent reaches the current one, or when a
move is blocked (a closed door). Each task says which waypoints it issues, in
``_next_target``; the legs between consecutive waypoints are laid out so that
the rows-first walk never meets a wall. Because the waypoints depend only on
the episode's key, a dataset is reproducible from its seed.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

from mnemax.envs.memory import rendering
from mnemax.envs.memory.uniforms import Uniforms, hashed_uniforms, seed_from

UP, RIGHT, DOWN, LEFT = 0, 1, 2, 3
MOVES = np.array([[-1, 0], [0, 1], [1, 0], [0, -1]], np.int32)  # (row, col) step per action
NUM_ACTIONS = 4
TOUR_DRAWS = 4  # uniforms each waypoint may use


@struct.dataclass
class Tour:
    """The scripted policy's plan, carried by the environment state.

    target: [2] int32, the cell the policy walks to.
    count: int32 scalar, how many waypoints have been issued this episode.
    seed: uint32 scalar, the tour's randomness (waypoint ``c`` draws ``hashed_uniforms(seed, c)``).
    """

    target: jax.Array
    count: jax.Array
    seed: jax.Array


@struct.dataclass
class GridState:
    """What every memory task keeps.

    time: int32 steps taken this episode.
    position: [2] int32 agent cell (padded coordinates).
    grid: [Hp, Wp] int32 tile codes of the world, padded with VOID.
    tiles: [K, P, P, 3] uint8 picture of each code, drawn for this episode.
    passable: [K] bool, whether the agent may enter a cell of each code.
    visited: [Hp, Wp] bool, cells the agent has stood on this episode.
    tour: the scripted policy's plan (:class:`Tour`).
    """

    time: jax.Array
    position: jax.Array
    grid: jax.Array
    tiles: jax.Array
    passable: jax.Array
    visited: jax.Array
    tour: Tour


@struct.dataclass
class GridParams(environment.EnvParams):
    """``max_steps_in_episode``: truncation after this many steps (``episode_length - 1`` by default)."""


def scripted_policy(key: jax.Array, state: GridState) -> jax.Array:
    """The data policy of every memory task: one move towards ``state.tour.target``, rows first.

    ``key`` is unused (the tour holds the randomness) and kept so that any
    ``(key, state) -> action`` policy can replace this one. Returns an int32 action.
    """
    del key
    delta = state.tour.target - state.position
    vertical = jnp.where(delta[0] < 0, UP, DOWN)
    horizontal = jnp.where(delta[1] > 0, RIGHT, LEFT)
    return jnp.where(delta[0] != 0, vertical, jnp.where(delta[1] != 0, horizontal, UP)).astype(jnp.int32)


def pad_grid(grid: np.ndarray, margin: int) -> np.ndarray:
    """Surround ``grid`` with ``margin`` cells of VOID on every side."""
    return np.pad(grid, margin, constant_values=rendering.VOID)


class GridMemoryEnv(environment.Environment):
    """Base of the memory suite: gymnax 1.x environment over a tile grid with an egocentric pixel view.

    Subclasses build an episode in ``_new_episode`` and may react to moves in
    ``_enter`` (before the move: doors) and ``_after_move`` (after it: keys,
    teleports, rewards), change what is drawn in ``_view``, and issue the
    scripted tour's waypoints in ``_next_target``.

    Args:
        episode_length: observations per episode (the reset one included).
        context_length: observations in the context phase; the query horizon
            is ``episode_length - context_length`` observations.
        view_cells: cells per side of the egocentric view (``V``).
        tile_pixels: pixels per side of a cell (``P``).
    """

    def __init__(self, episode_length: int, context_length: int, view_cells: int = 8, tile_pixels: int = 4):
        super().__init__()
        for name, value, low in (("episode_length", episode_length, 2), ("view_cells", view_cells, 3), ("tile_pixels", tile_pixels, 1)):
            if not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{type(self).__name__}: {name} must be an integer >= {low}, got {value!r}.")
        if not isinstance(context_length, (int, np.integer)) or not 1 <= context_length < episode_length:
            raise ValueError(
                f"{type(self).__name__}: context_length must be an integer in [1, episode_length) = [1, {episode_length}), "
                f"got {context_length!r}; lengthen the episode or shorten the context."
            )
        self.episode_length = int(episode_length)
        self.context_length = int(context_length)
        self.view_cells = int(view_cells)
        self.tile_pixels = int(tile_pixels)
        self.margin = self.view_cells

    # --- gymnax API -----------------------------------------------------------
    @property
    def default_params(self) -> GridParams:
        return GridParams(max_steps_in_episode=self.episode_length - 1)

    def observation_space(self, params: Any = None) -> spaces.Box:
        side = self.view_cells * self.tile_pixels
        return spaces.Box(0, 255, (side, side, 3), jnp.uint8)

    def action_space(self, params: Any = None) -> spaces.Discrete:
        return spaces.Discrete(NUM_ACTIONS)

    @property
    def num_actions(self) -> int:
        return NUM_ACTIONS

    def reset_env(self, key: jax.Array, params: Any) -> tuple[jax.Array, GridState]:
        uniforms = Uniforms(key, 1 + self.episode_draws)
        tour_seed = seed_from(uniforms.take(1)[0])
        state = self._new_episode(uniforms, tour_seed)
        state = state.replace(visited=state.visited.at[state.position[0], state.position[1]].set(True))
        state = self._issue_waypoint(state, jnp.asarray(True))
        return self.render(state), state

    def step_env(self, key: jax.Array, state: GridState, action: Any, params: Any):
        action = jnp.asarray(action, jnp.int32)
        destination = state.position + jnp.asarray(MOVES)[action]
        state, enter_reward = self._enter(state, destination)
        enters = state.passable[state.grid[destination[0], destination[1]]]
        state = state.replace(position=jnp.where(enters, destination, state.position), time=state.time + 1)
        state, move_reward, jumped = self._after_move(key, state, params)
        state = state.replace(visited=state.visited.at[state.position[0], state.position[1]].set(True))
        reached = jnp.all(state.position == state.tour.target)
        state = self._issue_waypoint(state, reached | ~enters | jumped)
        reward = (enter_reward + move_reward).astype(jnp.float32)
        return self.render(state), state, reward, jnp.asarray(False), {}

    def is_terminated(self, state: GridState, params: Any) -> jax.Array:
        return jnp.asarray(False)

    # --- rendering --------------------------------------------------------------
    def render(self, state: GridState) -> jax.Array:
        """The ``[V * P, V * P, 3]`` uint8 frame the agent sees."""
        window, tiles = self._view(state, rendering.view_window(state.grid, state.position, self.view_cells))
        return rendering.render_window(window, tiles)

    def world_position(self, state: GridState) -> jax.Array:
        """The agent's cell without the padding: ``[2]`` int32 (row, col) in the world grid."""
        return state.position - self.margin

    # --- the scripted tour ------------------------------------------------------
    def _issue_waypoint(self, state: GridState, when: jax.Array) -> GridState:
        """Issue the next waypoint where ``when``; twice if the first equals the agent's cell."""

        def issue(state: GridState) -> GridState:
            tour = state.tour
            target, state = self._next_target(hashed_uniforms(tour.seed, tour.count, TOUR_DRAWS), state)
            return state.replace(tour=tour.replace(target=jnp.asarray(target, jnp.int32), count=tour.count + 1))

        def select(flag: jax.Array, new: GridState, old: GridState) -> GridState:
            return jax.tree.map(lambda a, b: jax.lax.select(flag, a, b), new, old)

        state = select(when, issue(state), state)
        again = when & jnp.all(state.position == state.tour.target)
        return select(again, issue(state), state)

    # --- hooks ------------------------------------------------------------------
    @property
    def episode_draws(self) -> int:
        """How many uniforms ``_new_episode`` takes."""
        raise NotImplementedError

    def _new_episode(self, uniforms: Uniforms, tour_seed: jax.Array) -> GridState:
        """The state at time 0 from ``episode_draws`` uniforms (``tour.target`` is issued afterwards)."""
        raise NotImplementedError

    def _enter(self, state: GridState, destination: jax.Array) -> tuple[GridState, jax.Array]:
        """React to an attempt to enter ``destination`` before passability is checked; returns (state, reward)."""
        return state, jnp.zeros((), jnp.float32)

    def _after_move(self, key: jax.Array, state: GridState, params: Any) -> tuple[GridState, jax.Array, jax.Array]:
        """React to the move (``state.time`` already counts it); returns (state, reward, jumped).

        ``jumped`` is true when the environment moved the agent itself (a
        teleport), so the tour issues a fresh waypoint from the new cell.
        """
        return state, jnp.zeros((), jnp.float32), jnp.asarray(False)

    def _view(self, state: GridState, window: jax.Array) -> tuple[jax.Array, jax.Array]:
        """The ``[V, V]`` codes and ``[K, P, P, 3]`` tiles to draw (a task may show a cue or distractors)."""
        return window, state.tiles

    def _next_target(self, uniforms: jax.Array, state: GridState) -> tuple[jax.Array, GridState]:
        """Waypoint number ``state.tour.count`` of the scripted tour, from ``[TOUR_DRAWS]`` uniforms: ``([2] int32 cell, state)``."""
        raise NotImplementedError


def blank_state(grid: Any, tiles: jax.Array, passable: jax.Array, position: jax.Array, tour_seed: jax.Array) -> dict:
    """The fields of :class:`GridState` for a fresh episode, as keyword arguments for a subclass's state."""
    return dict(
        time=jnp.zeros((), jnp.int32),
        position=jnp.asarray(position, jnp.int32),
        grid=jnp.asarray(grid, jnp.int32),
        tiles=tiles,
        passable=passable,
        visited=jnp.zeros(np.shape(grid), bool),
        tour=Tour(target=jnp.asarray(position, jnp.int32), count=jnp.zeros((), jnp.int32), seed=tour_seed),
    )
