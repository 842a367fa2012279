"""Sliding-window causal transformer whose carry is a per-layer key/value cache.

Each query attends to itself and to the ``window`` steps before it, never to a
step before the most recent reset. The carry holds, for every layer, the
keys and values of the last ``window + 1`` steps in a ring buffer, one
validity flag per slot, the slot the next step overwrites (the oldest, which
is out of the next query's window) and the next step's position in its
episode. Acting (T=1) is one attention row: the step's key and value are
written into that slot in place, then two batched matrix-vector products read
the ring, so a step reads the cache once and copies none of it. A sequence call that continues from a carry
equals the same steps fed one at a time.

Positions are rotary (RoPE, Su et al. 2021, eq. 34): the score between a query
at step t and a key at step s depends on t - s only. Keys are stored already
rotated by their position in the episode (the step count since the last
reset), so no step ever re-rotates the cache. Angles ``p * f_i`` are formed
exactly mod 2 pi by splitting the integer position ``p`` into three base-256
digits, each multiplied by a constant reduced in float64 (:func:`rotary_angles`),
so their error stays about 1e-4 rad for positions up to 2^24 (16.7M steps of
one episode; the count wraps there, and the ``window`` keys before the wrap
then get a wrong relative rotation once). A rotation by the raw float32 product
would lose about 0.06 rad at a million steps.

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
import numpy as np

from mnemax.backbones.registry import check_inputs, register

_POSITION_PERIOD = 2**24  # episode positions count modulo this (float32 holds every integer below it)


class KVCache(NamedTuple):
    """The transformer's carry; batch is the leading axis of every leaf, and every leaf is float32.

    keys, values: ``[B, L, heads, W + 1, head_dim]`` keys (rotated by their
      episode position) and values of the last W + 1 steps for each of the L
      layers, in ring order: slot ``oldest`` holds the oldest step. Slots that
      are not valid hold stale or zero entries that no query reads.
    valid: ``[B, W + 1]``, 1 where the slot holds a step of the current episode.
    oldest: ``[B]``, the slot the next step overwrites (an integer in ``[0, W]``).
    position: ``[B]``, the next step's position in its episode (an integer).
    Float rather than int or bool so that generic carry arithmetic (tolerance
    comparisons, interpolation, masking) works on every leaf.
    """

    keys: jax.Array
    values: jax.Array
    valid: jax.Array
    oldest: jax.Array
    position: jax.Array


def rotary_angles(positions: jax.Array, half: int, base: float = 10_000.0) -> jax.Array:
    """RoPE angles ``positions * base**(-i/half)`` mod 2 pi, ``[...] -> [..., half]``, exact for integer positions < 2^24.

    ``p = 65536 a + 256 b + c`` with digits below 256; each digit multiplies
    ``(256^k f_i) mod 2 pi``, precomputed in float64, so no product exceeds
    ``256 * 2 pi`` and float32 keeps about 1e-4 rad.
    """
    inv_freq = base ** (-np.arange(half, dtype=np.float64) / half)
    positions = jnp.mod(positions.astype(jnp.float32), _POSITION_PERIOD)
    angles = jnp.zeros(positions.shape + (half,), jnp.float32)
    for power in (2, 1, 0):
        digit = jnp.floor(positions / 256.0**power)
        positions = positions - digit * 256.0**power
        factor = jnp.asarray(np.mod(256.0**power * inv_freq, 2 * np.pi), jnp.float32)
        angles = angles + jnp.mod(digit[..., None] * factor, 2 * np.pi)
    return angles


def rotary_embedding(x: jax.Array, positions: jax.Array, base: float = 10_000.0) -> jax.Array:
    """Rotate ``x[..., heads, d]`` by RoPE angles ``positions[...] * base**(-2i/d)``.

    ``positions`` has the shape of ``x`` without its last two axes (or
    broadcasts to it). Pairs are (i, i + d/2); the dot product of two rotated
    vectors depends on their position difference only (Su et al. 2021, eq. 34).
    """
    half = x.shape[-1] // 2
    angles = rotary_angles(positions, half, base)[..., None, :]  # [..., 1, d/2], broadcast over heads
    cos, sin = jnp.cos(angles), jnp.sin(angles)
    x1, x2 = x[..., :half], x[..., half:]
    return jnp.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)


def cached_step_attention(query: jax.Array, cached_keys: jax.Array, cached_values: jax.Array, visible: jax.Array) -> jax.Array:
    """One new step's attention over the ring that already holds it (acting, imagination).

    Args:
      query: ``[B, heads, d]`` of the new step, rotated.
      cached_keys, cached_values: ``[B, heads, W + 1, d]``, keys rotated, any slot
        order, the new step's own key and value already written.
      visible: ``[B, W + 1]`` bool, slots holding a step of the query's episode
        (always at least its own).

    Returns:
      ``[B, heads, d]``. With the rotation already in the keys, the scores and
      the weighted values are batched matrix-vector products over a heads-major
      cache, which XLA runs as such (no elementwise pass over the cache), and
      since the step's row is written before the cache is read, the write
      happens in place.
    """
    scale = 1.0 / jnp.sqrt(jnp.float32(query.shape[-1]))
    logits = jnp.where(visible[:, None, :], scale * jnp.einsum("bhwd,bhd->bhw", cached_keys, query), -jnp.inf)
    weights = jax.nn.softmax(logits, axis=-1)  # [B, heads, W + 1]; 0 where not visible
    return jnp.einsum("bhw,bhwd->bhd", weights, cached_values)


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
      queries: ``[B, T, heads, d]`` projected queries of the T new steps, rotated (RoPE).
      keys, values: ``[B, W + T, heads, d]`` the W cached steps then the T new ones, oldest first; keys rotated.
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

    Works on ``x[B, T, H]`` at episode ``positions [B, T]``. For one step
    (T = 1), ``cached_keys`` is a function ``write(k, v)`` that stores the
    step's rotated key and value ``[B, heads, d]`` in this layer's ring and
    returns the ring ``[B, heads, W + 1, d]`` (keys, values); ``key_valid
    [B, W + 1]`` says which slots the step sees; the ring comes back. For
    T > 1 the caches are ``[B, heads, W, d]`` oldest first,
    ``key_valid``/``segments`` are ``[B, W + T]``, and the keys/values of
    ``[cache ; new steps]`` ``[B, W + T, heads, d]`` come back.
    """

    features: int
    num_heads: int
    window: int
    query_block: int
    gating: bool
    gate_bias: float

    @nn.compact
    def __call__(self, x, cached_keys, cached_values, positions, key_valid, segments):
        head_dim = self.features // self.num_heads
        projection = lambda name: nn.DenseGeneral((self.num_heads, head_dim), name=name)  # noqa: E731
        y = nn.LayerNorm(name="attention_norm")(x)
        q, k, v = projection("query")(y), projection("key")(y), projection("value")(y)
        q, k = rotary_embedding(q, positions), rotary_embedding(k, positions)
        if x.shape[1] == 1:  # cached_keys is ``write(k, v) -> ring``; see Transformer._step
            keys, values = cached_keys(k[:, 0], v[:, 0])
            attended = cached_step_attention(q[:, 0], keys, values, key_valid)[:, None]
        else:
            keys = jnp.concatenate([jnp.swapaxes(cached_keys, 1, 2), k], axis=1)
            values = jnp.concatenate([jnp.swapaxes(cached_values, 1, 2), v], axis=1)
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


