"""Generalised advantage estimation (Schulman et al. 2016, Eq. 11-16) with truncation done right.

A time limit is not a terminal state: the return after a truncated step is
still ``gamma * V(s_{t+1})`` where ``s_{t+1}`` is the observation the episode
would have continued from (gymnax's ``info["final_observation"]``). Only
``terminated`` removes the bootstrap. The recursion over advantages, however,
must stop at every episode end, terminated or truncated, because the next
entry of the rollout belongs to a new episode.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def generalized_advantage_estimate(
    rewards: jax.Array,
    values: jax.Array,
    next_values: jax.Array,
    terminated: jax.Array,
    dones: jax.Array,
    gamma: float | jax.Array,
    gae_lambda: float | jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """Advantages and value targets of one rollout, all arrays ``[T, B]`` (time-major).

    Args:
      rewards: ``r_t``, the reward received after acting at step t.
      values: ``V(s_t)``, the critic's value of the observation acted on at step t.
      next_values: ``V(s_{t+1})`` of the observation that followed step t *before*
        any auto-reset (the final observation where the episode ended).
      terminated: true where ``s_{t+1}`` is terminal; its value is then taken as 0.
      dones: true where the episode ended at step t for any reason (terminated or
        truncated); the advantage recursion is cut there.
      gamma: discount factor.
      gae_lambda: GAE's lambda.

    Returns:
      ``(advantages, targets)``, both ``[T, B]``; ``targets = advantages + values``.

    With ``delta_t = r_t + gamma (1 - terminated_t) V(s_{t+1}) - V(s_t)``,
    ``A_t = delta_t + gamma lambda (1 - done_t) A_{t+1}`` and ``A_T = 0``.
    """
    not_terminal = 1.0 - terminated.astype(values.dtype)
    continues = 1.0 - dones.astype(values.dtype)
    deltas = rewards + gamma * not_terminal * next_values - values
    decay = gamma * gae_lambda * continues

    def backward(following: jax.Array, step: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        delta, keep = step
        advantage = delta + keep * following
        return advantage, advantage

    _, advantages = jax.lax.scan(backward, jnp.zeros_like(values[0]), (deltas, decay), reverse=True)
    return advantages, advantages + values
