"""Mazes for POPGym's labyrinth families: generation, the 3x3 view, movement.

A maze of ``h x w`` cells lives on a ``[H, W] = [2h + 1, 2w + 1]`` grid: cells
sit at odd coordinates, the squares between two cells are walls or passages,
and the outer ring is wall except for the two doors. popgym draws its mazes
with mazelib's Hunt-and-Kill generator (random hunt order) and puts the start
and the exit on opposite outer walls; this module does the same in JAX with
static shapes.

Hunt-and-Kill carves a random walk into unvisited cells; when the walk is
stuck it "hunts" for a visited cell that still has an unvisited neighbour and
walks on from there. mazelib hunts by drawing uniform random cells until one
qualifies, so the cell it restarts from is uniform over the qualifying cells;
here that cell is drawn directly from them. Every iteration therefore carves
exactly one new cell, and a maze of ``n`` cells takes ``n - 1`` iterations of
fixed cost: a ``while_loop`` when a whole maze is needed at once, or a few
iterations per environment step on a :class:`MazeDraft` kept in the state
(see :class:`MazeEnv`), so that the automatic reset never pays for a whole
maze. mazelib stops after ``H * W`` hunts and so could leave a cell
unreached (none did in 6000 of its mazes we drew); this generator always
finishes, so every maze is perfect (a spanning tree of the cells).

:class:`MazeEnv` holds what both labyrinth families share: the grid, the
agent's position, the observation (the 3x3 neighbourhood plus the previous
action), movement, and the automatic reset that swaps in the pre-drawn maze.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

from mnemax.envs.popgym.prepared_reset import PreparedResetEnvironment

# Cell codes of popgym's maze grid (popgym.core.maze.Cell).
FREE, OBSTACLE, START, GOAL = 0, 1, 2, 3
NUM_CELL_CODES = 5  # popgym also has HIDDEN = 4, used only in its full-state view.
# Actions LEFT, RIGHT, UP, DOWN as (row, column) steps; NO_ACTION is the
# "previous action" shown in the first observation of an episode.
MOVES = np.array([[0, -1], [0, 1], [-1, 0], [1, 0]], dtype=np.int32)
NUM_ACTIONS = 4
NO_ACTION = 4
OBS_SIZE = 10  # 9 cells of the 3x3 view, then the previous action


@struct.dataclass
class MazeDraft:
    """A maze being carved by Hunt-and-Kill, a few cells at a time.

    open: [H, W] bool, True where the grid is passable so far.
    cell: [2] int32, the walk's current cell in cell coordinates (row, col).
    carved: int32 scalar, cells added after the first; the draft is complete
        at ``h * w - 1``.
    key: the randomness kept for turning the draft into an episode: finishing
        it if needed, its doors, and the draft of the maze after it.
    """

    open: jax.Array
    cell: jax.Array
    carved: jax.Array
    key: jax.Array


@struct.dataclass
class MazeLayout:
    """A finished maze with its doors.

    grid: [H, W] int32 cell codes (FREE, OBSTACLE, START; no GOAL yet).
    start: [2] int32 grid position of the start door, on an outer wall.
    end: [2] int32 grid position of the exit door, on the opposite wall.
    """

    grid: jax.Array
    start: jax.Array
    end: jax.Array


def _cell_counts(draft: MazeDraft) -> tuple[int, int]:
    height, width = draft.open.shape
    return height // 2, width // 2


def _pick(uniform: jax.Array, count: jax.Array | int) -> jax.Array:
    """floor(uniform * count), kept below ``count``: a uniform index from one uniform draw."""
    return jnp.minimum(jnp.floor(uniform * count).astype(jnp.int32), jnp.maximum(count - 1, 0))


def _rank_position(cumulative: jax.Array, rank: jax.Array) -> jax.Array:
    """The first index whose running count exceeds ``rank`` (a count, cheaper than argmax)."""
    return jnp.sum(cumulative <= rank).astype(jnp.int32)


def _pick_true(uniform: jax.Array, mask: jax.Array) -> jax.Array:
    """A uniformly chosen index of a True entry of the 1-D ``mask``, from one uniform draw."""
    return _rank_position(jnp.cumsum(mask), _pick(uniform, jnp.sum(mask)))


def _pick_true_2d(uniform: jax.Array, mask: jax.Array) -> jax.Array:
    """A uniformly chosen (row, col) of a True entry of the 2-D ``mask``: [2] int32.

    The row-major rank is found row first, then column: two short running
    counts instead of one over every entry, about twice as fast under vmap.
    Random bits are most of a carve's cost, hence one draw, not a categorical.
    """
    rows = mask.shape[0]
    row_counts = jnp.sum(mask, axis=1)  # [h]
    rank = _pick(uniform, jnp.sum(row_counts))
    row = _rank_position(jnp.cumsum(row_counts), rank)
    rank_in_row = rank - jnp.sum(jnp.where(jnp.arange(rows) < row, row_counts, 0))
    row_mask = jnp.any(mask & (jnp.arange(rows) == row)[:, None], axis=0)  # [w]
    col = _rank_position(jnp.cumsum(row_mask), rank_in_row)
    return jnp.stack([row, col])


def start_draft(key: jax.Array, cells_high: int, cells_wide: int) -> MazeDraft:
    """An all-wall grid with one uniformly chosen cell opened, where the walk begins."""
    cell_key, kept_key = jax.random.split(key)
    uniforms = jax.random.uniform(cell_key, (2,))
    cell = jnp.stack([_pick(uniforms[0], cells_high), _pick(uniforms[1], cells_wide)])
    open_grid = jnp.zeros((2 * cells_high + 1, 2 * cells_wide + 1), dtype=bool)
    open_grid = open_grid.at[2 * cell[0] + 1, 2 * cell[1] + 1].set(True)
    return MazeDraft(open=open_grid, cell=cell, carved=jnp.int32(0), key=kept_key)


def is_complete(draft: MazeDraft) -> jax.Array:
    """Whether every cell of the draft has been reached."""
    cells_high, cells_wide = _cell_counts(draft)
    return draft.carved >= cells_high * cells_wide - 1


def carve_one(uniforms: jax.Array, draft: MazeDraft) -> MazeDraft:
    """One Hunt-and-Kill iteration: open one new cell and the wall leading to it.

    If the walk's cell has unvisited neighbours it continues from there;
    otherwise it restarts from a uniformly drawn visited cell that has some
    (the hunt). The neighbour is uniform among the unvisited ones.
    ``uniforms``: [2] draws in [0, 1), for the hunt and for the neighbour.
    A complete draft is returned unchanged.
    """
    unvisited = ~draft.open[1::2, 1::2]  # [h, w]
    # free_side[a, i, j]: the neighbour of cell (i, j) in direction MOVES[a] exists and is unvisited.
    free_side = jnp.stack(
        [
            jnp.pad(unvisited[:, :-1], ((0, 0), (1, 0))),
            jnp.pad(unvisited[:, 1:], ((0, 0), (0, 1))),
            jnp.pad(unvisited[:-1, :], ((1, 0), (0, 0))),
            jnp.pad(unvisited[1:, :], ((0, 1), (0, 0))),
        ]
    )  # [4, h, w]
    can_grow = free_side.any(axis=0) & ~unvisited  # [h, w]
    walk_on = can_grow[draft.cell[0], draft.cell[1]]
    cell = jnp.where(walk_on, draft.cell, _pick_true_2d(uniforms[0], can_grow))
    step = jnp.asarray(MOVES)[_pick_true(uniforms[1], free_side[:, cell[0], cell[1]])]
    target = cell + step
    active = ~is_complete(draft)
    wall = 2 * cell + 1 + step
    room = 2 * target + 1
    open_grid = draft.open.at[wall[0], wall[1]].set(draft.open[wall[0], wall[1]] | active)
    open_grid = open_grid.at[room[0], room[1]].set(open_grid[room[0], room[1]] | active)
    return draft.replace(
        open=open_grid,
        cell=jnp.where(active, target, draft.cell),
        carved=draft.carved + active.astype(jnp.int32),
    )


def advance_draft(key: jax.Array, draft: MazeDraft, iterations: int) -> MazeDraft:
    """Run ``iterations`` (static) Hunt-and-Kill iterations on ``draft``."""
    uniforms = jax.random.uniform(key, (iterations, 2))
    for i in range(iterations):
        draft = carve_one(uniforms[i], draft)
    return draft


def finish_draft(key: jax.Array, draft: MazeDraft, needed: jax.Array | bool = True) -> MazeDraft:
    """Carve until the draft is complete, but only where ``needed``.

    A ``while_loop``: under ``vmap`` it runs as many iterations as the least
    finished draft that is ``needed`` still lacks, zero when all are done.
    """
    needed = jnp.asarray(needed, dtype=bool)
    return jax.lax.while_loop(
        lambda d: needed & ~is_complete(d),
        lambda d: carve_one(jax.random.uniform(jax.random.fold_in(key, d.carved), (2,)), d),
        draft,
    )


def place_doors(key: jax.Array, open_grid: jax.Array) -> MazeLayout:
    """Put the start on a uniformly chosen outer wall and the exit on the opposite one.

    As mazelib's outer entrances: each door faces a uniformly drawn cell of
    its wall (odd coordinate), the two drawn independently. The start square
    becomes START; the exit square stays wall until a family marks it.
    """
    height, width = open_grid.shape
    uniforms = jax.random.uniform(key, (3,))
    side = _pick(uniforms[0], 4)  # 0 north, 1 south, 2 west, 3 east (the start's wall)
    on_row_wall = side < 2
    along = jnp.where(on_row_wall, width // 2, height // 2)
    start_along = 2 * _pick(uniforms[1], along) + 1
    end_along = 2 * _pick(uniforms[2], along) + 1
    start_wall = jnp.array([0, height - 1, 0, width - 1], dtype=jnp.int32)[side]
    end_wall = jnp.array([height - 1, 0, width - 1, 0], dtype=jnp.int32)[side]
    start = jnp.where(on_row_wall, jnp.stack([start_wall, start_along]), jnp.stack([start_along, start_wall]))
    end = jnp.where(on_row_wall, jnp.stack([end_wall, end_along]), jnp.stack([end_along, end_wall]))
    grid = jnp.where(open_grid, FREE, OBSTACLE).astype(jnp.int32)
    grid = grid.at[start[0], start[1]].set(START)
    return MazeLayout(grid=grid, start=start, end=end)


def local_view(grid: jax.Array, position: jax.Array) -> jax.Array:
    """The 3x3 neighbourhood of ``position`` in ``grid``, row-major: [9] int32.

    Off-grid squares read OBSTACLE. This keeps popgym's window exactly: the
    window starts at ``max(row - 1, 0)`` and then holds the squares up to
    ``row + 1``, padded at the end, so on the top (left) edge the agent's own
    square is the first row (column) of the view, not the middle one; the
    column bound is taken from the grid's row count, as popgym does.
    """
    height, width = grid.shape
    offsets = jnp.arange(3)
    rows = jnp.maximum(position[0] - 1, 0) + offsets
    cols = jnp.maximum(position[1] - 1, 0) + offsets
    rows_in = (rows <= position[0] + 1) & (rows < height)
    cols_in = (cols <= jnp.minimum(position[1] + 1, height)) & (cols < width)
    view = grid[jnp.clip(rows, 0, height - 1)[:, None], jnp.clip(cols, 0, width - 1)[None, :]]
    return jnp.where(rows_in[:, None] & cols_in[None, :], view, OBSTACLE).reshape(9)


def move(grid: jax.Array, position: jax.Array, action: jax.Array) -> jax.Array:
    """The position after ``action`` (0 left, 1 right, 2 up, 3 down): [2] int32.

    The target is clipped to the grid; a wall keeps the agent where it is.
    """
    bounds = jnp.array(grid.shape, dtype=jnp.int32) - 1
    target = jnp.clip(position + jnp.asarray(MOVES)[action], 0, bounds)
    blocked = grid[target[0], target[1]] == OBSTACLE
    return jnp.where(blocked, position, target)


@struct.dataclass
class MazeParams(environment.EnvParams):
    """The time limit, which also sets the step penalty, as in popgym.

    popgym's ``episode_length`` (1024) is ``max_steps_in_episode + 1``: an
    episode is truncated once 1023 steps have been taken, and each step
    costs ``1 / 1024``.
    """

    max_steps_in_episode: int = 1023

    @property
    def step_penalty(self) -> jax.Array:
        return jnp.float32(1.0) / (self.max_steps_in_episode + 1)


@struct.dataclass
class MazeState(environment.EnvState):
    """What every labyrinth state holds.

    grid: [H, W] int32 cell codes; position: [2] int32 (row, col);
    last_action: int32, NO_ACTION at the start of an episode;
    next_maze: the next episode's maze, carved a few cells per step.
    """

    grid: jax.Array
    position: jax.Array
    last_action: jax.Array
    next_maze: MazeDraft


def _validate(maze_dims: Any, episode_length: Any) -> tuple[int, int]:
    dims = tuple(maze_dims) if isinstance(maze_dims, (tuple, list)) else ()
    integers = all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in dims)
    if len(dims) != 2 or not integers or any(d < 6 or d % 2 for d in dims):
        raise ValueError(
            f"maze_dims={maze_dims!r} is not valid: give (height, width) as two even integers of at least 6, "
            "e.g. (10, 10), as popgym (mazelib needs 3 cells a side)."
        )
    if isinstance(episode_length, bool) or not isinstance(episode_length, int) or episode_length < 2:
        raise ValueError(f"episode_length={episode_length!r} is not valid: give an integer of at least 2, e.g. 1024.")
    return dims[0] // 2, dims[1] // 2


class MazeEnv(PreparedResetEnvironment):
    """Shared machinery of LabyrinthEscape and LabyrinthExplore.

    Subclasses name their ``EnvState`` / ``EnvParams`` and define
    :meth:`_begin_episode` (a state on a fresh layout), :meth:`_score` (the
    reward of a move) and ``is_terminated``. The automatic reset follows the
    "optimistic reset" pattern of :mod:`~mnemax.envs.popgym.prepared_reset`:
    gymnax's would build a whole maze on every step, whereas here the state
    carries the next maze as a draft, carved ``carves_per_step`` cells per
    step, enough to be complete before the shortest possible episode ends;
    :meth:`restart` turns the draft into the next episode (finishing it on
    the spot if an episode was shorter still, e.g. under a tiny time limit).

    Args:
        maze_dims: (height, width) of the maze in grid squares, both even;
            the grid is (height + 1) x (width + 1) with the outer wall.
        episode_length: sets the step penalty and the time limit (see ``EnvParams``).
    """

    params_type: type = MazeParams  # each family's ``EnvParams``

    def __init__(self, maze_dims: tuple[int, int] = (10, 10), episode_length: int = 1024):
        super().__init__()
        self.cells_high, self.cells_wide = _validate(maze_dims, episode_length)
        self.maze_dims = (int(maze_dims[0]), int(maze_dims[1]))
        self.episode_length = episode_length
        cells = self.cells_high * self.cells_wide
        self.carves_per_step = max(1, math.ceil((cells - 1) / self.min_episode_steps))

    @property
    def default_params(self) -> MazeParams:
        return self.params_type(max_steps_in_episode=self.episode_length - 1)

    # --- family-specific -------------------------------------------------
    @property
    def min_episode_steps(self) -> int:
        """The fewest steps an episode can take (sets how fast the next maze is carved)."""
        raise NotImplementedError

    def _begin_episode(self, layout: MazeLayout, next_maze: MazeDraft) -> MazeState:
        raise NotImplementedError

    def _score(self, before: MazeState, after: MazeState, params: Any) -> tuple[MazeState, jax.Array]:
        """The state (with any bookkeeping of the move) and float32 reward of the move ``before`` -> ``after``."""
        raise NotImplementedError

    def is_terminated(self, state: MazeState, params: Any) -> jax.Array:
        raise NotImplementedError

    # --- shared ------------------------------------------------------------
    def observation(self, state: MazeState) -> jax.Array:
        """[10] float32: the 3x3 view of popgym's cell codes, then the previous action."""
        view = local_view(state.grid, state.position)
        return jnp.concatenate([view, state.last_action[None]]).astype(jnp.float32)

    def _episode_from(self, draft: MazeDraft, needed: jax.Array | bool) -> tuple[jax.Array, MazeState]:
        finish_key, door_key, successor_key = jax.random.split(draft.key, 3)
        open_grid = finish_draft(finish_key, draft, needed).open
        layout = place_doors(door_key, open_grid)
        state = self._begin_episode(layout, start_draft(successor_key, self.cells_high, self.cells_wide))
        return self.observation(state), state

    def reset_env(self, key: jax.Array, params: Any) -> tuple[jax.Array, MazeState]:
        return self._episode_from(start_draft(key, self.cells_high, self.cells_wide), True)

    def restart(self, state: MazeState, params: Any) -> tuple[jax.Array, MazeState]:
        """The episode on the maze drafted in ``state``; the draft is finished only if the episode is over."""
        done = self.is_terminated(state, params) | self.is_truncated(state, params)
        return self._episode_from(state.next_maze, done)

    def step_env(
        self, key: jax.Array, state: MazeState, action: int | jax.Array, params: Any
    ) -> tuple[jax.Array, MazeState, jax.Array, jax.Array, dict[str, Any]]:
        action = jnp.asarray(action, dtype=jnp.int32)
        after = state.replace(
            position=move(state.grid, state.position, action),
            last_action=action,
            time=state.time + 1,
            next_maze=advance_draft(key, state.next_maze, self.carves_per_step),
        )
        after, reward = self._score(state, after, params)
        return self.observation(after), after, reward, self.is_terminated(after, params), {}

    def is_truncated(self, state: MazeState, params: Any) -> jax.Array:
        return state.time >= params.max_steps_in_episode

    @property
    def num_actions(self) -> int:
        return NUM_ACTIONS

    def action_space(self, params: Any = None) -> spaces.Discrete:
        return spaces.Discrete(NUM_ACTIONS)

    def observation_space(self, params: Any = None) -> spaces.Box:
        return spaces.Box(0.0, float(NUM_CELL_CODES - 1), (OBS_SIZE,), jnp.float32)

    def grid_shape(self) -> tuple[int, int]:
        """[H, W] of the grid: two squares per cell plus the outer wall."""
        return 2 * self.cells_high + 1, 2 * self.cells_wide + 1
