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
    """Multi-head attention under a mask, with a learned bias per head and distance index.

    :meth:`project` gives a token's queries, keys and values; :meth:`attend`
    lets queries read keys under ``mask``, plus optionally each query's own key
    (a candidate's own token, bias index ``context``) without a query-by-query
    matrix over the candidates.
    """

    hidden: int
    heads: int
    context: int

    def setup(self) -> None:
        self.qkv = nn.DenseGeneral((3, self.heads, self.hidden // self.heads))
        self.distance_bias = self.param("distance_bias", nn.initializers.zeros, (self.heads, self.context + 1))
        self.out = nn.DenseGeneral(self.hidden, axis=(-2, -1))

    def project(self, x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """``x [B, N, hidden]`` -> queries, keys and values, each ``[B, N, heads, head_dim]``."""
        qkv = self.qkv(x)
        return qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]

    def attend(self, queries, keys, values, mask, distance, own=None) -> jax.Array:
        """Queries ``[B, Q, h, d]`` over keys/values ``[B, K, h, d]`` where ``mask [B, Q, K]``; ``distance [Q, K]``.

        ``own``: ``(keys, values)`` ``[B, Q, h, d]``, one more key per query (its own token), always visible.
        Returns ``[B, Q, hidden]``.
        """
        queries = queries / jnp.sqrt(queries.shape[-1]).astype(queries.dtype)
        logits = jnp.einsum("bqhd,bkhd->bhqk", queries, keys) + self.distance_bias[:, distance][None]
        logits = jnp.where(mask[:, None], logits, jnp.finfo(logits.dtype).min)
        if own is not None:
            own_logit = jnp.einsum("bqhd,bqhd->bhq", queries, own[0]) + self.distance_bias[:, self.context][None, :, None]
            logits = jnp.concatenate([logits, own_logit[..., None]], axis=-1)
        weights = jax.nn.softmax(logits, axis=-1)
        out = jnp.einsum("bhqk,bkhd->bqhd", weights[..., : keys.shape[1]], values)
        if own is not None:
            out = out + jnp.einsum("bhq,bqhd->bqhd", weights[..., -1], own[1])
        return self.out(out)


class EnergyTransformer(nn.Module):
    """Pre-LayerNorm transformer over ``[observed ; candidates]``; energies (or direct predictions) per candidate.

    ``__call__(observed [B, T, D_in], candidates [B, C, Y], candidate_actions [B, C, A], mask, distance)``
    returns ``(observed outputs [B, T, hidden], head [B, C])`` for ``head="energy"``
    or ``head [B, C, Y]`` for ``head="direct"`` (which ignores ``candidates``);
    ``mask`` and ``distance`` are :func:`attention_layout`'s.

    No observed token attends to a candidate, so the pass splits in two:
    :meth:`observe` runs the observed tokens once and keeps each layer's keys
    and values, and :meth:`score` runs only the candidate tokens against them.
    Thinking refines the candidates many times over one context, so it calls
    :meth:`score` per step and :meth:`observe` once.
    """

    hidden: int
    layers: int
    heads: int
    context: int
    target_size: int
    head: str = "energy"

    def setup(self) -> None:
        self.observed_embed = nn.Dense(self.hidden)
        self.action_embed = nn.Dense(self.hidden)
        if self.head == "energy":
            self.candidate_embed = nn.Dense(self.hidden)
            self.energy = nn.Dense(1)
        else:
            self.prediction = nn.Dense(self.target_size)
        self.attention = [RelativeAttention(self.hidden, self.heads, self.context) for _ in range(self.layers)]
        self.attention_norm = [nn.LayerNorm() for _ in range(self.layers)]
        self.mlp_norm = [nn.LayerNorm() for _ in range(self.layers)]
        self.mlp_in = [nn.Dense(4 * self.hidden) for _ in range(self.layers)]
        self.mlp_out = [nn.Dense(self.hidden) for _ in range(self.layers)]
        self.final_norm = nn.LayerNorm()

    def _mlp(self, layer: int, x: jax.Array) -> jax.Array:
        return x + self.mlp_out[layer](nn.gelu(self.mlp_in[layer](self.mlp_norm[layer](x))))

    def __call__(self, observed, candidates, candidate_actions, mask, distance):
        outputs, cache = self.observe(observed, mask, distance)
        return outputs, self.score(cache, candidates, candidate_actions, mask, distance)

    def observe(self, observed: jax.Array, mask: jax.Array, distance: jax.Array):
        """The observed tokens alone: ``(outputs [B, T, hidden], cache)``, the cache one ``(keys, values)`` per layer.

        ``mask`` and ``distance`` may cover ``[observed ; candidates]``; their observed block is used.
        """
        length = observed.shape[1]
        mask, distance = mask[:, :length, :length], distance[:length, :length]
        x = self.observed_embed(observed)
        cache = []
        for layer in range(self.layers):
            queries, keys, values = self.attention[layer].project(self.attention_norm[layer](x))
            x = self._mlp(layer, x + self.attention[layer].attend(queries, keys, values, mask, distance))
            cache.append((keys, values))
        return self.final_norm(x), tuple(cache)

    def score(self, cache, candidates: jax.Array, candidate_actions: jax.Array, mask: jax.Array, distance: jax.Array):
        """The head ``[B, C]`` (energies) or ``[B, C, Y]`` (direct) of candidate tokens over :meth:`observe`'s cache.

        ``mask [B, T + C, T + C]`` and ``distance``: the full layout; the rows of the candidates are used.
        """
        length = cache[0][0].shape[1]
        mask, distance = mask[:, length:, :length], distance[length:, :length]
        x = self.action_embed(candidate_actions)
        if self.head == "energy":
            x = x + self.candidate_embed(candidates)
        for layer, (keys, values) in enumerate(cache):
            queries, own_keys, own_values = self.attention[layer].project(self.attention_norm[layer](x))
            attended = self.attention[layer].attend(queries, keys, values, mask, distance, own=(own_keys, own_values))
            x = self._mlp(layer, x + attended)
        x = self.final_norm(x)
        if self.head == "energy":
            return self.energy(x)[..., 0]
        return self.prediction(x)
