"""The Energy-Based Transformer's network: one parallel pass over ``[observed tokens ; candidate tokens]``.

Gladstone et al. (2025, "Energy-Based Transformers are Scalable Learners and
Thinkers") score every position of a sequence at once: each observed token
attends causally to observed tokens, and candidate ``i`` (a guess at what
follows observed token ``i``) attends to observed tokens ``0..i`` and to itself
only, so no candidate sees another candidate or the future. A linear head
reads one energy per candidate. Here attention also never crosses an episode
reset and reaches back at most ``context`` observed tokens, so a window of past
tokens (the world model's state) reproduces the sequence pass exactly.

Positions enter only as a learned bias per head on the distance ``q - k``
(``0 .. context - 1`` for observed keys, one more entry for a candidate's own
token): a score never depends on where a window starts.

With ``head="direct"`` the same stack is the same-size direct-prediction
baseline: a candidate token carries only its action and a linear head reads
the predicted target from it.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


def attention_layout(
    observed_segments: jax.Array, candidate_positions: jax.Array, candidate_segments: jax.Array, context: int
) -> tuple[jax.Array, jax.Array]:
    """Who may attend to whom over ``[observed (T) ; candidates (C)]``, and the distance index of each pair.

    observed_segments: ``[B, T]`` int, episode id of each observed token (equal ids: same episode).
    candidate_positions: ``[C]`` int, the observed token each candidate follows.
    candidate_segments: ``[B, C]`` int, the episode id of that observed token.

    Returns ``mask [B, T + C, T + C]`` (True: query may attend to key) and
    ``distance [T + C, T + C]`` int indices into a ``context + 1`` bias table.
    """
    num_observed, num_candidates = observed_segments.shape[1], candidate_positions.shape[0]
    observed_positions = jnp.arange(num_observed)
    query_positions = jnp.concatenate([observed_positions, candidate_positions])  # [N]
    query_segments = jnp.concatenate([observed_segments, candidate_segments], axis=1)  # [B, N]
    offset = query_positions[:, None] - observed_positions[None, :]  # [N, T]
    same_episode = query_segments[:, :, None] == observed_segments[:, None, :]  # [B, N, T]
    to_observed = (offset >= 0) & (offset < context) & same_episode  # [B, N, T]
    own = jnp.concatenate(
        [jnp.zeros((num_observed, num_candidates), bool), jnp.eye(num_candidates, dtype=bool)], axis=0
    )  # [N, C]: a candidate sees its own token only
    to_candidates = jnp.broadcast_to(own, (observed_segments.shape[0],) + own.shape)
    mask = jnp.concatenate([to_observed, to_candidates], axis=2)
    distance = jnp.concatenate(
        [jnp.clip(offset, 0, context - 1), jnp.full(own.shape, context, jnp.int32)], axis=1
    )
    return mask, distance


class RelativeAttention(nn.Module):
    """Multi-head attention under a mask, with a learned bias per head and distance index."""

    hidden: int
    heads: int
    context: int

    @nn.compact
    def __call__(self, x: jax.Array, mask: jax.Array, distance: jax.Array) -> jax.Array:
        head_dim = self.hidden // self.heads
        qkv = nn.DenseGeneral((3, self.heads, head_dim), name="qkv")(x)  # [B, N, 3, heads, head_dim]
        table = self.param("distance_bias", nn.initializers.zeros, (self.heads, self.context + 1))
        bias = table[:, distance][None]  # [1, heads, N, N]
        out = nn.dot_product_attention(qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2], bias=bias, mask=mask[:, None])
        return nn.DenseGeneral(self.hidden, axis=(-2, -1), name="out")(out)


class EnergyTransformer(nn.Module):
    """Pre-LayerNorm transformer over ``[observed ; candidates]``; energies (or direct predictions) per candidate.

    ``__call__(observed [B, T, D_in], candidates [B, C, Y], candidate_actions [B, C, A], mask, distance)``
    returns ``(observed outputs [B, T, hidden], head [B, C])`` for ``head="energy"``
    or ``head [B, C, Y]`` for ``head="direct"`` (which ignores ``candidates``).
    """

    hidden: int
    layers: int
    heads: int
    context: int
    target_size: int
    head: str = "energy"

    @nn.compact
    def __call__(self, observed, candidates, candidate_actions, mask, distance):
        num_observed = observed.shape[1]
        tokens = nn.Dense(self.hidden, name="action_embed")(candidate_actions)
        if self.head == "energy":
            tokens = tokens + nn.Dense(self.hidden, name="candidate_embed")(candidates)
        x = jnp.concatenate([nn.Dense(self.hidden, name="observed_embed")(observed), tokens], axis=1)  # [B, N, H]
        for layer in range(self.layers):
            x = x + RelativeAttention(self.hidden, self.heads, self.context, name=f"attention_{layer}")(
                nn.LayerNorm(name=f"attention_norm_{layer}")(x), mask, distance
            )
            y = nn.LayerNorm(name=f"mlp_norm_{layer}")(x)
            y = nn.Dense(self.hidden, name=f"mlp_out_{layer}")(nn.gelu(nn.Dense(4 * self.hidden, name=f"mlp_in_{layer}")(y)))
            x = x + y
        x = nn.LayerNorm(name="final_norm")(x)
        observed_out, candidate_out = x[:, :num_observed], x[:, num_observed:]
        if self.head == "energy":
            return observed_out, nn.Dense(1, name="energy")(candidate_out)[..., 0]
        return observed_out, nn.Dense(self.target_size, name="prediction")(candidate_out)
