"""Uniform draws of one cell among the marked cells of a small grid, cheap under ``vmap``.

Battleship places ships and MineSweeper lays mines by drawing, again and
again, one cell uniformly among those still allowed. The obvious draws are
slow here: a categorical needs one random number per cell, and a prefix sum
over the flattened grid costs O(cells**2) on XLA's CPU backend (``cumsum``
becomes a windowed reduction). Splitting the draw into "which row" then
"which column" keeps every prefix sum as short as one side of the grid and
needs one random number per draw.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def sample_marked_cell(uniform: jax.Array, marked: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(row, col)`` of a cell drawn uniformly among the ``True`` cells of ``marked`` ``[R, C]``.

    ``uniform`` is one U[0, 1) number; it picks the k-th marked cell in
    row-major order, k = floor(uniform * number marked). With no cell marked
    the result is meaningless (row R): callers must guarantee one exists.
    """
    per_row = marked.sum(axis=1, dtype=jnp.int32)  # [R]
    rows_through = jnp.cumsum(per_row)  # [R]: marked cells in rows 0..r
    target = jnp.floor(uniform * rows_through[-1]).astype(jnp.int32)
    row = jnp.sum(rows_through <= target)
    rank_in_row = target - (rows_through[row] - per_row[row])
    cols_through = jnp.cumsum(marked[row].astype(jnp.int32))  # [C]
    col = jnp.sum(cols_through <= rank_in_row)
    return row, col
