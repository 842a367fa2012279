"""Sliding-window causal transformer whose carry is a per-layer key/value cache.

Each query attends to itself and to the ``window`` steps before it, never to a
step before the most recent reset. The carry holds, for every layer, the
post-projection keys and values of the last ``window`` steps and one validity
flag per cached step, so acting (T=1) costs O(window) per step, and a
sequence call that continues from a carry equals the same steps fed one at a
time.

Positions are rotary (RoPE, Su et al. 2021, eq. 34): the score between a query
at step t and a key at step s depends on t - s only. The rotation is applied
inside each attention block with positions local to that block (query i at
``window + i``, key j at ``j``), so no step counter is carried, angles stay
below ``window + block`` whatever the episode length (no float32 precision
loss after millions of steps), and cutting a sequence into chunks cannot
change a score. Absolute embeddings indexed by the global step would need that
step in the carry and would place queries at positions never seen in training.

The stack is Dense(D -> H), then pre-LayerNorm layers (attention, then a GELU
MLP of width 4H), then a final LayerNorm. Layers join their sublayers with either
residual connections or, with ``gating=True``, the GRU-type gates of GTrXL
(Parisotto et al. 2020, eqs. 5-8) that replace them; the gate bias starts at
``gate_bias`` so each gate starts near the identity on its residual stream.
"""

from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from mnemax.backbones.registry import register


class KVCache(NamedTuple):
    """The transformer's carry; batch is the leading axis of every leaf.

    keys, values: ``[B, L, W, heads, head_dim]`` float32, projected (un-rotated)
      keys and values of the last W steps for each of the L layers, oldest first;
      zero where not valid.
    valid: ``[B, W]`` float32, 1 where the cached step belongs to the current
      episode, 0 before the first W steps and after a reset. Float rather than
      bool so that every carry leaf is float32 and generic carry arithmetic
      (tolerance comparisons, interpolation, masking) works on it.
    """

    keys: jax.Array
    values: jax.Array
    valid: jax.Array


def rotary_embedding(x: jax.Array, positions: jax.Array, base: float = 10_000.0) -> jax.Array:
    """Rotate ``x[..., P, heads, d]`` by RoPE angles ``positions[P] * base**(-2i/d)``.

    Pairs are (i, i + d/2); the dot product of two rotated vectors depends on
    their position difference only (Su et al. 2021, eq. 34).
    """
    half = x.shape[-1] // 2
    inv_freq = base ** (-jnp.arange(half, dtype=jnp.float32) / half)
    angles = positions.astype(jnp.float32)[:, None] * inv_freq  # [P, d/2]
    cos = jnp.cos(angles)[:, None, :]  # [P, 1, d/2], broadcast over heads
    sin = jnp.sin(angles)[:, None, :]
    x1, x2 = x[..., :half], x[..., half:]
    return jnp.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)


def _key_blocks(x: jax.Array, window: int, num_blocks: int, block: int) -> jax.Array:
    """Cut ``x[B, W + nb*Q, ...]`` into overlapping blocks ``[B, nb, W + Q, ...]``.

    Block b is ``x[:, b*Q : b*Q + W + Q]``: the W steps before query block b and
    the block itself. Built from two reshapes (no gather), which needs W <= Q
    whenever there is more than one block.
    """
    if num_blocks == 1:
        return x[:, None]
    batch, rest = x.shape[0], x.shape[2:]
    own = x[:, window:].reshape(batch, num_blocks, block, *rest)
    before = x[:, : num_blocks * block].reshape(batch, num_blocks, block, *rest)[:, :, :window]
    return jnp.concatenate([before, own], axis=2)


