"""Transforms and distributions of DreamerV3's recipe (Hafner et al. 2023, "Mastering Diverse Domains ...").

* :func:`symlog` / :func:`symexp` (eq. 9): compress large magnitudes, keep small ones nearly linear.
* Two-hot targets over ``num_bins`` bins equally spaced in symlog space (eq. 10-11):
  a scalar becomes weights on its two nearest bins, so a categorical head can
  regress rewards and values of any scale. The bins span ``[-limit, limit]``
  (DreamerV3: 20); a narrower span resolves small rewards: with 255 bins over
  ``[-20, 20]``, rewards of ``+-0.02`` both put 87% of their mass on the centre
  bin, so a head that tells them apart gains only 0.07 nats per step.
* Categorical latents ``[..., groups, classes]`` with a uniform mixture
  (``unimix``, 1%) so no class has probability zero, sampled as one-hot with
  straight-through gradients.
* KL between such latents, summed over groups, and free bits (eq. 5): the KL
  terms are clipped below ``free`` nats so the model is not pushed to copy the
  prior once it is already close.
"""

from __future__ import annotations

import distrax
import jax
import jax.numpy as jnp

SYMLOG_LIMIT = 20.0
"""Two-hot bins span ``[-20, 20]`` in symlog space, i.e. about ``±4.9e8`` in raw units (DreamerV3's range)."""


def symlog(x: jax.Array) -> jax.Array:
    """``sign(x) * log(1 + |x|)``, elementwise."""
    return jnp.sign(x) * jnp.log1p(jnp.abs(x))


def symexp(x: jax.Array) -> jax.Array:
    """``sign(x) * (exp(|x|) - 1)``, the inverse of :func:`symlog`."""
    return jnp.sign(x) * jnp.expm1(jnp.abs(x))


def symlog_bins(num_bins: int = 255, limit: float = SYMLOG_LIMIT) -> jax.Array:
    """``[num_bins]`` bin centres, equally spaced in symlog space over ``[-limit, limit]``."""
    if num_bins < 2:
        raise ValueError(f"Two-hot encoding needs at least 2 bins, got num_bins={num_bins}.")
    if not limit > 0:
        raise ValueError(f"The two-hot bins span [-limit, limit] in symlog space; limit must be positive, got {limit}.")
    return jnp.linspace(-limit, limit, num_bins)


def twohot(x: jax.Array, num_bins: int = 255, limit: float = SYMLOG_LIMIT) -> jax.Array:
    """Two-hot code of ``symlog(x)``: ``[...] -> [..., num_bins]`` weights summing to one.

    The two bins around ``symlog(x)`` get weights inversely proportional to
    their distance, so ``sum(weights * bins) == symlog(x)`` exactly (inside the
    bin range; values beyond it are clipped to the outer bins).
    """
    bins = symlog_bins(num_bins, limit)
    y = jnp.clip(symlog(x), bins[0], bins[-1])
    upper = jnp.clip(jnp.searchsorted(bins, y, side="right"), 1, num_bins - 1)
    lower = upper - 1
    width = bins[upper] - bins[lower]
    weight_upper = (y - bins[lower]) / width
    return (
        jax.nn.one_hot(lower, num_bins) * (1.0 - weight_upper)[..., None]
        + jax.nn.one_hot(upper, num_bins) * weight_upper[..., None]
    )


def twohot_mean(logits: jax.Array, limit: float = SYMLOG_LIMIT) -> jax.Array:
    """Decode a two-hot head ``[..., num_bins] -> [...]``: ``symexp`` of the expected bin under ``softmax(logits)``."""
    bins = symlog_bins(logits.shape[-1], limit)
    return symexp(jnp.sum(jax.nn.softmax(logits, axis=-1) * bins, axis=-1))


def twohot_decode(weights: jax.Array, limit: float = SYMLOG_LIMIT) -> jax.Array:
    """Invert :func:`twohot`: ``[..., num_bins]`` weights -> ``[...]`` raw values."""
    return symexp(jnp.sum(weights * symlog_bins(weights.shape[-1], limit), axis=-1))


def twohot_log_prob(logits: jax.Array, target: jax.Array, limit: float = SYMLOG_LIMIT) -> jax.Array:
    """Log-likelihood ``sum(twohot(target) * log_softmax(logits))``: ``[..., bins], [...] -> [...]``."""
    weights = jax.lax.stop_gradient(twohot(target, logits.shape[-1], limit))
    return jnp.sum(weights * jax.nn.log_softmax(logits, axis=-1), axis=-1)


def unimix_logits(logits: jax.Array, unimix: float) -> jax.Array:
    """Logits of ``(1 - unimix) * softmax(logits) + unimix / classes`` over the last axis."""
    if not 0.0 <= unimix < 1.0:
        raise ValueError(f"unimix is a mixing weight in [0, 1), got {unimix}.")
    if unimix == 0.0:
        return jax.nn.log_softmax(logits, axis=-1)
    probs = (1.0 - unimix) * jax.nn.softmax(logits, axis=-1) + unimix / logits.shape[-1]
    return jnp.log(probs)


def sample_one_hot(key: jax.Array, logits: jax.Array) -> jax.Array:
    """One-hot sample of ``Categorical(logits)`` over the last axis, with straight-through gradients.

    The forward value is the one-hot sample; the gradient is that of the
    probabilities (Bengio et al. 2013), which is how DreamerV3 trains through
    discrete latents.
    """
    probs = jax.nn.softmax(logits, axis=-1)
    sample = distrax.OneHotCategorical(logits=logits, dtype=jnp.float32).sample(seed=key)
    return sample + probs - jax.lax.stop_gradient(probs)


def categorical_kl(logits_p: jax.Array, logits_q: jax.Array) -> jax.Array:
    """``KL(p || q)`` of independent categoricals ``[..., groups, classes]``, summed over groups -> ``[...]``."""
    log_p = jax.nn.log_softmax(logits_p, axis=-1)
    log_q = jax.nn.log_softmax(logits_q, axis=-1)
    return jnp.sum(jnp.exp(log_p) * (log_p - log_q), axis=(-2, -1))


def free_bits(kl: jax.Array, free: float) -> jax.Array:
    """``max(kl, free)``: below ``free`` nats the KL term is constant, so it gives no gradient (DreamerV3 eq. 5)."""
    return jnp.maximum(kl, free)