def _ring_gather(array: jax.Array, slots: jax.Array, axis: int) -> jax.Array:
    """``array`` with its slot axis ``axis`` reindexed per batch entry by ``slots [B, W]``."""
    shape = [slots.shape[0]] + [1] * (array.ndim - 1)
    shape[axis] = slots.shape[1]
    return jnp.take_along_axis(array, slots.reshape(shape), axis=axis)


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
        slots = self.window + 1  # the W steps a query sees before it, and its own
        cache = (batch_size, self.num_layers, self.num_heads, slots, head_dim)
        return KVCache(keys=cache, values=cache, valid=(batch_size, slots), oldest=(batch_size,),
                       position=(batch_size,))

    def initialize_carry(self, batch_size: int) -> KVCache:
        """An empty cache for ``batch_size`` sequences; needs no parameters."""
        self._check_options()
        return KVCache(*(jnp.zeros(shape, jnp.float32) for shape in self._carry_shapes(batch_size)))

    def _layers(self):
        return [
            TransformerLayer(self.features, self.num_heads, self.window, self.query_block, self.gating,
                             self.gate_bias, name=f"layer_{layer}")
            for layer in range(self.num_layers)
        ]

    @nn.compact
    def __call__(self, carry: KVCache, inputs: jax.Array, resets: jax.Array) -> tuple[KVCache, jax.Array]:
        """Run T steps: ``inputs[T, B, D]``, ``resets[T, B]`` -> (carry, outputs ``[T, B, H]``)."""
        self._check_options()
        self._check_shapes(carry, inputs, resets)
        x = jnp.swapaxes(jnp.asarray(inputs, jnp.float32), 0, 1)  # [B, T, D]
        resets = jnp.swapaxes(jnp.asarray(resets).astype(bool), 0, 1)  # [B, T]
        x = nn.Dense(self.features, name="input_projection")(x)  # [B, T, H]
        step = self._step if x.shape[1] == 1 else self._sequence
        new_carry, x = step(carry, x, resets)
        return new_carry, jnp.swapaxes(nn.LayerNorm(name="output_norm")(x), 0, 1)

    def _step(self, carry: KVCache, x: jax.Array, resets: jax.Array) -> tuple[KVCache, jax.Array]:
        """One step, ``x [B, 1, H]``: write it into slot ``oldest`` of each layer's ring, then attend over the ring."""
        reset = resets[:, 0]
        position = jnp.where(reset, 0.0, carry.position)  # [B]
        rows, slot = jnp.arange(x.shape[0]), carry.oldest.astype(jnp.int32)
        visible = ((carry.valid > 0.5) & ~reset[:, None]).at[rows, slot].set(True)  # [B, W + 1]
        keys, values = carry.keys, carry.values
        for index, layer in enumerate(self._layers()):

            def write(k, v, index=index):  # [B, heads, d] each -> this layer's ring [B, heads, W + 1, d]
                nonlocal keys, values
                keys, values = keys.at[rows, index, :, slot].set(k), values.at[rows, index, :, slot].set(v)
                return keys[:, index], values[:, index]

            x, _, _ = layer(x, write, None, position[:, None], visible, None)
        new_carry = KVCache(
            keys=keys,
            values=values,
            valid=visible.astype(jnp.float32),
            oldest=jnp.mod(carry.oldest + 1.0, self.window + 1),
            position=jnp.mod(position + 1.0, _POSITION_PERIOD),
        )
        return new_carry, x

    def _sequence(self, carry: KVCache, x: jax.Array, resets: jax.Array) -> tuple[KVCache, jax.Array]:
        """T > 1 steps, ``x [B, T, H]``: banded attention over the cache put oldest first, then back in ring order."""
        window, slots, (batch, steps) = self.window, self.window + 1, resets.shape
        oldest = carry.oldest.astype(jnp.int32)
        # The ring's W + 1 slots oldest first; the oldest is out of every new query's window.
        in_order = jnp.mod(oldest[:, None] + jnp.arange(1, slots), slots)  # [B, W]: j-th of the W newest -> slot
        cached_keys = _ring_gather(carry.keys, in_order, axis=3)  # [B, L, heads, W, d], oldest first
        cached_values = _ring_gather(carry.values, in_order, axis=3)
        cached_valid = _ring_gather(carry.valid, in_order, axis=1) > 0.5

        # Episode index per step of [cache ; new]: cached steps are episode 0,
        # each reset opens the next one, so a key is visible iff same index.
        segments = jnp.concatenate(
            [jnp.zeros((batch, window), jnp.int32), jnp.cumsum(resets, axis=1, dtype=jnp.int32)], axis=1
        )
        key_valid = jnp.concatenate([cached_valid, jnp.ones_like(resets)], axis=1)  # [B, W + T]
        index = jnp.arange(steps)
        last_reset = jax.lax.cummax(jnp.where(resets, index, -1), axis=1)  # [B, T]
        positions = jnp.where(last_reset >= 0, index - last_reset, carry.position[:, None] + index)

        # The next ring holds the last W + 1 steps of [ring ; new]; the ring's oldest slot
        # joins them only when T = 0, so prepend it again for short calls.
        first = lambda a: _ring_gather(a, oldest[:, None], axis=3)  # noqa: E731  [B, L, heads, 1, d]
        oldest_keys, oldest_values = first(carry.keys), first(carry.values)
        new_keys, new_values = [], []
        for layer_index, layer in enumerate(self._layers()):
            x, keys, values = layer(
                x, cached_keys[:, layer_index], cached_values[:, layer_index], positions, key_valid, segments
            )
            keys = jnp.concatenate([jnp.swapaxes(oldest_keys[:, layer_index], 1, 2), keys], axis=1)
            values = jnp.concatenate([jnp.swapaxes(oldest_values[:, layer_index], 1, 2), values], axis=1)
            new_keys.append(jnp.swapaxes(keys[:, -slots:], 1, 2))  # [B, heads, W + 1, d], oldest first
            new_values.append(jnp.swapaxes(values[:, -slots:], 1, 2))

        # The last W + 1 steps, valid iff in the last step's episode, back in ring order: after T
        # steps the oldest sits in slot (oldest + T) mod (W + 1), as T single steps would leave it.
        all_valid = jnp.concatenate([_ring_gather(carry.valid, oldest[:, None], axis=1) > 0.5, key_valid], axis=1)
        all_segments = jnp.concatenate([segments[:, :1], segments], axis=1)  # [B, W + 1 + T]
        valid = all_valid[:, -slots:] & (all_segments[:, -slots:] == all_segments[:, -1:])
        new_oldest = jnp.mod(oldest + steps, slots)
        to_ring = jnp.mod(jnp.arange(slots) - new_oldest[:, None], slots)  # slot -> j-th oldest
        new_carry = KVCache(
            keys=_ring_gather(jnp.stack(new_keys, axis=1), to_ring, axis=3),
            values=_ring_gather(jnp.stack(new_values, axis=1), to_ring, axis=3),
            valid=_ring_gather(valid.astype(jnp.float32), to_ring, axis=1),
            oldest=new_oldest.astype(jnp.float32),
            position=jnp.mod(positions[:, -1] + 1.0, _POSITION_PERIOD),
        )
        return new_carry, x

    def _check_shapes(self, carry: KVCache, inputs: jax.Array, resets: jax.Array) -> None:
        check_inputs("Transformer", inputs, resets)
        expected = self._carry_shapes(jnp.shape(inputs)[1])
        got = tuple(map(jnp.shape, carry)) if isinstance(carry, KVCache) else type(carry).__name__
        if got != tuple(expected):
            raise ValueError(
                "Transformer carry does not match this module and batch size; make it with "
                f"initialize_carry({jnp.shape(inputs)[1]}) (expected {expected}, got {got})."
            )
