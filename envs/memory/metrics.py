"""Scores for imagined query horizons, and the baselines that bracket them.

S4WM's evaluation gives a world model the context (the first ``C``
observations and every action), lets it imagine the query horizon
``t = C .. T-1`` from the actions alone, and reports the frame error at each
imagination step, and (DistractingMemory) whether the predicted rewards have
the right sign. These functions take arrays in the dataset layout
(time-major ``[T, B, ...]``, uint8 frames or floats in [0, 1]); they are pure
and work on numpy or JAX arrays.

Two reference "models" bracket any world model:

* :func:`oracle_frames`: perfect memory. Each query frame is a copy of the
  latest context frame taken at the same position; in a static world (the
  rooms, Teleport) that is the true frame, so its error is zero.
* :func:`mean_frames`: no memory beyond a summary. Each query frame is the
  mean of the context frames; its error stays high.

A metric that separates memory from no memory must score the first near zero
and the second well above it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def unit_frames(frames: jax.Array) -> jax.Array:
    """Frames as float32 in [0, 1]: uint8 divided by 255, floats unchanged."""
    frames = jnp.asarray(frames)
    return frames.astype(jnp.float32) / 255.0 if frames.dtype == jnp.uint8 else frames.astype(jnp.float32)


def per_step_mse(predicted: jax.Array, target: jax.Array) -> jax.Array:
    """``[T]`` mean squared error at each step, averaged over the batch and pixels (frames in [0, 1]).

    predicted, target: ``[T, B, H, W, C]`` (uint8 or float in [0, 1]).
    """
    if jnp.shape(predicted) != jnp.shape(target):
        raise ValueError(f"predicted frames have shape {jnp.shape(predicted)} but the targets {jnp.shape(target)}; pass matching [T, B, H, W, C] arrays.")
    error = (unit_frames(predicted) - unit_frames(target)) ** 2
    return jnp.mean(error.reshape(error.shape[0], -1), axis=1)


def imagination_error(predicted_query: jax.Array, obs: jax.Array, context_length: int) -> jax.Array:
    """``[T - C]`` MSE per imagination step of ``predicted_query [T - C, B, ...]`` against ``obs[C:]``."""
    return per_step_mse(predicted_query, jnp.asarray(obs)[context_length:])


def oracle_frames(obs: jax.Array, position: jax.Array, context_length: int) -> tuple[jax.Array, jax.Array]:
    """The perfect-memory prediction of the query horizon: ``([T - C, B, ...] frames, [T - C, B] found)``.

    Frame ``t >= C`` is a copy of ``obs[s]`` for the latest ``s < C`` with
    ``position[s] == position[t]``; where the position never occurred in the
    context, ``found`` is False and the last context frame is copied.
    obs: ``[T, B, H, W, C]``; position: ``[T, B, 2]``.
    """
    obs, position = jnp.asarray(obs), jnp.asarray(position)
    context, query = position[:context_length], position[context_length:]  # [C, B, 2], [Q, B, 2]
    same = jnp.all(query[:, None] == context[None, :], axis=-1)  # [Q, C, B]
    latest = context_length - 1 - jnp.argmax(same[:, ::-1], axis=1)  # [Q, B]
    found = jnp.any(same, axis=1)
    source = jnp.where(found, latest, context_length - 1)
    frames = jax.vmap(lambda frames_b, source_b: frames_b[source_b], in_axes=(1, 1), out_axes=1)(obs, source)
    return frames, found


def mean_frames(obs: jax.Array, context_length: int) -> jax.Array:
    """The no-memory prediction: every query frame is the episode's mean context frame, ``[T - C, B, ...]`` in [0, 1]."""
    frames = unit_frames(obs)
    mean = jnp.mean(frames[:context_length], axis=0, keepdims=True)
    return jnp.broadcast_to(mean, (frames.shape[0] - context_length, *frames.shape[1:]))


def reward_sign_accuracy(predicted: jax.Array, reward: jax.Array) -> jax.Array:
    """Fraction of steps with a nonzero reward whose predicted reward has the same sign (NaN if none).

    predicted, reward: ``[T, B]``.
    """
    predicted, reward = jnp.asarray(predicted), jnp.asarray(reward)
    paid = reward != 0
    right = paid & (jnp.sign(predicted) == jnp.sign(reward))
    return jnp.sum(right) / jnp.sum(paid)
