"""PPO's loss terms (Schulman et al. 2017, Eq. 7 and 9) as pure functions of explicit arrays."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def clipped_surrogate_loss(
    log_prob: jax.Array, old_log_prob: jax.Array, advantages: jax.Array, clip_eps: float | jax.Array
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Negative clipped surrogate objective ``-E[min(rho A, clip(rho, 1-eps, 1+eps) A)]`` (Eq. 7).

    Also returns the diagnostics of the probability ratio ``rho``: the
    ``approx_kl`` estimator ``E[(rho - 1) - log rho]`` and the fraction of
    samples whose ratio left the clip range.
    """
    log_ratio = log_prob - old_log_prob
    ratio = jnp.exp(log_ratio)
    unclipped = ratio * advantages
    clipped = jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * advantages
    loss = -jnp.mean(jnp.minimum(unclipped, clipped))
    diagnostics = {
        "approx_kl": jnp.mean((ratio - 1.0) - log_ratio),
        "clip_fraction": jnp.mean((jnp.abs(ratio - 1.0) > clip_eps).astype(jnp.float32)),
    }
    return loss, diagnostics


def clipped_value_loss(
    values: jax.Array, old_values: jax.Array, targets: jax.Array, clip_eps: float | jax.Array
) -> jax.Array:
    """``0.5 E[max((V - R)^2, (V_old + clip(V - V_old, -eps, eps) - R)^2)]``: the critic may not jump far."""
    clipped = old_values + jnp.clip(values - old_values, -clip_eps, clip_eps)
    return 0.5 * jnp.mean(jnp.maximum(jnp.square(values - targets), jnp.square(clipped - targets)))


def normalize_advantages(advantages: jax.Array, epsilon: float = 1e-8) -> jax.Array:
    """Advantages shifted to mean 0 and scaled to standard deviation 1 over the minibatch."""
    return (advantages - advantages.mean()) / (advantages.std() + epsilon)
