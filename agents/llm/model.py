"""A Flax decoder-only language model for the GPT-2 and Llama families, with a KV cache and steering.

One module, :class:`DecoderLM`, serves both families (see
:class:`~mnemax.agents.llm.config.LMConfig`) and both modes:

* full sequence: ``DecoderLM(cfg).apply({"params": p}, tokens[B, T])`` -> logits ``[B, T, V]``;
* cached decoding: pass a :class:`KVCache`; the new keys/values are written at
  ``cache.index`` and attention runs over every valid slot up to the query's.

Steering is an argument, not a hook: ``steer=Steering(layer, vector, coeff,
positions)`` adds ``coeff * vector`` to the residual stream after block
``layer`` where ``positions`` is true (everywhere when it is None). This is the
intervention ``z + beta * u`` of Rahn, D'Oro & Bellemare (2024), Sec. 3.
"""

from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct

from mnemax.agents.llm.config import LMConfig

_INIT = nn.initializers.normal(0.02)


@struct.dataclass
class Steering:
    """Add ``coeff * vector`` to the residual stream after block ``layer``.

    Attributes:
      layer: block index in ``[0, n_layers)`` (static: changing it recompiles).
      vector: ``[D]`` direction (``u`` in the paper).
      coeff: scalar strength (``beta``); traced, so a sweep over it compiles once.
      positions: ``[B, T]`` or ``[T]`` boolean mask of steered positions in this call, or None for all.
    """

    layer: int = struct.field(pytree_node=False)
    vector: jax.Array
    coeff: jax.Array | float = 1.0
    positions: jax.Array | None = None


class KVCache(NamedTuple):
    """Keys and values of every layer for cached decoding.

    Attributes:
      keys, values: ``[n_layers, B, L, n_kv_heads, head_dim]``.
      valid: ``[B, L]`` false at padding slots (left-padded prompts), which no query attends to.
      index: scalar int, the slot the next token is written to.
    """

    keys: jax.Array
    values: jax.Array
    valid: jax.Array
    index: jax.Array


class LMOutput(NamedTuple):
    """What :class:`DecoderLM` returns: logits ``[B, T, V]`` (float32), the updated cache (or None),
    and the residual stream after block ``capture`` ``[B, T, D]`` (or None)."""

    logits: jax.Array
    cache: KVCache | None
    residual: jax.Array | None


def init_cache(config: LMConfig, batch_size: int, length: int, valid: jax.Array | None = None) -> KVCache:
    """An empty cache of ``length`` slots; ``valid`` ``[B, L]`` marks padding slots false (all true if None)."""
    shape = (config.n_layers, batch_size, length, config.n_kv_heads, config.head_dim)
    if valid is None:
        valid = jnp.ones((batch_size, length), bool)
    return KVCache(jnp.zeros(shape, jnp.float32), jnp.zeros(shape, jnp.float32), valid, jnp.zeros((), jnp.int32))


def rotary(x: jax.Array, positions: jax.Array, theta: float) -> jax.Array:
    """Rotary position embedding (Su et al. 2021) in the half-split layout Hugging Face uses.

    ``x`` is ``[B, T, H, hd]``, ``positions`` ``[B, T]``.
    """
    half = x.shape[-1] // 2
    inv_freq = 1.0 / theta ** (jnp.arange(0, half, dtype=jnp.float32) * 2.0 / x.shape[-1])
    angles = positions[..., None].astype(jnp.float32) * inv_freq  # [B, T, half]
    cos = jnp.cos(angles)[:, :, None, :]
    sin = jnp.sin(angles)[:, :, None, :]
    x1, x2 = x[..., :half], x[..., half:]
    return jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)


def _norm(config: LMConfig, name: str) -> nn.Module:
    if config.family == "gpt2":
        return nn.LayerNorm(epsilon=config.norm_eps, use_fast_variance=False, name=name)
    return nn.RMSNorm(epsilon=config.norm_eps, name=name)


