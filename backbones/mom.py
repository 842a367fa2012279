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
``(0, 2)`` as in gated_deltanet.py.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from mnemax.backbones.delta_rule import gated_delta_rule
from mnemax.backbones.gated_deltanet import decay_bias_init, l2_normalise, split_heads, write_strength
from mnemax.backbones.memory_stack import MemoryStack
from mnemax.backbones.registry import register


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
    """One MoM layer: ``(M [B, E + 1, d, d], x [T, B, F], resets) -> (M, o [T, B, F])``; the shared memory is last."""

    features: int
    num_memories: int
    top_k: int
    memory_size: int
    negative_eigenvalues: bool
    method: str
    chunk_size: int

    @nn.compact
    def __call__(self, state: jax.Array, x: jax.Array, resets: jax.Array) -> tuple[jax.Array, jax.Array]:
        count, size = self.num_memories + 1, self.memory_size
        selected, weights = route(nn.Dense(self.num_memories, use_bias=False, name="router")(x), self.top_k)
        always = jnp.ones((*x.shape[:2], 1), x.dtype)
        active = jnp.concatenate([selected, always], axis=-1)  # [T, B, E + 1]
        mixing = jnp.concatenate([weights, always], axis=-1)

        q = l2_normalise(nn.Dense(size, use_bias=False, name="query")(x))[:, :, None, :]
        q = jnp.broadcast_to(q, (*x.shape[:2], count, size))  # one query read from every memory
        k = l2_normalise(split_heads(nn.Dense(count * size, use_bias=False, name="key")(x), count))
        v = split_heads(nn.Dense(count * size, use_bias=False, name="value")(x), count)
        beta = active * write_strength(nn.Dense(count, name="beta")(x), self.negative_eigenvalues)
        log_alpha = active * jax.nn.log_sigmoid(nn.Dense(count, name="alpha", bias_init=decay_bias_init)(x))
        state, out = gated_delta_rule(state, q, k, v, beta, log_alpha, resets, self.method, self.chunk_size)
        read = jnp.einsum("tbm,tbmd->tbd", mixing, out)  # [T, B, d]
        return state, nn.Dense(self.features, use_bias=False, name="output")(read)


@register("mom")
class MixtureOfMemories(MemoryStack):
    """Stacked resettable Mixture-of-Memories layers.

    Options: ``num_layers`` (2), ``num_memories`` (4, routed memories per layer),
    ``top_k`` (2, memories written and read per token), ``memory_size``
    (``d``; default ``features / 4``), ``negative_eigenvalues`` (False),
    ``method`` and ``chunk_size`` (delta_rule.py). Carry: one
    ``[B, num_memories + 1, d, d]`` float32 array per layer.
    """

    num_memories: int = 4
    top_k: int = 2
    memory_size: int | None = None
    negative_eigenvalues: bool = False
    chunk_size: int = 32

    @property
    def _memory_size(self) -> int:
        return max(self.features // 4, 1) if self.memory_size is None else self.memory_size

    def check_options(self) -> None:
        super().check_options()
        if not 1 <= self.top_k <= self.num_memories:
            raise ValueError(
                f"top_k must lie in [1, num_memories] = [1, {self.num_memories}], got {self.top_k}."
            )
        if self._memory_size < 1 or self.chunk_size < 1:
            raise ValueError(f"memory_size and chunk_size must be at least 1, got {self._memory_size} and {self.chunk_size}.")

    def layer_state(self, batch_size: int) -> jax.Array:
        size = self._memory_size
        return jnp.zeros((batch_size, self.num_memories + 1, size, size), jnp.float32)

    def make_mixer(self, name: str) -> MixtureOfMemoriesMixer:
        return MixtureOfMemoriesMixer(
            self.features,
            self.num_memories,
            self.top_k,
            self._memory_size,
            self.negative_eigenvalues,
            self.method,
            self.chunk_size,
            name=name,
        )
