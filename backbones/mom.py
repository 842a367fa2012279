"""MoM: Mixture-of-Memories (Du et al. 2025, "MoM: Linear Sequence Modeling with Mixture-of-Memories"), resettable.

A layer holds ``num_memories`` matrix memories plus one shared memory, each
``[d, d]`` with its own key and value projections. A router scores the token,
``g_t = softmax(W_g x_t)``, and only the ``top_k`` best memories are written
and read (Sec. 3.2, eqs. 4-7); the shared memory is always both::

    selected m:   M^m_t = alpha^m_t M^m_{t-1} (I - beta^m_t k^m_t k^m_t^T) + beta^m_t v^m_t k^m_t^T
    unselected m: M^m_t = M^m_{t-1}
    o_t = W_o ( sum_{m in top-k} g~^m_t M^m_t q_t  +  M^shared_t q_t ),   g~ = g renormalised over the top-k

Each memory runs the gated delta rule (the paper's strongest memory update), so
the whole layer is one call of delta_rule.py with the memories as heads: an
unselected memory gets ``beta = 0, alpha = 1`` and keeps its value exactly, and
a reset (``alpha <- 0`` for every memory) clears them all. ``q_t`` is shared by
the memories, as in the paper. ``negative_eigenvalues`` lets ``beta`` range over
``(0, 2)`` as in gated_deltanet.py. Queries, keys and values pass through a short
causal convolution (``conv_size`` steps, then SiLU), as in the paper's Gated
DeltaNet memories (short_conv.py).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from mnemax.backbones.delta_rule import gated_delta_rule
from mnemax.backbones.gated_deltanet import decay_bias_init, l2_normalise, split_heads, write_strength
from mnemax.backbones.memory_stack import MemoryStack
from mnemax.backbones.registry import register
from mnemax.backbones.short_conv import ConvolvedState, conv_history, convolved_projections


def route(logits: jax.Array, top_k: int) -> tuple[jax.Array, jax.Array]:
    """Top-k routing: ``logits [..., E] -> (selected [..., E] in {0, 1}, weights [..., E])``.

    ``weights`` is the softmax renormalised over the selected memories (zero elsewhere).
    """
    probabilities = jax.nn.softmax(logits, axis=-1)
    _, chosen = jax.lax.top_k(probabilities, top_k)
    selected = jnp.sum(jax.nn.one_hot(chosen, logits.shape[-1], dtype=logits.dtype), axis=-2)
    weights = probabilities * selected
    return selected, weights / jnp.sum(weights, axis=-1, keepdims=True)


class MixtureOfMemoriesMixer(nn.Module):
    """One MoM layer: ``(ConvolvedState, x [T, B, F], resets) -> (state, o [T, B, F])``.

    ``state.core`` holds the memories ``M [B, E + 1, d, d]`` (the shared one last),
    ``state.conv`` the window of the q/k/v convolution.
    """

    features: int
    num_memories: int
    top_k: int
    memory_size: int
    negative_eigenvalues: bool
    method: str
    chunk_size: int
    conv_size: int

    @nn.compact
    def __call__(self, state: ConvolvedState, x: jax.Array, resets: jax.Array) -> tuple[ConvolvedState, jax.Array]:
        count, size = self.num_memories + 1, self.memory_size
        selected, weights = route(nn.Dense(self.num_memories, use_bias=False, name="router")(x), self.top_k)
        always = jnp.ones((*x.shape[:2], 1), x.dtype)
        active = jnp.concatenate([selected, always], axis=-1)  # [T, B, E + 1]
        mixing = jnp.concatenate([weights, always], axis=-1)

        history, (q, k, v) = convolved_projections(x, (size, count * size, count * size), state.conv, resets, self.conv_size)
        q = jnp.broadcast_to(l2_normalise(q)[:, :, None, :], (*x.shape[:2], count, size))  # one query read from every memory
        k = l2_normalise(split_heads(k, count))
        v = split_heads(v, count)
        beta = active * write_strength(nn.Dense(count, name="beta")(x), self.negative_eigenvalues)
        log_alpha = active * jax.nn.log_sigmoid(nn.Dense(count, name="alpha", bias_init=decay_bias_init)(x))
        memories, out = gated_delta_rule(state.core, q, k, v, beta, log_alpha, resets, self.method, self.chunk_size)
        read = jnp.einsum("tbm,tbmd->tbd", mixing, out)  # [T, B, d]
        return ConvolvedState(memories, history), nn.Dense(self.features, use_bias=False, name="output")(read)


@register("mom")
class MixtureOfMemories(MemoryStack):
    """Stacked resettable Mixture-of-Memories layers.

    Options: ``num_layers`` (2), ``num_memories`` (4, routed memories per layer),
    ``top_k`` (2, memories written and read per token), ``memory_size``
    (``d``; default ``features / 4``), ``negative_eigenvalues`` (False),
    ``method`` and ``chunk_size`` (delta_rule.py), ``conv_size`` (4, steps of
    the short convolution on queries, keys and values). Carry: a
    :class:`ConvolvedState` per layer, the ``[B, num_memories + 1, d, d]``
    float32 memories and the convolution's window.
    """

    num_memories: int = 4
    top_k: int = 2
    memory_size: int | None = None
    negative_eigenvalues: bool = False
    chunk_size: int = 32
    conv_size: int = 4

    @property
    def _memory_size(self) -> int:
        return max(self.features // 4, 1) if self.memory_size is None else self.memory_size

    def check_options(self) -> None:
        super().check_options()
        if not 1 <= self.top_k <= self.num_memories:
            raise ValueError(
                f"top_k must lie in [1, num_memories] = [1, {self.num_memories}], got {self.top_k}."
            )
        if min(self._memory_size, self.chunk_size, self.conv_size) < 1:
            raise ValueError(
                "memory_size, chunk_size and conv_size must be at least 1, got "
                f"{self._memory_size}, {self.chunk_size} and {self.conv_size}."
            )

    def layer_state(self, batch_size: int) -> ConvolvedState:
        size, count = self._memory_size, self.num_memories + 1
        memories = jnp.zeros((batch_size, count, size, size), jnp.float32)
        return ConvolvedState(memories, conv_history(batch_size, self.conv_size, (2 * count + 1) * size))

    def make_mixer(self, name: str) -> MixtureOfMemoriesMixer:
        return MixtureOfMemoriesMixer(
            self.features,
            self.num_memories,
            self.top_k,
            self._memory_size,
            self.negative_eigenvalues,
            self.method,
            self.chunk_size,
            self.conv_size,
            name=name,
        )