class Attention(nn.Module):
    """Causal multi-head attention with grouped key/value heads, optional RoPE, sliding window and cache."""

    config: LMConfig

    @nn.compact
    def __call__(self, x, positions, mask, cache_kv=None, index=None):
        """``x`` ``[B, T, D]``; ``mask`` ``[B, T, S]`` (true = may attend); ``cache_kv`` ``([B, L, Hkv, hd],) * 2``."""
        cfg = self.config
        b, t, _ = x.shape
        dense = lambda n, bias, name: nn.Dense(n, use_bias=bias, kernel_init=_INIT, name=name)  # noqa: E731
        q = dense(cfg.n_heads * cfg.head_dim, cfg.qkv_bias, "q")(x).reshape(b, t, cfg.n_heads, cfg.head_dim)
        k = dense(cfg.n_kv_heads * cfg.head_dim, cfg.qkv_bias, "k")(x).reshape(b, t, cfg.n_kv_heads, cfg.head_dim)
        v = dense(cfg.n_kv_heads * cfg.head_dim, cfg.qkv_bias, "v")(x).reshape(b, t, cfg.n_kv_heads, cfg.head_dim)
        if cfg.family == "llama":
            q, k = rotary(q, positions, cfg.rope_theta), rotary(k, positions, cfg.rope_theta)
        if cache_kv is not None:
            k = jax.lax.dynamic_update_slice_in_dim(cache_kv[0], k, index, axis=1)
            v = jax.lax.dynamic_update_slice_in_dim(cache_kv[1], v, index, axis=1)
        groups = cfg.n_heads // cfg.n_kv_heads
        q = q.reshape(b, t, cfg.n_kv_heads, groups, cfg.head_dim)
        scores = jnp.einsum("btkgd,bskd->bkgts", q, k) / jnp.sqrt(cfg.head_dim).astype(jnp.float32)
        scores = jnp.where(mask[:, None, None], scores, jnp.finfo(jnp.float32).min)
        weights = jax.nn.softmax(scores, axis=-1)
        out = jnp.einsum("bkgts,bskd->btkgd", weights, v).reshape(b, t, cfg.n_heads * cfg.head_dim)
        out = nn.Dense(cfg.d_model, use_bias=cfg.out_bias, kernel_init=_INIT, name="o")(out)
        return out, (k, v)