def windowed_attention(
    queries: jax.Array,
    keys: jax.Array,
    values: jax.Array,
    key_valid: jax.Array,
    segments: jax.Array,
    window: int,
    query_block: int,
) -> jax.Array:
    """Banded causal attention over ``[cache ; new steps]`` that never crosses a reset.

    Args:
      queries: ``[B, T, heads, d]`` projected queries of the T new steps.
      keys, values: ``[B, W + T, heads, d]`` the W cached steps then the T new ones.
      key_valid: ``[B, W + T]`` bool, false for cached steps of a finished episode.
      segments: ``[B, W + T]`` int, episode index (number of resets so far).
      window: W; the query at new step t sees steps t - W .. t of its own episode.
      query_block: queries are processed in blocks of ``max(query_block, W)`` so
        memory is O(T * (W + block)) rather than O(T * (W + T)).

    Returns:
      ``[B, T, heads, d]`` attention outputs (before the output projection).
    """
    batch, steps = queries.shape[:2]
    if steps <= query_block:
        block, num_blocks = steps, 1
    else:
        block = max(query_block, window)
        num_blocks = -(-steps // block)
    pad = num_blocks * block - steps
    if pad:
        # Padded steps come after every real step, so causality hides them from
        # real queries; their own outputs are dropped below.
        pad_time = lambda a, value: jnp.pad(  # noqa: E731
            a, [(0, 0), (0, pad)] + [(0, 0)] * (a.ndim - 2), constant_values=value
        )
        queries, keys, values = pad_time(queries, 0.0), pad_time(keys, 0.0), pad_time(values, 0.0)
        key_valid, segments = pad_time(key_valid, True), pad_time(segments, -1)

    q = queries.reshape(batch, num_blocks, block, *queries.shape[2:])
    k = _key_blocks(keys, window, num_blocks, block)  # [B, nb, W + Q, heads, d]
    v = _key_blocks(values, window, num_blocks, block)
    q = rotary_embedding(q, window + jnp.arange(block))
    k = rotary_embedding(k, jnp.arange(window + block))

    # Query i of a block sits at local position W + i, key j at j.
    distance = (window + jnp.arange(block))[:, None] - jnp.arange(window + block)[None, :]
    in_window = (distance >= 0) & (distance <= window)  # [Q, W + Q]
    query_segments = segments[:, window:].reshape(batch, num_blocks, block)
    key_segments = _key_blocks(segments, window, num_blocks, block)
    key_ok = _key_blocks(key_valid, window, num_blocks, block)
    mask = (
        in_window
        & key_ok[:, :, None, :]
        & (query_segments[:, :, :, None] == key_segments[:, :, None, :])
    )  # [B, nb, Q, W + Q]; every query sees at least itself

    flat = lambda a: a.reshape(batch * num_blocks, *a.shape[2:])  # noqa: E731
    out = jax.nn.dot_product_attention(
        flat(q), flat(k), flat(v), mask=flat(mask)[:, None], implementation="xla"
    )
    return out.reshape(batch, num_blocks * block, *out.shape[2:])[:, :steps]


class GRUGate(nn.Module):
    """GTrXL gate g(x, y) replacing the residual x + y (Parisotto et al. 2020, eq. 8).

    r = sigmoid(W_r y + U_r x), z = sigmoid(W_z y + U_z x - b_g),
    h = tanh(W_g y + U_g (r * x)), g = (1 - z) * x + z * h.
    With b_g > 0 the update gate z starts small, so g starts near x.
    """

    features: int
    gate_bias: float = 2.0

    @nn.compact
    def __call__(self, x: jax.Array, y: jax.Array) -> jax.Array:
        dense = lambda name, bias_init=nn.initializers.zeros: nn.Dense(  # noqa: E731
            self.features, name=name, bias_init=bias_init
        )
        no_bias = lambda name: nn.Dense(self.features, use_bias=False, name=name)  # noqa: E731
        reset = jax.nn.sigmoid(dense("reset_y")(y) + no_bias("reset_x")(x))
        update = jax.nn.sigmoid(
            dense("update_y", nn.initializers.constant(-self.gate_bias))(y) + no_bias("update_x")(x)
        )
        candidate = jnp.tanh(dense("candidate_y")(y) + no_bias("candidate_x")(reset * x))
        return (1.0 - update) * x + update * candidate


class TransformerLayer(nn.Module):
    """One pre-LayerNorm block: windowed self-attention then a GELU MLP.

    Works on ``x[B, T, H]`` with this layer's cached keys/values ``[B, W, heads, d]``;
    returns the new residual stream and the keys/values of ``[cache ; new steps]``
    ``[B, W + T, heads, d]`` (the caller keeps the last W for the next carry).
    """

    features: int
    num_heads: int
    window: int
    query_block: int
    gating: bool
    gate_bias: float

    @nn.compact
    def __call__(self, x, cached_keys, cached_values, key_valid, segments):
        head_dim = self.features // self.num_heads
        projection = lambda name: nn.DenseGeneral((self.num_heads, head_dim), name=name)  # noqa: E731
        y = nn.LayerNorm(name="attention_norm")(x)
        q, k, v = projection("query")(y), projection("key")(y), projection("value")(y)
        keys = jnp.concatenate([cached_keys, k], axis=1)
        values = jnp.concatenate([cached_values, v], axis=1)
        attended = windowed_attention(q, keys, values, key_valid, segments, self.window, self.query_block)
        y = nn.DenseGeneral(self.features, axis=(-2, -1), name="attention_out")(attended)
        x = self._merge(x, y, "attention_gate")

        y = nn.LayerNorm(name="mlp_norm")(x)
        y = nn.Dense(4 * self.features, name="mlp_hidden")(y)
        y = nn.Dense(self.features, name="mlp_out")(nn.gelu(y))
        x = self._merge(x, y, "mlp_gate")
        return x, keys, values

    def _merge(self, x, y, name):
        """Residual x + y, or the GTrXL gate on ReLU(y) (Parisotto et al. 2020, eqs. 5-6)."""
        if self.gating:
            return GRUGate(self.features, self.gate_bias, name=name)(x, nn.relu(y))
        return x + y


@register("transformer")
class Transformer(nn.Module):
    """Causal sliding-window transformer backbone with a key/value cache carry.

    Attributes:
      features: model width H (and output width).
      num_layers: number of attention + MLP blocks.
      num_heads: attention heads; H must be divisible by it and H / heads even (RoPE).
      window: W, the number of past steps each query sees besides itself. The
        receptive field of the stack is ``num_layers * window`` steps.
      query_block: sequence calls longer than this process queries in blocks of
        ``max(query_block, window)``; peak memory is O(T * (W + block)) per layer.
      gating: GTrXL gates instead of residual connections.
      gate_bias: initial b_g of the GTrXL update gate (about 2: near identity).
    """

    features: int
    num_layers: int = 2
    num_heads: int = 4
    window: int = 64
    query_block: int = 64
    gating: bool = False
    gate_bias: float = 2.0

    def _check_options(self) -> None:
        if self.num_layers < 1 or self.num_heads < 1 or self.window < 1 or self.query_block < 1:
            raise ValueError(
                "Transformer needs num_layers, num_heads, window and query_block >= 1; got "
                f"{self.num_layers}, {self.num_heads}, {self.window}, {self.query_block}."
            )
        if self.features % self.num_heads or (self.features // self.num_heads) % 2:
            raise ValueError(
                f"Transformer features={self.features} must split into num_heads={self.num_heads} "
                "heads of even width (rotary embeddings rotate pairs); "
                "pick features divisible by 2 * num_heads."
            )

    def _carry_shapes(self, batch_size: int) -> KVCache:
        head_dim = self.features // self.num_heads
        cache = (batch_size, self.num_layers, self.window, self.num_heads, head_dim)
        return KVCache(keys=cache, values=cache, valid=(batch_size, self.window))

    def initialize_carry(self, batch_size: int) -> KVCache:
        """An empty cache for ``batch_size`` sequences; needs no parameters."""
        self._check_options()
        shapes = self._carry_shapes(batch_size)
        return KVCache(
            keys=jnp.zeros(shapes.keys, jnp.float32),
            values=jnp.zeros(shapes.values, jnp.float32),
            valid=jnp.zeros(shapes.valid, jnp.float32),
        )

    @nn.compact
    def __call__(self, carry: KVCache, inputs: jax.Array, resets: jax.Array) -> tuple[KVCache, jax.Array]:
        """Run T steps: ``inputs[T, B, D]``, ``resets[T, B]`` -> (carry, outputs ``[T, B, H]``)."""
        self._check_options()
        self._check_shapes(carry, inputs, resets)
        window = self.window
        x = jnp.swapaxes(jnp.asarray(inputs, jnp.float32), 0, 1)  # [B, T, D]
        resets = jnp.swapaxes(jnp.asarray(resets).astype(bool), 0, 1)  # [B, T]
        batch = x.shape[0]

        # Episode index per step of [cache ; new]: cached steps are episode 0,
        # each reset opens the next one, so a key is visible iff same index.
        segments = jnp.concatenate(
            [jnp.zeros((batch, window), jnp.int32), jnp.cumsum(resets, axis=1, dtype=jnp.int32)], axis=1
        )
        key_valid = jnp.concatenate([carry.valid > 0.5, jnp.ones_like(resets)], axis=1)  # [B, W + T]

        x = nn.Dense(self.features, name="input_projection")(x)  # [B, T, H]
        new_keys, new_values = [], []
        for layer in range(self.num_layers):
            x, keys, values = TransformerLayer(
                self.features,
                self.num_heads,
                window,
                self.query_block,
                self.gating,
                self.gate_bias,
                name=f"layer_{layer}",
            )(x, carry.keys[:, layer], carry.values[:, layer], key_valid, segments)
            new_keys.append(keys[:, -window:])
            new_values.append(values[:, -window:])
        outputs = nn.LayerNorm(name="output_norm")(x)

        # The next call's cache: the last W steps, valid iff in the last step's episode.
        valid = key_valid[:, -window:] & (segments[:, -window:] == segments[:, -1:])
        keep = valid[:, None, :, None, None]
        new_carry = KVCache(
            keys=jnp.where(keep, jnp.stack(new_keys, axis=1), 0.0),
            values=jnp.where(keep, jnp.stack(new_values, axis=1), 0.0),
            valid=valid.astype(jnp.float32),
        )
        return new_carry, jnp.swapaxes(outputs, 0, 1)

    def _check_shapes(self, carry: KVCache, inputs: jax.Array, resets: jax.Array) -> None:
        if jnp.ndim(inputs) != 3:
            raise ValueError(f"Transformer inputs must be [T, B, D]; got shape {jnp.shape(inputs)}.")
        if jnp.shape(resets) != jnp.shape(inputs)[:2]:
            raise ValueError(
                f"Transformer resets must be [T, B] = {jnp.shape(inputs)[:2]} to match inputs; "
                f"got shape {jnp.shape(resets)}."
            )
        expected = self._carry_shapes(jnp.shape(inputs)[1])
        got = tuple(map(jnp.shape, carry)) if isinstance(carry, KVCache) else type(carry).__name__
        if got != tuple(expected):
            raise ValueError(
                "Transformer carry does not match this module and batch size; make it with "
                f"initialize_carry({jnp.shape(inputs)[1]}) (expected {expected}, got {got})."
            )
