"""Pixels for the memory suite: tile shapes, colours, and the egocentric top-down view.

A world is a grid of tile codes; an episode owns a tile table
``tiles [K, P, P, 3]`` (uint8, one P x P RGB picture per code) built at reset
from its random colours. The observation is the ``V x V`` window of the grid
around the agent, each cell replaced by its picture: one ``dynamic_slice``
and one gather, no loop over pixels. The agent is drawn in the same place in
every frame (the view is egocentric), at cell ``(V // 2, V // 2)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

# Codes every memory world shares; a world appends its own codes after these.
VOID, FLOOR = 0, 1
VOID_COLOUR = np.array([0, 0, 0], np.uint8)
FLOOR_COLOUR = np.array([40, 40, 40], np.uint8)
AGENT_COLOUR = np.array([255, 255, 255], np.uint8)

# Distinct saturated colours, for things whose identity matters (keys, doors, cues).
PALETTE = np.array(
    [
        [230, 25, 75],  # red
        [60, 180, 75],  # green
        [0, 130, 200],  # blue
        [255, 225, 25],  # yellow
        [240, 50, 230],  # magenta
        [70, 240, 240],  # cyan
        [245, 130, 48],  # orange
        [145, 30, 180],  # purple
    ],
    np.uint8,
)


def shape_masks(tile_pixels: int) -> np.ndarray:
    """``[NUM_SHAPES, P, P]`` bool pictures of object shapes: block, ring, plus, cross, checker.

    Shapes are defined on pixel centres in [-1, 1]^2, so they scale with ``P``.
    """
    centres = (np.arange(tile_pixels) + 0.5) / tile_pixels * 2.0 - 1.0
    u, v = np.meshgrid(centres, centres, indexing="ij")
    box = np.maximum(np.abs(u), np.abs(v))
    masks = [
        box < 0.6,  # block in the middle
        box > 0.55,  # ring along the border
        np.minimum(np.abs(u), np.abs(v)) < 0.4,  # plus
        np.abs(np.abs(u) - np.abs(v)) < 0.3,  # diagonal cross
        ((np.arange(tile_pixels)[:, None] + np.arange(tile_pixels)[None, :]) % 2) == 0,  # checker
    ]
    return np.stack(masks)


NUM_SHAPES = 5


def solid_tiles(colours: jax.Array, tile_pixels: int) -> jax.Array:
    """``colours [K, 3]`` -> ``[K, P, P, 3]`` uint8 tiles filled with each colour."""
    colours = jnp.asarray(colours, jnp.uint8)
    return jnp.broadcast_to(colours[:, None, None, :], (colours.shape[0], tile_pixels, tile_pixels, 3))


def shaped_tiles(colours: jax.Array, shapes: jax.Array, background: np.ndarray, tile_pixels: int) -> jax.Array:
    """``[K, P, P, 3]`` tiles: shape ``shapes[k]`` (an index into :func:`shape_masks`) in ``colours[k]`` on ``background``."""
    masks = jnp.asarray(shape_masks(tile_pixels))[shapes]  # [K, P, P]
    fore = jnp.asarray(colours, jnp.uint8)[:, None, None, :]
    back = jnp.asarray(background, jnp.uint8)[None, None, None, :]
    return jnp.where(masks[..., None], fore, back)


def view_window(grid: jax.Array, position: jax.Array, view_cells: int) -> jax.Array:
    """The ``[V, V]`` tile codes around ``position`` (the agent at ``(V // 2, V // 2)``).

    ``grid`` must be padded with at least ``V`` cells of VOID on every side, so
    the slice never clips.
    """
    corner = position - view_cells // 2
    return jax.lax.dynamic_slice(grid, (corner[0], corner[1]), (view_cells, view_cells))


def render_window(window: jax.Array, tiles: jax.Array) -> jax.Array:
    """``window [V, V]`` codes and ``tiles [K, P, P, 3]`` -> the ``[V * P, V * P, 3]`` uint8 frame, agent drawn."""
    view_cells, tile_pixels = window.shape[0], tiles.shape[1]
    pixels = tiles[window]  # [V, V, P, P, 3]
    frame = pixels.transpose(0, 2, 1, 3, 4).reshape(view_cells * tile_pixels, view_cells * tile_pixels, 3)
    low, high = (view_cells // 2) * tile_pixels, (view_cells // 2 + 1) * tile_pixels
    return frame.at[low:high, low:high].set(jnp.asarray(AGENT_COLOUR))