class MLP(nn.Module):
    """GELU MLP (``gpt2``) or SwiGLU (``llama``: ``down(silu(gate(x)) * up(x))``)."""

    config: LMConfig

    @nn.compact
    def __call__(self, x):
        cfg = self.config
        dense = lambda n, name: nn.Dense(n, use_bias=cfg.mlp_bias, kernel_init=_INIT, name=name)  # noqa: E731
        if cfg.family == "gpt2":
            h = jax.nn.gelu(dense(cfg.d_ff, "fc")(x), approximate=cfg.activation == "gelu_tanh")
            return dense(cfg.d_model, "proj")(h)
        return dense(cfg.d_model, "down")(jax.nn.silu(dense(cfg.d_ff, "gate")(x)) * dense(cfg.d_ff, "up")(x))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm(x))``, then ``x + mlp(norm(x))``."""

    config: LMConfig

    @nn.compact
    def __call__(self, x, positions, mask, cache_kv=None, index=None):
        h, kv = Attention(self.config, name="attn")(_norm(self.config, "attn_norm")(x), positions, mask, cache_kv, index)
        x = x + h
        return x + MLP(self.config, name="mlp")(_norm(self.config, "mlp_norm")(x)), kv


def attention_mask(query_slots: jax.Array, key_valid: jax.Array, window: int | None) -> jax.Array:
    """``[B, T, S]`` mask: key slot ``s`` is valid, not after query slot, and within the sliding window.

    ``query_slots`` is ``[T]`` (slot of each query), ``key_valid`` ``[B, S]``.
    """
    key_slots = jnp.arange(key_valid.shape[1])
    allowed = key_slots[None, :] <= query_slots[:, None]
    if window is not None:
        allowed &= query_slots[:, None] - key_slots[None, :] < window
    return allowed[None] & key_valid[:, None, :]


class DecoderLM(nn.Module):
    """Decoder-only LM: embeddings -> ``n_layers`` blocks -> final norm -> logits (float32)."""

    config: LMConfig

    @nn.compact
    def __call__(
        self,
        tokens: jax.Array,
        *,
        positions: jax.Array | None = None,
        steer: Steering | None = None,
        cache: KVCache | None = None,
        capture: int | None = None,
    ) -> jax.Array | LMOutput:
        """Run the model on ``tokens`` ``[B, T]``.

        Args:
          tokens: int token ids ``[B, T]``.
          positions: ``[B, T]`` position ids (default ``arange(T)``, offset by ``cache.index``).
          steer: optional :class:`Steering`.
          cache: optional :class:`KVCache`; when given the new keys/values are written at ``cache.index``.
          capture: a block index whose output residual ``[B, T, D]`` is returned too.

        Returns:
          logits ``[B, T, V]`` when neither ``cache`` nor ``capture`` is given, else an :class:`LMOutput`.
        """
        cfg = self.config
        b, t = tokens.shape
        start = jnp.zeros((), jnp.int32) if cache is None else cache.index
        if positions is None:
            positions = jnp.broadcast_to(start + jnp.arange(t), (b, t))
        query_slots = start + jnp.arange(t)
        key_valid = jnp.ones((b, t), bool) if cache is None else cache.valid
        mask = attention_mask(query_slots, key_valid, cfg.sliding_window)
        if steer is not None and not 0 <= steer.layer < cfg.n_layers:
            raise ValueError(f"Steering layer {steer.layer} is outside [0, {cfg.n_layers}); pick an existing block.")
        if capture is not None and not 0 <= capture < cfg.n_layers:
            raise ValueError(f"capture={capture} is outside [0, {cfg.n_layers}); pick an existing block.")

        embed = nn.Embed(cfg.vocab_size, cfg.d_model, embedding_init=_INIT, name="embed")
        x = embed(tokens)
        if cfg.family == "gpt2":
            x = x + nn.Embed(cfg.max_positions, cfg.d_model, embedding_init=_INIT, name="pos_embed")(positions)
        new_keys, new_values, residual = [], [], None
        for i in range(cfg.n_layers):
            cache_kv = None if cache is None else (cache.keys[i], cache.values[i])
            x, (k, v) = Block(cfg, name=f"block_{i}")(x, positions, mask, cache_kv, start)
            new_keys.append(k)
            new_values.append(v)
            if steer is not None and i == steer.layer:
                x = x + _steering_delta(steer, b, t)
            if capture == i:
                residual = x
        x = _norm(cfg, "final_norm")(x)
        if cfg.tie_embeddings:
            logits = embed.attend(x)
        else:
            logits = nn.Dense(cfg.vocab_size, use_bias=False, kernel_init=_INIT, name="lm_head")(x)
        logits = logits.astype(jnp.float32)
        if cache is None and capture is None:
            return logits
        new_cache = None
        if cache is not None:
            new_cache = KVCache(jnp.stack(new_keys), jnp.stack(new_values), cache.valid, start + t)
        return LMOutput(logits, new_cache, residual)


def _steering_delta(steer: Steering, batch: int, length: int) -> jax.Array:
    """``coeff * vector`` broadcast to ``[B, T, D]`` and zeroed outside ``steer.positions``."""
    delta = jnp.asarray(steer.coeff, jnp.float32) * jnp.asarray(steer.vector, jnp.float32)
    if steer.positions is None:
        return delta
    where = jnp.broadcast_to(jnp.asarray(steer.positions, bool), (batch, length))
    return where[..., None] * delta
