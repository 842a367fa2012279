"""DeltaNet and Gated DeltaNet: multi-head matrix memories written by the (gated) delta rule, resettable.

Each head keeps ``S [dv, dk]`` and, at every step, (Yang et al. 2024, "Gated
Delta Networks: Improving Mamba2 with Delta Rule", eq. 10)::

    S_t = alpha_t S_{t-1} (I - beta_t k_t k_t^T) + beta_t v_t k_t^T,    o_t = S_t q_t

where ``q_t, k_t, v_t`` are projections of ``x_t`` passed through a short causal
convolution (``conv_size`` steps, then SiLU; short_conv.py) as in the paper's
architecture, ``q_t, k_t`` L2-normalised per head, ``beta_t = sigmoid(w_beta . x_t)`` and,
for the gated core, ``alpha_t = sigmoid(w_alpha . x_t + b)`` (``deltanet`` fixes
``alpha = 1``). The bias ``b`` starts spread over heads so that the initial
decays run from 0.88 to 0.9975 (memory horizons of about 8 to 400 steps).

Negative eigenvalues (Grazzi et al. 2025, "Unlocking State-Tracking in Linear
RNNs Through Negative Eigenvalues", Sec. 4): the transition ``I - beta k k^T``
has the eigenvalue ``1 - beta`` along ``k`` and 1 elsewhere, so with ``beta`` in
``(0, 1)`` it lies in ``[0, 1]`` and the memory cannot flip a sign (parity is out
of reach); ``negative_eigenvalues=True`` uses ``beta = 2 sigmoid(.)`` in
``(0, 2)``, so the eigenvalue ranges over ``(-1, 1]`` (``beta = 2`` is a
Householder reflection).

The recurrence runs in delta_rule.py (sequential scan or chunkwise UT form, by
``method``); layers are stacked by memory_stack.py.
"""

from __future__ import annotations

from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from mnemax.backbones.delta_rule import gated_delta_rule
from mnemax.backbones.memory_stack import MemoryStack
from mnemax.backbones.registry import register
from mnemax.backbones.short_conv import ConvolvedState, conv_history, convolved_projections


def split_heads(x: jax.Array, heads: int) -> jax.Array:
    """``[T, B, H * d] -> [T, B, H, d]``."""
    return x.reshape(*x.shape[:-1], heads, x.shape[-1] // heads)


def l2_normalise(x: jax.Array, eps: float = 1e-6) -> jax.Array:
    """Unit vectors along the last axis (``x / max(|x|, eps)``, smooth for gradients)."""
    return x * jax.lax.rsqrt(jnp.sum(x * x, axis=-1, keepdims=True) + eps**2)


def write_strength(logits: jax.Array, negative_eigenvalues: bool) -> jax.Array:
    """``beta = sigmoid(logits)`` in ``(0, 1)``, or ``2 sigmoid(logits)`` in ``(0, 2)`` with negative eigenvalues."""
    beta = nn.sigmoid(logits)
    return 2.0 * beta if negative_eigenvalues else beta


def decay_bias_init(key, shape, dtype=jnp.float32):
    """Per-head bias of the decay logit: ``sigmoid(b)`` spread from 0.88 to 0.9975 over heads."""
    return jnp.linspace(2.0, 6.0, shape[0], dtype=dtype)


class DeltaRuleMixer(nn.Module):
    """One multi-head (gated) delta-rule layer: ``(ConvolvedState, x [T, B, F], resets) -> (state, o [T, B, F])``.

    ``state.core`` is the memory ``S [B, H, d, d]``, ``state.conv`` the window of the q/k/v convolution.
    """

    features: int
    num_heads: int
    gated: bool
    negative_eigenvalues: bool
    method: str
    chunk_size: int
    conv_size: int

    @nn.compact
    def __call__(self, state: ConvolvedState, x: jax.Array, resets: jax.Array) -> tuple[ConvolvedState, jax.Array]:
        width = self.features
        history, (q, k, v) = convolved_projections(x, (width, width, width), state.conv, resets, self.conv_size)
        q = l2_normalise(split_heads(q, self.num_heads))
        k = l2_normalise(split_heads(k, self.num_heads))
        v = split_heads(v, self.num_heads)
        beta = write_strength(nn.Dense(self.num_heads, name="beta")(x), self.negative_eigenvalues)  # [T, B, H]
        if self.gated:
            log_alpha = jax.nn.log_sigmoid(nn.Dense(self.num_heads, name="alpha", bias_init=decay_bias_init)(x))
        else:
            log_alpha = jnp.zeros_like(beta)
        memory, out = gated_delta_rule(state.core, q, k, v, beta, log_alpha, resets, self.method, self.chunk_size)
        return ConvolvedState(memory, history), out.reshape(*out.shape[:2], self.features)


@register("deltanet")
class DeltaNet(MemoryStack):
    """Stacked resettable DeltaNet layers (``alpha = 1``).

    Options: ``num_layers`` (2), ``num_heads`` (2; ``features`` must divide
    evenly), ``negative_eigenvalues`` (False: ``beta`` in (0, 1); True: (0, 2)),
    ``method`` ("auto", "chunkwise", "sequential"; see delta_rule.py),
    ``chunk_size`` (32, steps per chunk of the chunkwise form), ``conv_size``
    (4, steps of the short convolution on queries, keys and values). Carry: a
    :class:`ConvolvedState` per layer, the ``[B, heads, d, d]`` float32 memory
    (``d = features / heads``) and the convolution's ``[B, conv_size - 1, 3 features]`` window.
    """

    num_heads: int = 2
    negative_eigenvalues: bool = False
    chunk_size: int = 32
    conv_size: int = 4
    gated: ClassVar[bool] = False

    def check_options(self) -> None:
        super().check_options()
        if self.num_heads < 1 or self.features % self.num_heads:
            raise ValueError(
                f"features ({self.features}) must split evenly into num_heads ({self.num_heads}) heads; "
                "pick num_heads dividing features."
            )
        if self.chunk_size < 1 or self.conv_size < 1:
            raise ValueError(f"chunk_size and conv_size must be at least 1, got {self.chunk_size} and {self.conv_size}.")

    def layer_state(self, batch_size: int) -> ConvolvedState:
        size = self.features // self.num_heads
        memory = jnp.zeros((batch_size, self.num_heads, size, size), jnp.float32)
        return ConvolvedState(memory, conv_history(batch_size, self.conv_size, 3 * self.features))

    def make_mixer(self, name: str) -> DeltaRuleMixer:
        return DeltaRuleMixer(
            self.features,
            self.num_heads,
            self.gated,
            self.negative_eigenvalues,
            self.method,
            self.chunk_size,
            self.conv_size,
            name=name,
        )


@register("gated_deltanet")
class GatedDeltaNet(DeltaNet):
    """Stacked resettable Gated DeltaNet layers: DeltaNet with a data-dependent decay ``alpha_t``.

    Options as :class:`DeltaNet`.
    """

    gated: ClassVar[bool] = True

