"""Memory-based reasoning (S4WM's fourth task set): MultiDoorsKeys.

A room holds ``num_keys`` keys, each in its own colour (drawn per episode
from a fixed palette). Below the room, a wall has one door per key colour
(the doors in a random order), each opening onto a one-cell alcove. Stepping
on a key picks it up (it disappears; nothing shows what is held). Walking
into a door opens it, pays +1 and lets the agent through if the key of its
colour is held; otherwise the agent bumps and stays. Whether a door opens is
decided by keys collected long before, which is what a world model must
remember to predict the frames and rewards at the doors.

The keys lie in the room's top row, each in its own column; the tour walks
everywhere else in the room below that row, so only a deliberate visit picks
a key up. The scripted tour: in the context phase, fetch each key with
probability 1/2, in a random order (step under it, up onto it, back down; a
skipped key is replaced by a random cell), then wander between random cells
until the query horizon begins; then try every door in a random order (go
above it, walk down into the alcove, come back), then wander again.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from mnemax.envs.memory import rendering
from mnemax.envs.memory.gridworld import GridMemoryEnv, GridState, blank_state, pad_grid
from mnemax.envs.memory.uniforms import Uniforms, integers, subset

WALL = 2
WALL_COLOUR = np.array([110, 110, 140], np.uint8)
KEY_SHAPE, OPEN_DOOR_SHAPE = 2, 1  # plus-shaped keys; an open door is a ring in its colour


@struct.dataclass
class MultiDoorsKeysState(GridState):
    """GridState plus

    held: [K] bool, keys picked up (by colour index).
    door_key: [K] int32, the key colour of the door at each slot (left to right).
    key_order: [K] int32, the tour's order of keys; chosen: [K] bool, keys the tour walks to.
    door_order: [K] int32, the tour's order of door slots; door_leg: int32 legs of the door phase issued.
    key_cols: [K] int32 column (padded coordinates) of each key colour in the key row.
    """

    held: jax.Array
    door_key: jax.Array
    key_order: jax.Array
    chosen: jax.Array
    door_order: jax.Array
    key_cols: jax.Array
    door_leg: jax.Array


class MultiDoorsKeys(GridMemoryEnv):
    """Keys collected early decide which doors open late (see the module docstring).

    Args:
        num_keys: keys and doors (at most 8, the palette's size).
        room_height: free rows of the key room, >= 3 (the top row holds the keys; the room is
            ``max(2K + 1, 5)`` cells wide).
        episode_length, context_length, view_cells, tile_pixels: see :class:`GridMemoryEnv`.
    """

    def __init__(
        self,
        num_keys: int = 3,
        room_height: int = 5,
        episode_length: int = 300,
        context_length: int = 150,
        view_cells: int = 8,
        tile_pixels: int = 4,
    ):
        super().__init__(episode_length, context_length, view_cells, tile_pixels)
        if not isinstance(num_keys, (int, np.integer)) or not 1 <= num_keys <= len(rendering.PALETTE):
            raise ValueError(f"MultiDoorsKeys: num_keys must be an integer in [1, {len(rendering.PALETTE)}], got {num_keys!r}.")
        if not isinstance(room_height, (int, np.integer)) or room_height < 3:
            raise ValueError(f"MultiDoorsKeys: room_height must be an integer >= 3, got {room_height!r}.")
        self.num_keys, self.room_height = int(num_keys), int(room_height)
        self.room_width = max(2 * self.num_keys + 1, 5)
        self.key0, self.door0, self.open0 = 3, 3 + self.num_keys, 3 + 2 * self.num_keys
        self._build_layout()
        walk = self.room_height + self.room_width
        if self.num_keys * (walk + 2) >= self.context_length:
            raise ValueError(
                f"MultiDoorsKeys: visiting {self.num_keys} keys may take {self.num_keys * (walk + 2)} steps, more than "
                f"context_length={self.context_length}; raise context_length."
            )
        door_steps = 2 * walk + self.num_keys * (self.room_width + 4)
        if door_steps > self.episode_length - self.context_length:
            raise ValueError(
                f"MultiDoorsKeys: trying every door may take {door_steps} steps, more than the "
                f"{self.episode_length - self.context_length} after the context; lengthen episode_length."
            )

    def _build_layout(self) -> None:
        """Static geometry (padded coordinates): room cells, door cells, the cells above and below them."""
        height, width = self.room_height + 4, self.room_width + 2
        grid = np.full((height, width), WALL, np.int32)
        grid[1 : 1 + self.room_height, 1 : 1 + self.room_width] = rendering.FLOOR
        door_cols = 2 + 2 * np.arange(self.num_keys)  # interior columns 1, 3, 5, ... of the room
        door_row = self.room_height + 1
        grid[door_row + 1, door_cols] = rendering.FLOOR  # the alcoves
        m = self.margin
        self.base_grid = pad_grid(grid, m)
        self.key_row = 1 + m
        self.floor_cells = np.array(  # the room below the key row: where the tour wanders
            [(r + m, c + m) for r in range(2, 1 + self.room_height) for c in range(1, 1 + self.room_width)], np.int32
        )
        self.doors = np.stack([np.full(self.num_keys, door_row), door_cols], -1).astype(np.int32) + m  # [K, 2]
        self.above = self.doors - np.array([1, 0], np.int32)
        self.alcoves = self.doors + np.array([1, 0], np.int32)

    @property
    def episode_draws(self) -> int:
        return len(rendering.PALETTE) + 4 * self.num_keys + self.room_width + 1

    def _new_episode(self, uniforms: Uniforms, tour_seed: jax.Array) -> MultiDoorsKeysState:
        k = self.num_keys
        colours = jnp.asarray(rendering.PALETTE)[subset(uniforms.take(len(rendering.PALETTE)), k)]
        door_key_of_slot = subset(uniforms.take(k), k)
        base = rendering.solid_tiles(jnp.stack([rendering.VOID_COLOUR, rendering.FLOOR_COLOUR, WALL_COLOUR]), self.tile_pixels)
        keys = rendering.shaped_tiles(colours, jnp.full((k,), KEY_SHAPE), rendering.FLOOR_COLOUR, self.tile_pixels)
        doors = rendering.solid_tiles(colours, self.tile_pixels)
        opened = rendering.shaped_tiles(colours, jnp.full((k,), OPEN_DOOR_SHAPE), rendering.FLOOR_COLOUR, self.tile_pixels)
        tiles = jnp.concatenate([base, keys, doors, opened])
        codes = jnp.arange(tiles.shape[0])
        passable = (codes == rendering.FLOOR) | ((codes >= self.key0) & (codes < self.door0)) | (codes >= self.open0)
        key_cols = self.margin + 1 + subset(uniforms.take(self.room_width), k)
        start = jnp.asarray(self.floor_cells)[integers(uniforms.take(1)[0], 0, self.floor_cells.shape[0])]
        grid = jnp.asarray(self.base_grid).at[self.key_row, key_cols].set(self.key0 + jnp.arange(k))
        doors_at = jnp.asarray(self.doors)
        grid = grid.at[doors_at[:, 0], doors_at[:, 1]].set(self.door0 + door_key_of_slot)
        return MultiDoorsKeysState(
            **blank_state(grid, tiles, passable, start, tour_seed),
            held=jnp.zeros((k,), bool),
            door_key=door_key_of_slot,
            key_order=subset(uniforms.take(k), k),
            chosen=uniforms.take(k) < 0.5,
            door_order=subset(uniforms.take(k), k),
            key_cols=key_cols,
            door_leg=jnp.zeros((), jnp.int32),
        )

    def _enter(self, state: MultiDoorsKeysState, destination: jax.Array):
        code = state.grid[destination[0], destination[1]]
        colour = jnp.clip(code - self.door0, 0, self.num_keys - 1)
        opens = (code >= self.door0) & (code < self.open0) & state.held[colour]
        grid = state.grid.at[destination[0], destination[1]].set(jnp.where(opens, self.open0 + colour, code))
        return state.replace(grid=grid), opens.astype(jnp.float32)

    def _after_move(self, key: jax.Array, state: MultiDoorsKeysState, params: Any):
        row, col = state.position[0], state.position[1]
        code = state.grid[row, col]
        is_key = (code >= self.key0) & (code < self.door0)
        colour = jnp.clip(code - self.key0, 0, self.num_keys - 1)
        held = state.held | (is_key & (jnp.arange(self.num_keys) == colour))
        grid = state.grid.at[row, col].set(jnp.where(is_key, rendering.FLOOR, code))
        return state.replace(held=held, grid=grid), jnp.zeros((), jnp.float32), jnp.asarray(False)

    def _next_target(self, uniforms: jax.Array, state: MultiDoorsKeysState) -> tuple[jax.Array, MultiDoorsKeysState]:
        count, k = state.tour.count, self.num_keys
        cells = jnp.asarray(self.floor_cells)
        slot = integers(uniforms[0], 0, cells.shape[0])
        wander = cells[slot]
        wander = jnp.where(jnp.all(wander == state.position), cells[(slot + 1) % cells.shape[0]], wander)
        # Key legs: under key, onto it, under it again (3 per key); a skipped key wanders instead.
        wanted = state.key_order[jnp.minimum(count // 3, k - 1)]
        below = jnp.stack([self.key_row + 1, state.key_cols[wanted]])
        fetch = jnp.where(count % 3 == 1, below - jnp.array([1, 0]), below)
        key_target = jnp.where(state.chosen[wanted], fetch, wander)
        door_phase = (count >= 3 * k) & (state.time >= self.context_length) & (state.door_leg < 3 * k)
        door = state.door_order[jnp.minimum(state.door_leg // 3, k - 1)]
        door_target = jnp.where(state.door_leg % 3 == 1, jnp.asarray(self.alcoves)[door], jnp.asarray(self.above)[door])
        target = jnp.where(count < 3 * k, key_target, jnp.where(door_phase, door_target, wander))
        return target, state.replace(door_leg=state.door_leg + door_phase.astype(jnp.int32))
