"""DreamerV3's actor-critic in imagination (Hafner et al. 2023, sec. 3), as pure functions and two small networks.

* :func:`lambda_returns` (eq. 7): ``R_t = r_{t+1} + d_{t+1} ((1 - lambda) v_{t+1} + lambda R_{t+1})``, ``R_H = v_H``.
* :class:`ReturnScale` (eq. 8-9): returns are divided by ``max(1, S)`` where ``S``
  is an EMA of the 5th-95th percentile range, so the entropy bonus means the
  same thing for small and large rewards without amplifying noise near zero.
* :class:`Actor`: categorical with 1% unimix for discrete actions, a bounded
  normal (tanh mean, std in ``[min_std, 1]``) for continuous ones in ``[-1, 1]``.
* :class:`Critic`: two-hot over symlog bins, zero-initialised output layer.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp

from mnemax.worldmodels.distributions import unimix_logits
from mnemax.worldmodels.networks import MLP, zero_dense


def lambda_returns(rewards: jax.Array, discounts: jax.Array, values: jax.Array, lam: float | jax.Array) -> jax.Array:
    """Lambda-returns ``[H, N]`` from ``rewards [H, N]`` (``r_{t+1}``), ``discounts [H, N]`` (``gamma * c_{t+1}``), ``values [H + 1, N]``."""
    if values.shape[0] != rewards.shape[0] + 1 or discounts.shape != rewards.shape:
        raise ValueError(
            f"lambda_returns needs rewards and discounts [H, N] and values [H + 1, N]; got {rewards.shape}, "
            f"{discounts.shape} and {values.shape}."
        )

    def step(next_return, inputs):
        reward, discount, next_value = inputs
        ret = reward + discount * ((1.0 - lam) * next_value + lam * next_return)
        return ret, ret

    _, returns = jax.lax.scan(step, values[-1], (rewards, discounts, values[1:]), reverse=True)
    return returns


class ReturnScale(NamedTuple):
    """EMA of the 5th (``low``) and 95th (``high``) percentiles of imagined returns, float32 scalars."""

    low: jax.Array
    high: jax.Array

    @classmethod
    def zeros(cls) -> "ReturnScale":
        return cls(jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32))


def update_return_scale(scale: ReturnScale, returns: jax.Array, rate: float) -> ReturnScale:
    """Move the percentile EMAs towards those of ``returns`` (any shape) by ``rate`` (DreamerV3: 0.01)."""
    returns = jax.lax.stop_gradient(returns)
    low, high = jnp.percentile(returns, 5.0), jnp.percentile(returns, 95.0)
    return ReturnScale((1 - rate) * scale.low + rate * low, (1 - rate) * scale.high + rate * high)


def return_divisor(scale: ReturnScale, floor: float = 1.0) -> jax.Array:
    """``max(floor, high - low)``: returns are divided by this, never scaled up."""
    return jnp.maximum(floor, scale.high - scale.low)


class Actor(nn.Module):
    """Policy on ``[h, z]``: ``features [..., F] ->`` logits ``[..., A]`` or ``(mean, std)`` ``[..., A]`` each."""

    action_size: int
    discrete: bool
    hidden: int = 256
    layers: int = 2
    min_std: float = 0.1

    @nn.compact
    def __call__(self, features: jax.Array) -> Any:
        x = MLP((self.hidden,) * self.layers)(features)
        if self.discrete:
            return nn.Dense(self.action_size)(x)
        mean, std = jnp.split(nn.Dense(2 * self.action_size)(x), 2, axis=-1)
        return jnp.tanh(mean), (1.0 - self.min_std) * jax.nn.sigmoid(std + 2.0) + self.min_std


def action_distribution(discrete: bool, outputs: Any, unimix: float) -> distrax.Distribution:
    """The policy: ``Categorical`` with ``unimix`` (discrete) or a diagonal Normal with bounded mean and std."""
    if discrete:
        return distrax.Categorical(logits=unimix_logits(outputs, unimix))
    mean, std = outputs
    return distrax.MultivariateNormalDiag(mean, std)


def taken_log_prob(discrete: bool, dist: distrax.Distribution, taken: jax.Array) -> jax.Array:
    """Log-probability ``[...]`` of the action the world model and the env actually received.

    Discrete: ``taken`` is the index. Continuous: ``taken`` is the sample
    clipped to ``[-1, 1]`` (:func:`action_input`), so the policy that acts is
    the Normal censored at the bounds; a clipped coordinate has the
    probability of the whole tail beyond its bound, an inner one the Normal's
    density (clipped action policy gradient, Fujita & Maeda 2018). The Normal's
    density at the clipped value instead biases the gradient whenever a sample
    leaves the box, which is common while the std is near its initial 0.9.
    """
    if discrete:
        return dist.log_prob(taken)
    normal = distrax.Normal(dist.loc, dist.scale_diag)  # per coordinate, [..., A]
    inner = normal.log_prob(taken)
    upper = jax.scipy.stats.norm.logsf(1.0, normal.loc, normal.scale)
    lower = jax.scipy.stats.norm.logcdf(-1.0, normal.loc, normal.scale)
    per_coordinate = jnp.where(taken >= 1.0, upper, jnp.where(taken <= -1.0, lower, inner))
    return jnp.sum(per_coordinate, axis=-1)


def action_input(discrete: bool, action: jax.Array, action_size: int) -> jax.Array:
    """What the world model reads for ``action``: one-hot ``[..., A]`` for indices, the clipped vector otherwise."""
    if discrete:
        return jax.nn.one_hot(action, action_size)
    return jnp.clip(action, -1.0, 1.0)


class Critic(nn.Module):
    """Value on ``[h, z]`` as two-hot logits ``[..., num_bins]`` (decode with ``twohot_mean``); output layer zero."""

    num_bins: int = 255
    hidden: int = 256
    layers: int = 2

    @nn.compact
    def __call__(self, features: jax.Array) -> jax.Array:
        return zero_dense(self.num_bins)(MLP((self.hidden,) * self.layers)(features))


def imagination_weights(start_continues: jax.Array, discounts: jax.Array) -> jax.Array:
    """Loss weight of imagined step t ``[H + 1, N]``: the probability and discount of still being in the episode.

    ``start_continues [N]`` is ``1 - terminal`` of the start state; ``discounts [H, N]`` is ``gamma * c_{t+1}``.
    """
    return jax.lax.stop_gradient(jnp.cumprod(jnp.concatenate([start_continues[None], discounts], axis=0), axis=0))


def ema_update(slow: Any, fast: Any, rate: float) -> Any:
    """``slow <- (1 - rate) * slow + rate * fast`` leafwise (the slow critic, DreamerV3: rate 0.02)."""
    return jax.tree.map(lambda s, f: (1.0 - rate) * s + rate * f, slow, fast)
