"""Reward prediction (S4WM's third task set): DistractingMemory.

One room. For the first ``cue_steps`` observations its floor shows the
episode's cue, one of two colours (green for cue 0, red for cue 1). Then comes
a long stretch of distractors: ``num_distractors`` objects of random shape
and colour at random cells, drawn afresh at every step from a key of their
own. In the last ``reward_steps`` observations the floor turns white and every
step pays +1 if the cue was 0 and -1 if it was 1. The reward is a function of
the cue alone (and of time); predicting its sign needs the cue remembered
through the distractors. The query horizon is the reward phase
(``context_length = episode_length - reward_steps``).

The scripted policy wanders between random cells of the room.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from mnemax.envs.memory import rendering
from mnemax.envs.memory.gridworld import blank_state
from mnemax.envs.memory.rooms import Rooms, RoomsState
from mnemax.envs.memory.uniforms import Uniforms, hashed_uniforms, integers, seed_from
from mnemax.envs.memory.uniforms import colours as random_colours

CUE_COLOURS = np.stack([rendering.PALETTE[1], rendering.PALETTE[0]])  # cue 0 green, cue 1 red
REWARD_FLOOR_COLOUR = np.array([220, 220, 220], np.uint8)


@struct.dataclass
class DistractingMemoryState(RoomsState):
    """RoomsState plus

    cue: int32 scalar, 0 or 1; decides the sign of the reward.
    distractor_seed: uint32 scalar, the randomness of the distractors (cells, shapes and colours at each step).
    """

    cue: jax.Array
    distractor_seed: jax.Array


class DistractingMemory(Rooms):
    """An early cue, distractors, and a reward whose sign the cue decides (see the module docstring).

    Args:
        episode_length: observations per episode.
        cue_steps: observations that show the cue.
        reward_steps: observations at the end that pay the reward (the query horizon).
        num_distractors: random objects drawn at every step between cue and reward.
        room_size: free cells per side of the room (odd).
        view_cells, tile_pixels: see :class:`~mnemax.envs.memory.gridworld.GridMemoryEnv`.
    """

    def __init__(
        self,
        episode_length: int = 300,
        cue_steps: int = 10,
        reward_steps: int = 10,
        num_distractors: int = 4,
        room_size: int = 7,
        view_cells: int = 8,
        tile_pixels: int = 4,
    ):
        for name, value in (("cue_steps", cue_steps), ("reward_steps", reward_steps)):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"DistractingMemory: {name} must be a positive integer, got {value!r}.")
        if not isinstance(num_distractors, (int, np.integer)) or num_distractors < 0:
            raise ValueError(f"DistractingMemory: num_distractors must be a non-negative integer, got {num_distractors!r}.")
        if isinstance(episode_length, (int, np.integer)) and cue_steps + reward_steps >= episode_length:
            raise ValueError(
                f"DistractingMemory: cue_steps + reward_steps = {cue_steps + reward_steps} leaves no distractor phase in "
                f"episode_length={episode_length}; lengthen the episode."
            )
        self.cue_steps, self.reward_steps, self.num_distractors = int(cue_steps), int(reward_steps), int(num_distractors)
        super().__init__(
            rooms=(1, 1),
            room_size=room_size,
            objects_per_room=0,
            points_per_room=1,
            episode_length=episode_length,
            context_length=episode_length - reward_steps,
            view_cells=view_cells,
            tile_pixels=tile_pixels,
        )
        self.cue_codes = np.arange(2) + 2 + self.layout.num_rooms  # after VOID, FLOOR and the wall
        self.reward_code = int(self.cue_codes[-1]) + 1
        self.distractor_codes = np.arange(self.num_distractors) + self.reward_code + 1

    def _check_rooms(self) -> None:
        """One room suffices: the scripted policy wanders inside it."""

    @property
    def exploration_waypoints(self) -> int:
        return 0

    @property
    def exploration_bound(self) -> int:
        return 0

    @property
    def reward_start(self) -> int:
        """The first observation (``state.time``) that pays the reward."""
        return self.episode_length - self.reward_steps

    @property
    def episode_draws(self) -> int:
        return self.world_draws + 3  # the room, then the cue, the distractors' seed, the start cell

    def _new_episode(self, uniforms: Uniforms, tour_seed: jax.Array) -> DistractingMemoryState:
        grid, tiles, passable = self._draw_world(uniforms)
        cue, distractor_seed, start_slot = uniforms.take(3)
        extra = rendering.solid_tiles(jnp.asarray(np.concatenate([CUE_COLOURS, REWARD_FLOOR_COLOUR[None]])), self.tile_pixels)
        distractors = jnp.zeros((self.num_distractors, *tiles.shape[1:]), jnp.uint8)  # drawn per step in _view
        tiles = jnp.concatenate([tiles, extra, distractors])
        passable = jnp.concatenate([passable, jnp.zeros(extra.shape[0] + self.num_distractors, bool)])
        interior = jnp.asarray(self.layout.interiors[0])
        start = interior[integers(start_slot, 0, interior.shape[0])]
        order = jnp.zeros((1,), jnp.int32)
        return DistractingMemoryState(
            **blank_state(grid, tiles, passable, start, tour_seed),
            order=order,
            rank=order,
            points=start[None, None, :],  # unused: the tour wanders (see _next_target)
            cue=integers(cue, 0, 2),
            distractor_seed=seed_from(distractor_seed),
        )

    def _after_move(self, key: jax.Array, state: DistractingMemoryState, params: Any):
        sign = jnp.where(state.cue == 0, 1.0, -1.0)
        reward = jnp.where(state.time >= self.reward_start, sign, 0.0).astype(jnp.float32)
        return state, reward, jnp.asarray(False)

    def _view(self, state: DistractingMemoryState, window: jax.Array) -> tuple[jax.Array, jax.Array]:
        time = state.time
        floor = jnp.where(
            time < self.cue_steps,
            jnp.asarray(self.cue_codes)[state.cue],
            jnp.where(time >= self.reward_start, self.reward_code, rendering.FLOOR),
        )
        window = jnp.where(window == rendering.FLOOR, floor, window)
        tiles = state.tiles
        if self.num_distractors:
            draws = hashed_uniforms(state.distractor_seed, time, 5 * self.num_distractors).reshape(self.num_distractors, 5)
            interior = jnp.asarray(self.layout.interiors[0])
            cells = interior[integers(draws[:, 0], 0, interior.shape[0])]  # [D, 2]
            pictures = rendering.shaped_tiles(
                random_colours(draws[:, 1:4]),
                integers(draws[:, 4], 0, rendering.NUM_SHAPES),
                rendering.FLOOR_COLOUR,
                self.tile_pixels,
            )
            tiles = tiles.at[jnp.asarray(self.distractor_codes)].set(pictures)
            corner = state.position - self.view_cells // 2
            rows = corner[0] + jnp.arange(self.view_cells)
            cols = corner[1] + jnp.arange(self.view_cells)
            hits = (rows[:, None, None] == cells[None, None, :, 0]) & (cols[None, :, None] == cells[None, None, :, 1])  # [V, V, D]
            shown = (time >= self.cue_steps) & (time < self.reward_start)
            window = jnp.where(shown & jnp.any(hits, -1), jnp.asarray(self.distractor_codes)[jnp.argmax(hits, -1)], window)
        return window, tiles

    def _next_target(self, uniforms: jax.Array, state: DistractingMemoryState) -> tuple[jax.Array, DistractingMemoryState]:
        interior = jnp.asarray(self.layout.interiors[0])
        return interior[integers(uniforms[0], 0, interior.shape[0])], state

