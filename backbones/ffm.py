"""FFM: Fast and Forgetful Memory (Morad et al. 2023, "Reinforcement Learning with Fast and
Forgetful Memory", NeurIPS), resettable.

This is FFM itself, not the linear-attention fallback. One layer keeps a
complex state of ``m`` traces x ``c`` contexts and updates it with a fixed
(input-independent) decay-and-rotate transition::

    x~_t  = (W_pre x_t) * sigmoid(W_in x_t)                  [B, m]   gated input
    S_t   = gamma * S_{t-1} + x~_t 1_c^T                     [B, m, c] (reset: S_{t-1} := 0)
    gamma = exp(-|alpha| + i omega)                          alpha [m], omega [c]
    z_t   = W_mix [Re S_t ; Im S_t]                          [B, H]
    g_t   = sigmoid(W_out x_t)
    y_t   = LayerNorm(z_t * g_t) + (W_skip x_t) * (1 - g_t)  (LayerNorm without scale or bias)

``alpha`` starts evenly spaced on ``[1e-6, 0.5]`` (slow to fast forgetting) and
``omega = 2 pi / period`` with periods evenly spaced on ``[min_period,
max_period]``, the deterministic initialisation of the authors' code. The
transition is the same at every step, so the recurrence is
:func:`scan.resettable_scan` (associative for ``method="parallel"``,
``lax.scan`` for ``"sequential"``, ``"auto"`` by backend as S5 does).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from mnemax.backbones.mixer_stack import MixerStack, diagonal_scan_method
from mnemax.backbones.registry import register
from mnemax.backbones.scan import resettable_scan


class FFMLayer(nn.Module):
    """One FFM aggregator with its input and output gates; state ``[B, m, c]`` complex64."""

    features: int
    trace_size: int
    context_size: int
    min_period: float = 1.0
    max_period: float = 1024.0
    method: str = "auto"

    def initial_state(self, batch_size: int) -> jax.Array:
        return jnp.zeros((batch_size, self.trace_size, self.context_size), jnp.complex64)

    @nn.compact
    def __call__(self, state: jax.Array, x: jax.Array, resets: jax.Array) -> tuple[jax.Array, jax.Array]:
        alpha = self.param("alpha", lambda key, shape: jnp.linspace(1e-6, 0.5, shape[0]), (self.trace_size,))
        omega = self.param(
            "omega",
            lambda key, shape: 2 * jnp.pi / jnp.linspace(self.min_period, self.max_period, shape[0]),
            (self.context_size,),
        )
        gamma = jnp.exp(jax.lax.complex(-jnp.abs(alpha)[:, None], jnp.broadcast_to(omega, (self.trace_size, self.context_size))))
        gated = nn.Dense(self.trace_size, name="pre")(x) * nn.sigmoid(nn.Dense(self.trace_size, name="input_gate")(x))
        drive = jnp.broadcast_to(gated[..., None], gated.shape + (self.context_size,)).astype(jnp.complex64)
        state, states = resettable_scan(gamma, drive, resets, state, diagonal_scan_method(self.method))  # [T, B, m, c]
        flat = jnp.concatenate([states.real, states.imag], axis=-1).reshape(*states.shape[:2], -1)  # [T, B, 2mc]
        mixed = nn.Dense(self.features, name="mix")(flat)
        gate = nn.sigmoid(nn.Dense(self.features, name="output_gate")(x))
        normed = nn.LayerNorm(use_scale=False, use_bias=False, name="norm")(mixed * gate)
        return state, normed + nn.Dense(self.features, name="skip")(x) * (1.0 - gate)


@register("ffm")
class FFM(MixerStack):
    """Stacked resettable FFM layers (see mixer_stack.py for the block; the paper uses one).

    Options: ``num_layers`` (1), ``trace_size`` m (32), ``context_size`` c (4),
    ``min_period``/``max_period`` (1/1024, the initial rotation periods),
    ``method`` (``"auto"``, ``"sequential"``, ``"parallel"``).
    """

    num_layers: int = 1
    trace_size: int = 32
    context_size: int = 4
    min_period: float = 1.0
    max_period: float = 1024.0

    def check_options(self) -> None:
        super().check_options()
        if self.trace_size < 1 or self.context_size < 1:
            raise ValueError(f"FFM needs trace_size and context_size >= 1, got {self.trace_size}, {self.context_size}.")
        if not 0 < self.min_period <= self.max_period:
            raise ValueError(f"FFM needs 0 < min_period <= max_period, got {self.min_period}, {self.max_period}.")

    def make_mixer(self, **naming) -> FFMLayer:
        return FFMLayer(
            features=self.features,
            trace_size=self.trace_size,
            context_size=self.context_size,
            min_period=self.min_period,
            max_period=self.max_period,
            method=self.method,
            **naming,
        )
