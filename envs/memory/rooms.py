"""Long-term imagination (S4WM's first task set): TwoRooms, FourRooms, TenRooms.

A ``rows x cols`` grid of square rooms (``room_size`` free cells a side),
each joined to its neighbours by a doorway in the middle of the shared wall.
Every episode draws each room's wall colour and ``objects_per_room`` objects
(random shape, colour and cell), so a room can be told apart only by what was
seen in it. There is no reward.

The scripted tour (the data of the paper: explore, then revisit):

* exploration: the rooms in a snake order (a Hamiltonian path of the room
  grid, one of its eight reflections at random); in each room the agent walks
  from the centre to each of ``points_per_room`` random cells and back;
* revisit: a random walk along the same path of rooms; at a room's centre it
  either steps to a neighbouring room's centre or detours to one of that
  room's exploration cells and back.

Every leg of the revisit is a leg walked during exploration, so from the
end of exploration on the agent only stands where it stood before, and (the
world being static) sees only frames it saw before. The constructor checks
that exploration ends within ``context_length`` observations.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from mnemax.envs.memory import rendering
from mnemax.envs.memory.gridworld import GridMemoryEnv, GridState, blank_state, pad_grid
from mnemax.envs.memory.uniforms import Uniforms, integers, subset
from mnemax.envs.memory.uniforms import colours as random_colours

WALL0 = 2  # code of the first room's wall; room r's wall is WALL0 + r, objects follow the walls


@struct.dataclass
class RoomsState(GridState):
    """GridState plus the tour's rooms.

    order: [R] int32 rooms in exploration order (a snake through the room grid).
    rank: [R] int32 place of each room in ``order``.
    points: [R, k, 2] int32 cells (padded coordinates) visited from each room's centre.
    """

    order: jax.Array
    rank: jax.Array
    points: jax.Array


class RoomLayout:
    """The static geometry of a ``rows x cols`` room grid, in numpy, padded by ``margin``.

    grid: [Hp, Wp] int32 codes (walls coloured per room, FLOOR inside and in doorways).
    centres: [R, 2] centre cell of each room.
    interiors: [R, S * S, 2] free cells of each room.
    room_of: [Hp, Wp] int32 room index of free cells and doorways, -1 elsewhere.
    snakes: [8, R] int32 the snake orders (the path under the 8 reflections of the room grid).
    """

    def __init__(self, rows: int, cols: int, room_size: int, margin: int):
        self.rows, self.cols, self.room_size, self.margin = rows, cols, room_size, margin
        stride = room_size + 1
        height, width = rows * stride + 1, cols * stride + 1
        wall_room = (
            np.minimum(np.arange(height)[:, None] // stride, rows - 1) * cols
            + np.minimum(np.arange(width)[None, :] // stride, cols - 1)
        )
        grid = WALL0 + wall_room
        room_of = np.full((height, width), -1, np.int32)
        centres, interiors = [], []
        for r, c in itertools.product(range(rows), range(cols)):
            top, left = r * stride + 1, c * stride + 1
            grid[top : top + room_size, left : left + room_size] = rendering.FLOOR
            room_of[top : top + room_size, left : left + room_size] = r * cols + c
            centres.append((top + room_size // 2, left + room_size // 2))
            cells = [(top + i, left + j) for i in range(room_size) for j in range(room_size)]
            interiors.append(cells)
            if c + 1 < cols:  # doorway to the right, on the centre row
                grid[centres[-1][0], left + room_size] = rendering.FLOOR
                room_of[centres[-1][0], left + room_size] = r * cols + c
            if r + 1 < rows:  # doorway below, on the centre column
                grid[top + room_size, centres[-1][1]] = rendering.FLOOR
                room_of[top + room_size, centres[-1][1]] = r * cols + c
        self.grid = pad_grid(grid.astype(np.int32), margin)
        self.room_of = np.pad(room_of, margin, constant_values=-1)
        self.centres = np.asarray(centres, np.int32) + margin
        self.interiors = np.asarray(interiors, np.int32) + margin
        self.snakes = snake_orders(rows, cols)

    @property
    def num_rooms(self) -> int:
        return self.rows * self.cols


def snake_orders(rows: int, cols: int) -> np.ndarray:
    """``[8, R]`` room indices along a boustrophedon path, for each reflection and transposition of the grid."""
    orders = []
    for transpose, flip_rows, flip_cols in itertools.product((False, True), repeat=3):
        outer, inner = (cols, rows) if transpose else (rows, cols)
        path = []
        for a in range(outer):
            line = range(inner) if a % 2 == 0 else reversed(range(inner))
            path += [(b, a) if transpose else (a, b) for b in line]
        path = [((rows - 1 - r) if flip_rows else r, (cols - 1 - c) if flip_cols else c) for r, c in path]
        orders.append([r * cols + c for r, c in path])
    return np.asarray(orders, np.int32)


class Rooms(GridMemoryEnv):
    """Rooms with random wall colours and objects, explored then revisited (see the module docstring).

    Args:
        rooms: (rows, cols) of the room grid; at least two rooms.
        room_size: free cells per side of a room (odd, so the doorways line up with the centres).
        objects_per_room: random objects drawn in each room.
        points_per_room: cells (drawn with replacement, never the centre) each room's exploration visits from its centre.
        episode_length, context_length, view_cells, tile_pixels: see :class:`GridMemoryEnv`.
    """

    def __init__(
        self,
        rooms: tuple[int, int] = (2, 2),
        room_size: int = 5,
        objects_per_room: int = 2,
        points_per_room: int = 4,
        episode_length: int = 600,
        context_length: int = 300,
        view_cells: int = 8,
        tile_pixels: int = 4,
    ):
        super().__init__(episode_length, context_length, view_cells, tile_pixels)
        name = type(self).__name__
        try:
            rows, cols = (int(n) for n in rooms)
        except (TypeError, ValueError):
            rows = cols = 0
        if rows < 1 or cols < 1:
            raise ValueError(f"{name}: rooms must be (rows, cols) of positive integers, got {rooms!r}.")
        if room_size < 3 or room_size % 2 == 0:
            raise ValueError(f"{name}: room_size must be odd and >= 3 so doorways line up with centres, got {room_size!r}.")
        if not 0 <= objects_per_room <= room_size * room_size:
            raise ValueError(f"{name}: objects_per_room must be in [0, {room_size * room_size}], got {objects_per_room!r}.")
        if not isinstance(points_per_room, (int, np.integer)) or points_per_room < 1:
            raise ValueError(f"{name}: points_per_room must be a positive integer, got {points_per_room!r}.")
        self.layout = RoomLayout(rows, cols, room_size, self.margin)
        self.objects_per_room = int(objects_per_room)
        self.points_per_room = int(points_per_room)
        self._check_rooms()
        bound = self.exploration_bound
        if bound >= self.context_length:
            raise ValueError(
                f"{name}: exploring {self.layout.num_rooms} rooms may take up to {bound} steps, more than "
                f"context_length={self.context_length} allows; raise context_length above {bound} or lower points_per_room."
            )

    def _check_rooms(self) -> None:
        if self.layout.num_rooms < 2:
            raise ValueError(f"{type(self).__name__}: the revisit needs at least two rooms; use rooms=(1, 2) or larger.")

    @property
    def exploration_waypoints(self) -> int:
        """Waypoints of the exploration tour: per room its centre and a return to it after each point."""
        return self.layout.num_rooms * (2 * self.points_per_room + 1)

    @property
    def exploration_bound(self) -> int:
        """Most steps the exploration tour can take: detours within rooms plus the walks between centres."""
        size = self.layout.room_size
        return self.layout.num_rooms * 2 * self.points_per_room * (size - 1) + (self.layout.num_rooms - 1) * (size + 1)

    # --- episode ----------------------------------------------------------------
    @property
    def world_draws(self) -> int:
        """Uniforms :meth:`_draw_world` takes: wall colours, object colours and shapes, object cells."""
        num_rooms, per_room, cells = self.layout.num_rooms, self.objects_per_room, self.layout.room_size**2
        return num_rooms * 3 + num_rooms * per_room * 4 + (num_rooms * cells if per_room else 0)

    @property
    def episode_draws(self) -> int:
        return self.world_draws + 1 + self.layout.num_rooms * self.points_per_room

    def _draw_world(self, uniforms: Uniforms) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Wall colours and objects: ``(grid [Hp, Wp], tiles [K, P, P, 3], passable [K])``."""
        layout, num_rooms, per_room = self.layout, self.layout.num_rooms, self.objects_per_room
        walls = rendering.solid_tiles(random_colours(uniforms.take((num_rooms, 3))), self.tile_pixels)
        objects = rendering.shaped_tiles(
            random_colours(uniforms.take((num_rooms * per_room, 3))),
            integers(uniforms.take(num_rooms * per_room), 0, rendering.NUM_SHAPES),
            rendering.FLOOR_COLOUR,
            self.tile_pixels,
        )
        base = rendering.solid_tiles(jnp.stack([rendering.VOID_COLOUR, rendering.FLOOR_COLOUR]), self.tile_pixels)
        tiles = jnp.concatenate([base, walls, objects])
        codes = jnp.arange(tiles.shape[0])
        passable = (codes == rendering.FLOOR) | (codes >= WALL0 + num_rooms)  # objects lie on the floor
        grid = jnp.asarray(layout.grid)
        if per_room:
            slots = subset(uniforms.take((num_rooms, layout.room_size**2)), per_room)  # [R, n]
            cells = jnp.take_along_axis(jnp.asarray(layout.interiors), slots[..., None], axis=1).reshape(-1, 2)
            grid = grid.at[cells[:, 0], cells[:, 1]].set(WALL0 + num_rooms + jnp.arange(num_rooms * per_room))
        return grid, tiles, passable

    def _draw_tour(self, uniforms: Uniforms) -> tuple[jax.Array, jax.Array, jax.Array]:
        """``(order [R], rank [R], points [R, k, 2])`` of the exploration tour."""
        layout = self.layout
        order = jnp.asarray(layout.snakes)[integers(uniforms.take(1)[0], 0, layout.snakes.shape[0])]
        rank = jnp.zeros_like(order).at[order].set(jnp.arange(order.shape[0], dtype=jnp.int32))
        centre_slot = (layout.room_size // 2) * layout.room_size + layout.room_size // 2
        others = np.array([s for s in range(layout.room_size**2) if s != centre_slot])
        # Points need not be distinct (a repeated point is a repeated detour), so no subset is drawn.
        slots = jnp.asarray(others)[integers(uniforms.take((layout.num_rooms, self.points_per_room)), 0, others.size)]
        points = jnp.take_along_axis(jnp.asarray(layout.interiors), slots[..., None], axis=1)
        return order, rank, points

    def _new_episode(self, uniforms: Uniforms, tour_seed: jax.Array) -> RoomsState:
        grid, tiles, passable = self._draw_world(uniforms)
        order, rank, points = self._draw_tour(uniforms)
        start = jnp.asarray(self.layout.centres)[order[0]]
        return RoomsState(**blank_state(grid, tiles, passable, start, tour_seed), order=order, rank=rank, points=points)

    # --- the tour ---------------------------------------------------------------
    def _next_target(self, uniforms: jax.Array, state: RoomsState) -> tuple[jax.Array, RoomsState]:
        centres = jnp.asarray(self.layout.centres)
        legs = 2 * self.points_per_room + 1
        count = state.tour.count
        # Exploration: per room, centre, point 1, centre, point 2, ..., centre.
        room = state.order[jnp.minimum(count // legs, self.layout.num_rooms - 1)]
        leg = count % legs
        explore = jnp.where(leg % 2 == 0, centres[room], state.points[room, jnp.maximum(leg - 1, 0) // 2])
        return jnp.where(count < self.exploration_waypoints, explore, self._revisit_target(uniforms, state)), state

    def _revisit_target(self, uniforms: jax.Array, state: RoomsState) -> jax.Array:
        """From the agent's room: centre -> (a neighbour's centre or one of its points); point -> centre."""
        centres = jnp.asarray(self.layout.centres)
        room = jnp.maximum(jnp.asarray(self.layout.room_of)[state.position[0], state.position[1]], 0)
        at_centre = jnp.all(state.position == centres[room])
        step = jnp.where(uniforms[1] < 0.5, 1, -1)
        rank = state.rank[room] + step
        rank = jnp.where((rank < 0) | (rank >= self.layout.num_rooms), state.rank[room] - step, rank)
        neighbour = centres[state.order[rank]]
        point = state.points[room, integers(uniforms[2], 0, self.points_per_room)]
        from_centre = jnp.where(uniforms[0] < 0.5, neighbour, point)
        return jnp.where(at_centre, from_centre, centres[room])

    # --- for tests and metrics ----------------------------------------------------
    def room_index(self, state: RoomsState) -> jax.Array:
        """The room the agent stands in (a doorway counts for the room above or left), int32."""
        return jnp.asarray(self.layout.room_of)[state.position[0], state.position[1]]


def _preset(name: str, rooms: tuple[int, int], episode_length: int, context_length: int) -> type[Rooms]:
    """A :class:`Rooms` subclass with a fixed room grid and its own default lengths (every option explicit)."""

    def __init__(
        self,
        room_size: int = 5,
        objects_per_room: int = 2,
        points_per_room: int = 4,
        episode_length: int = episode_length,
        context_length: int = context_length,
        view_cells: int = 8,
        tile_pixels: int = 4,
    ):
        Rooms.__init__(
            self, rooms, room_size, objects_per_room, points_per_room, episode_length, context_length, view_cells, tile_pixels
        )

    doc = (
        f"{rooms[0]} x {rooms[1]} rooms; {episode_length} observations, the first {context_length} the context. "
        "Options as :class:`Rooms`."
    )
    return type(name, (Rooms,), {"__init__": __init__, "__doc__": doc, "__module__": __name__})


TwoRooms = _preset("TwoRooms", (1, 2), 300, 150)
FourRooms = _preset("FourRooms", (2, 2), 600, 300)
TenRooms = _preset("TenRooms", (2, 5), 2000, 1000)
