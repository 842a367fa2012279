"""The S4WM memory-task suite (Deng, Park, Ahn, NeurIPS 2023) in JAX: pixel gridworlds for world models.

Registered as ``memory/<Name>`` (``mnemax.envs.make("memory/FourRooms")``):

====================  =================================  ==========================================
name                  memory skill (the paper's set)     what the query horizon asks
====================  =================================  ==========================================
TwoRooms, FourRooms,  long-term imagination              frames of rooms revisited after exploring
TenRooms
Teleport              context-dependent recall           frames after a jump to a place seen before
DistractingMemory     reward prediction                  the reward's sign, set by an early cue
MultiDoorsKeys        memory-based reasoning             which doors open, set by keys picked up
====================  =================================  ==========================================

Observations are ``[32, 32, 3]`` uint8 RGB frames (``view_cells=8`` cells
of ``tile_pixels=4`` pixels), an egocentric top-down view of the grid; divide
by 255 for [0, 1]. Four actions (up, right, down, left). gymnax 1.x API,
auto-reset, ``info["final_observation"]``. Each environment has
``episode_length`` observations per episode and ``context_length`` of them
before the query horizon.

Every task ships its scripted data policy, :func:`scripted_policy` ``(key,
state) -> action``, which follows the tour drawn with the episode (explore
every room, then revisit; see :mod:`~mnemax.envs.memory.gridworld`).
:mod:`~mnemax.envs.memory.dataset` rolls it out into datasets and
:mod:`~mnemax.envs.memory.metrics` scores imagined revisits.
"""

from __future__ import annotations

from typing import Any, Callable

from mnemax.envs.memory.distracting_memory import DistractingMemory
from mnemax.envs.memory.gridworld import GridMemoryEnv, GridParams, GridState, scripted_policy
from mnemax.envs.memory.multi_doors_keys import MultiDoorsKeys
from mnemax.envs.memory.rooms import FourRooms, Rooms, TenRooms, TwoRooms
from mnemax.envs.memory.teleport import Teleport

MEMORY_ENVS: dict[str, Callable[..., Any]] = {
    "TwoRooms": TwoRooms,
    "FourRooms": FourRooms,
    "TenRooms": TenRooms,
    "Teleport": Teleport,
    "DistractingMemory": DistractingMemory,
    "MultiDoorsKeys": MultiDoorsKeys,
}
"""Name -> environment class; ``memory/<Name>`` in :func:`mnemax.envs.make`."""

__all__ = [
    "MEMORY_ENVS",
    "DistractingMemory",
    "FourRooms",
    "GridMemoryEnv",
    "GridParams",
    "GridState",
    "MultiDoorsKeys",
    "Rooms",
    "TenRooms",
    "Teleport",
    "TwoRooms",
    "scripted_policy",
]
