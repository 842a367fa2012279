"""All of an episode's randomness from one draw.

gymnax's auto-reset builds a fresh episode at every step, so whatever
``reset_env`` draws is compiled into, and run at, every step. On CPU each
separate ``jax.random`` call adds its own threefry kernel to the compile time
(about a second each here). :class:`Uniforms` draws one 32-bit seed with
``jax.random`` and expands it with an integer hash into a vector of uniforms,
handing out consecutive slices of static size; the helpers below turn them
into integers, subsets and colours.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp


class Uniforms:
    """``take(shape)`` returns the next ``prod(shape)`` uniforms in [0, 1) of one draw, reshaped.

    ``size`` must cover every ``take``; a shortfall raises at trace time.
    """

    def __init__(self, key: jax.Array, size: int):
        self.values = hashed_uniforms(jax.random.bits(key, (), jnp.uint32), 0, size)
        self.used = 0

    def take(self, shape: tuple[int, ...] | int) -> jax.Array:
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        count = math.prod(shape)
        if self.used + count > self.values.shape[0]:
            raise ValueError(f"Uniforms: {self.used + count} values requested of a draw of {self.values.shape[0]}.")
        out = self.values[self.used : self.used + count].reshape(shape)
        self.used += count
        return out


def integers(uniform: jax.Array, low: int, high: jax.Array | int) -> jax.Array:
    """Uniform int32 in ``[low, high)`` from uniforms in [0, 1)."""
    return jnp.minimum(low + jnp.floor(uniform * (high - low)).astype(jnp.int32), jnp.asarray(high, jnp.int32) - 1)


def subset(uniform: jax.Array, count: int) -> jax.Array:
    """``count`` distinct indices of ``range(n)``, ``n`` the last axis of ``uniform``, in random order.

    The first ``count`` entries of ``argsort(uniform)``, computed from ranks
    (pairwise comparisons, ties broken by index) instead of a sort: for the
    few dozen items drawn here that is several times faster on CPU, where a
    sort under ``vmap`` dominated the cost of a reset.
    """
    n = uniform.shape[-1]
    index = jnp.arange(n)
    before = (uniform[..., None, :] < uniform[..., :, None]) | (
        (uniform[..., None, :] == uniform[..., :, None]) & (index[None, :] < index[:, None])
    )  # [..., i, j]: item j comes before item i
    rank = jnp.sum(before, axis=-1)  # [..., n], a permutation of range(n)
    chosen = rank[..., None, :] == jnp.arange(count)[:, None]  # [..., count, n]
    return jnp.sum(jnp.where(chosen, index, 0), axis=-1).astype(jnp.int32)


def colours(uniform: jax.Array) -> jax.Array:
    """``[..., 3]`` uint8 colours from ``[..., 3]`` uniforms, each channel in [60, 255] (none near the floor's grey)."""
    return (60 + jnp.floor(uniform * 196)).astype(jnp.uint8)


def hashed_uniforms(seed: jax.Array, counter: jax.Array, size: int) -> jax.Array:
    """``[size]`` uniforms in [0, 1) from an integer hash of ``(seed, counter, index)``.

    For the randomness drawn at every step (the tour's next waypoint, the
    distractors, the teleport): a few integer multiplies and shifts (the
    "lowbias32" finaliser) instead of a threefry kernel, so it costs next to
    nothing to compile and run. Statistical quality is ample for choosing cells.
    """
    index = jnp.arange(size, dtype=jnp.uint32)
    x = (
        jnp.asarray(seed, jnp.uint32) * jnp.uint32(0x9E3779B9)
        + jnp.asarray(counter, jnp.uint32) * jnp.uint32(0x85EBCA6B)
        + index * jnp.uint32(0xC2B2AE35)
    )
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    x = x ^ (x >> 16)
    return (x >> 8).astype(jnp.float32) / float(1 << 24)


def seed_from(uniform: jax.Array) -> jax.Array:
    """A uint32 seed for :func:`hashed_uniforms` from one uniform (24 bits of it)."""
    return jnp.floor(uniform * float(1 << 24)).astype(jnp.uint32)
