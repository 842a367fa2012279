"""Batch-wide running statistics for PPO's observation and reward normalisation, as pure functions.

The moments and their merge (Chan et al. 1979) are those of
:mod:`mnemax.envs.wrappers`; here a whole batch ``[N, ...]`` is merged at once,
so the statistics are shared by every environment of the batch (and, under
``jax.sharding``, by every device: the batch mean is a cross-device reduction
that ``jit`` inserts), unlike a wrapper vmapped over envs that keeps one set
per copy.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mnemax.envs.wrappers import RunningMoments, merge_moments


def initial_moments(shape: tuple[int, ...] = ()) -> RunningMoments:
    """Moments before any data (count 0); the first batch replaces them."""
    return RunningMoments.zeros(shape)


def observe_batch(moments: RunningMoments, batch: jax.Array) -> RunningMoments:
    """Merge every item of ``batch`` ``[N, *shape]`` into ``moments``."""
    batch = jnp.asarray(batch, jnp.float32)
    count = jnp.asarray(batch.shape[0], jnp.float32)
    return merge_moments(moments, RunningMoments(jnp.mean(batch, axis=0), jnp.var(batch, axis=0), count))


def normalize(moments: RunningMoments, x: jax.Array, clip: float = 10.0, epsilon: float = 1e-8) -> jax.Array:
    """``clip((x - mean) / sqrt(var + epsilon), -clip, clip)``: how observations are standardised."""
    return jnp.clip((x - moments.mean) / jnp.sqrt(moments.var + epsilon), -clip, clip)


def scale(moments: RunningMoments, x: jax.Array, epsilon: float = 1e-8) -> jax.Array:
    """``x / sqrt(var + epsilon)``, not centred: rewards scaled by the spread of discounted returns."""
    return x / jnp.sqrt(moments.var + epsilon)
