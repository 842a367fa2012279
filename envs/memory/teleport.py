"""Context-dependent recall (S4WM's second task set): Teleport.

The rooms of :mod:`mnemax.envs.memory.rooms` (a 2 x 2 grid by default),
explored as there; at observation ``context_length`` the agent is teleported
to a cell it has already stood on, chosen uniformly among the visited
waypoints of the tour (room centres and exploration cells; any visited cell
if none was). What it sees next is predictable only from the context: the
frames it saw when it stood there before. The scripted tour then goes on
revisiting from the new cell, along legs walked during exploration.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from mnemax.envs.memory.rooms import Rooms, RoomsState
from mnemax.envs.memory.uniforms import hashed_uniforms, integers

TELEPORT_COUNTER = 0xFFFFFFFF  # the tour's hash counter reserved for the teleport (tours never get that far)


class Teleport(Rooms):
    """Rooms with a teleport to a seen place at the start of the query horizon (see the module docstring)."""

    def teleport_target(self, uniform: jax.Array, state: RoomsState) -> jax.Array:
        """A uniformly drawn visited waypoint cell (or any visited cell if no waypoint was visited): [2] int32."""
        centres = jnp.asarray(self.layout.centres)
        points = state.points.reshape(-1, 2)
        waypoints = jnp.zeros_like(state.visited).at[centres[:, 0], centres[:, 1]].set(True)
        waypoints = waypoints.at[points[:, 0], points[:, 1]].set(True)
        candidates = waypoints & state.visited
        candidates = jnp.where(jnp.any(candidates), candidates, state.visited)
        flat = candidates.reshape(-1)
        rank = integers(uniform, 0, jnp.sum(flat))
        index = jnp.sum(jnp.cumsum(flat) <= rank)  # the rank-th candidate, counting from 0
        return jnp.stack(jnp.unravel_index(index, candidates.shape)).astype(jnp.int32)

    def _after_move(self, key: jax.Array, state: RoomsState, params: Any):
        jumped = state.time == self.context_length
        uniform = hashed_uniforms(state.tour.seed, TELEPORT_COUNTER, 1)[0]
        position = jnp.where(jumped, self.teleport_target(uniform, state), state.position)
        return state.replace(position=position), jnp.zeros((), jnp.float32), jumped
