"""The world-model loss (DreamerV3 eq. 4-5): prediction + dynamics + representation, each an explicit function.

* prediction: ``-log p(x_t)`` (symlog MSE for vectors, MSE for images)
  ``- log p(r_t)`` (two-hot) ``- log p(c_t)`` (Bernoulli);
* dynamics: ``max(free, KL(sg(q) || p))`` trains the prior towards the posterior;
* representation: ``max(free, KL(q || sg(p)))`` keeps the posterior predictable.

All terms are per step ``[T, B]`` and averaged over steps.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from mnemax.worldmodels.batch import SequenceBatch
from mnemax.worldmodels.distributions import categorical_kl, free_bits, symlog, twohot_log_prob
from mnemax.worldmodels.networks import unit_frames
from mnemax.worldmodels.sequence_model import (
    LatentSequenceModel,
    ModelCarry,
    Observation,
    heads,
    observe,
)


def kl_balance(
    posterior_logits: jax.Array, prior_logits: jax.Array, free_nats: float
) -> tuple[jax.Array, jax.Array]:
    """``(dynamics, representation)`` KL terms ``[...]``, each clipped below at ``free_nats`` (DreamerV3 eq. 5)."""
    sg = jax.lax.stop_gradient
    dynamics = free_bits(categorical_kl(sg(posterior_logits), prior_logits), free_nats)
    representation = free_bits(categorical_kl(posterior_logits, sg(prior_logits)), free_nats)
    return dynamics, representation


def observation_loss(model: LatentSequenceModel, predicted: jax.Array, obs: jax.Array) -> jax.Array:
    """Squared error summed over observation dims ``[..., *obs_shape] -> [...]``.

    Vectors are compared in symlog space, images in [0, 1] (uint8 frames divided by 255).
    """
    target = unit_frames(obs) if model.is_image else symlog(obs)
    axes = tuple(range(-len(model.obs_shape), 0))
    return jnp.sum(jnp.square(predicted - target), axis=axes)


def prediction_losses(
    model: LatentSequenceModel, params: Any, observation: Observation, batch: SequenceBatch
) -> dict[str, jax.Array]:
    """Negative log-likelihoods of the decoder, reward and continue heads, each ``[T, B]``."""
    out = heads(model, params, observation.state)
    return {
        "observation": observation_loss(model, out.observation, batch.obs),
        "reward": -twohot_log_prob(out.reward_logits, batch.rewards, model.config.twohot_limit),
        "continue": optax.sigmoid_binary_cross_entropy(out.continue_logits, batch.continues),
    }


def world_model_loss(
    model: LatentSequenceModel, params: Any, carry: ModelCarry, batch: SequenceBatch, key: jax.Array
) -> tuple[jax.Array, tuple[dict[str, jax.Array], ModelCarry, Observation]]:
    """Total loss (a scalar) and ``(metrics, final carry, observation [T, B])`` for one batch of sequences.

    ``loss = mean_t [obs + reward_scale * reward + continue + dyn_scale * dyn + rep_scale * rep]``.
    """
    config = model.config
    final_carry, observation = observe(model, params, carry, batch.obs, batch.prev_actions, batch.resets, key)
    terms = prediction_losses(model, params, observation, batch)
    dynamics, representation = kl_balance(observation.posterior_logits, observation.prior_logits, config.free_nats)
    total = terms["observation"] + config.reward_scale * terms["reward"] + terms["continue"]
    total = total + config.dyn_scale * dynamics + config.rep_scale * representation
    raw_kl = categorical_kl(observation.posterior_logits, observation.prior_logits)
    metrics = {
        "wm_loss": jnp.mean(total),
        "obs_loss": jnp.mean(terms["observation"]),
        "reward_loss": jnp.mean(terms["reward"]),
        "continue_loss": jnp.mean(terms["continue"]),
        "dyn_loss": jnp.mean(dynamics),
        "rep_loss": jnp.mean(representation),
        "kl": jnp.mean(raw_kl),
    }
    return jnp.mean(total), (metrics, final_carry, observation)
