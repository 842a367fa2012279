"""mLSTM: xLSTM's matrix-memory LSTM (Beck et al. 2024, "xLSTM: Extended Long Short-Term
Memory", Sec. 2.3 and App. A.3), multi-head and resettable.

Each head keeps a matrix memory ``C [d, d]``, a normaliser ``n [d]`` and the
stabiliser ``m`` (a scalar) that keeps the exponential input gate finite::

    c_t  = silu(causal conv_K(x)_t)                          short convolution (short_conv.py)
    q_t, k_t, v_t = W_q c_t, W_k c_t / sqrt(d), W_v x_t     per head [d]
    m_t  = max(log sigmoid(f~_t) + m_{t-1}, i~_t)           stabiliser (eq. 15)
    i_t  = exp(i~_t - m_t),  f_t = exp(log sigmoid(f~_t) + m_{t-1} - m_t)
    C_t  = f_t C_{t-1} + i_t v_t k_t^T
    n_t  = f_t n_{t-1} + i_t k_t
    h~_t = C_t q_t / max(|n_t . q_t|, exp(-m_t))
    y_t  = W_out(sigmoid(W_o x_t) * HeadNorm(h~_t))

with ``i~_t, f~_t`` scalars per head from ``x_t`` (the forget bias starts on
``[3, 6]`` as in the paper). Queries and keys come from the convolved stream
and values from the plain one, as in the paper's mLSTM block (Fig. 10). A
reset restarts from ``C = 0, n = 0, m = 0`` and an empty convolution window.

``method="sequential"`` runs the recurrence step by step (``lax.scan``);
``"parallel"`` runs the chunkwise form: within a chunk of ``chunk_size``
steps every output is one masked, stabilised attention row over the chunk
plus the carried memory, with the log decay ``D_ts = sum_{r=s+1..t} log f_r +
i~_s`` and ``m_t = max_s D_ts`` (including the carried state's term), so
``m_t`` is exactly the recurrent stabiliser. Entries across a reset are
masked with ``jnp.where``. ``"auto"`` takes the chunkwise form. A single step
(acting) always takes the recurrent update.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from mnemax.backbones.mixer_stack import MixerStack, reset_state
from mnemax.backbones.registry import register
from mnemax.backbones.scan import scan_in_chunks
from mnemax.backbones.short_conv import ConvolvedState, ShortConv, conv_history

_MASKED = -1e30  # log-weight of an entry across a reset: exp() of it is exactly 0, with zero gradient


class MLSTMState(NamedTuple):
    """One layer's carry: ``C [B, heads, d, d]`` (value x key), ``n [B, heads, d]``, ``m [B, heads]``."""

    memory: jax.Array
    normalizer: jax.Array
    stabilizer: jax.Array


def _readout(numerator: jax.Array, denominator: jax.Array, stabilizer: jax.Array) -> jax.Array:
    """``h~ = numerator / max(|denominator|, exp(-m))``: ``[..., d], [...], [...] -> [..., d]``."""
    return numerator / jnp.maximum(jnp.abs(denominator), jnp.exp(-stabilizer))[..., None]


def mlstm_recurrent(state: MLSTMState, q, k, v, input_gate, log_forget, resets) -> tuple[MLSTMState, jax.Array]:
    """The step-by-step recurrence over ``[T, B, heads, d]`` (gates ``[T, B, heads]``); returns ``h~ [T, B, heads, d]``."""

    def step(state: MLSTMState, inputs):
        q, k, v, i, log_f, reset = inputs
        memory, normalizer, m = reset_state(state, reset)
        m_new = jnp.maximum(log_f + m, i)
        forget, write = jnp.exp(log_f + m - m_new), jnp.exp(i - m_new)
        memory = forget[..., None, None] * memory + write[..., None, None] * v[..., :, None] * k[..., None, :]
        normalizer = forget[..., None] * normalizer + write[..., None] * k
        h = _readout(jnp.einsum("bhvk,bhk->bhv", memory, q), jnp.sum(normalizer * q, -1), m_new)
        return MLSTMState(memory, normalizer, m_new), h

    return jax.lax.scan(step, state, (q, k, v, input_gate, log_forget, resets))


def mlstm_chunk(state: MLSTMState, q, k, v, input_gate, log_forget, resets) -> tuple[MLSTMState, jax.Array]:
    """The same recurrence over one chunk of ``L`` steps in parallel form (see the module docstring)."""
    to_heads = lambda a: jnp.moveaxis(a, 0, 2)  # noqa: E731  [L, B, h, ...] -> [B, h, L, ...]
    q, k, v, i, log_f = map(to_heads, (q, k, v, input_gate, log_forget))  # [B, h, L, d] / [B, h, L]
    length = q.shape[2]
    episode = jnp.cumsum(resets, axis=0, dtype=jnp.int32).T[:, None]  # [B, 1, L]; 0 continues the carry
    cumulative = jnp.cumsum(log_f, axis=-1)  # F_t = sum_{r <= t} log f_r
    # F just before each step's episode began (0 for the carried episode).
    starts = jax.lax.cummax(jnp.where(resets.T, jnp.arange(length), 0), axis=1)[:, None]  # [B, 1, L]
    before_start = jnp.take_along_axis(cumulative - log_f, jnp.broadcast_to(starts, log_f.shape), axis=-1)
    carried = episode == 0
    base = cumulative - jnp.where(carried, 0.0, before_start) + jnp.where(carried, state.stabilizer[..., None], 0.0)

    causal = jnp.tril(jnp.ones((length, length), bool))
    visible = causal & (episode[..., :, None] == episode[..., None, :])  # [B, 1, L, L]
    log_weights = jnp.where(visible, cumulative[..., :, None] - cumulative[..., None, :] + i[..., None, :], _MASKED)
    m = jnp.maximum(base, jnp.max(log_weights, axis=-1))  # [B, h, L]
    weights = jnp.exp(log_weights - m[..., None])  # [B, h, L, L]; 0 where not visible
    carry_weight = jnp.where(carried, jnp.exp(jnp.where(carried, base, 0.0) - m), 0.0)  # [B, h, L]

    scores = weights * jnp.einsum("bhtd,bhsd->bhts", q, k)
    numerator = scores @ v + carry_weight[..., None] * jnp.einsum("bhvk,bhtk->bhtv", state.memory, q)
    denominator = jnp.sum(scores, -1) + carry_weight * jnp.einsum("bhk,bhtk->bht", state.normalizer, q)
    h = _readout(numerator, denominator, m)  # [B, h, L, d]

    last, last_carry = weights[..., -1, :], carry_weight[..., -1]  # [B, h, L], [B, h]
    memory = jnp.einsum("bhs,bhsv,bhsk->bhvk", last, v, k) + last_carry[..., None, None] * state.memory
    normalizer = jnp.einsum("bhs,bhsk->bhk", last, k) + last_carry[..., None] * state.normalizer
    return MLSTMState(memory, normalizer, m[..., -1]), jnp.moveaxis(h, 2, 0)


class MLSTMLayer(nn.Module):
    """One multi-head mLSTM on ``x [T, B, H]``; ``H`` splits into ``num_heads`` heads of ``d = H / heads``."""

    features: int
    num_heads: int
    chunk_size: int = 64
    method: str = "auto"
    conv_size: int = 4

    @property
    def head_dim(self) -> int:
        return self.features // self.num_heads

    def initial_state(self, batch_size: int) -> ConvolvedState:
        """An :class:`MLSTMState` of zeros and the empty convolution window ``[B, K - 1, features]``."""
        heads, d = self.num_heads, self.head_dim
        cell = MLSTMState(
            memory=jnp.zeros((batch_size, heads, d, d), jnp.float32),
            normalizer=jnp.zeros((batch_size, heads, d), jnp.float32),
            stabilizer=jnp.zeros((batch_size, heads), jnp.float32),
        )
        return ConvolvedState(cell, conv_history(batch_size, self.conv_size, self.features))

    @nn.compact
    def __call__(self, state: ConvolvedState, x: jax.Array, resets: jax.Array) -> tuple[ConvolvedState, jax.Array]:
        heads, d = self.num_heads, self.head_dim
        history, c = ShortConv(self.conv_size, name="short_conv")(state.conv, x, resets)
        projection = lambda name, source: nn.DenseGeneral((heads, d), name=name)(source)  # noqa: E731  [T, B, heads, d]
        q, k, v = projection("query", c), projection("key", c) / math.sqrt(d), projection("value", x)
        input_gate = nn.Dense(heads, name="input_gate")(x)  # [T, B, heads]
        forget_bias = lambda key, shape, dtype=jnp.float32: jnp.linspace(3.0, 6.0, shape[0], dtype=dtype)  # noqa: E731
        log_forget = jax.nn.log_sigmoid(nn.Dense(heads, bias_init=forget_bias, name="forget_gate")(x))

        if x.shape[0] == 1 or self.method == "sequential":
            cell, h = mlstm_recurrent(state.core, q, k, v, input_gate, log_forget, resets)
        else:
            packed = jnp.concatenate([q, k, v, input_gate[..., None], log_forget[..., None]], axis=-1)

            def run(state, packed, resets):
                q, k, v, i, log_f = jnp.split(packed, [d, 2 * d, 3 * d, 3 * d + 1], axis=-1)
                return mlstm_chunk(state, q, k, v, i[..., 0], log_f[..., 0], resets)

            cell, h = scan_in_chunks(run, state.core, packed, resets, self.chunk_size)
        h = nn.LayerNorm(reduction_axes=-1, feature_axes=(-2, -1), name="head_norm")(h)
        h = (nn.sigmoid(nn.Dense(self.features, name="output_gate")(x)) * h.reshape(*h.shape[:2], -1))
        return ConvolvedState(cell, history), nn.Dense(self.features, name="out_projection")(h)


@register("mlstm")
class MLSTM(MixerStack):
    """Stacked resettable multi-head mLSTM layers (see mixer_stack.py for the residual block).

    Options: ``num_layers`` (2), ``num_heads`` (4; ``features`` must split
    into them), ``chunk_size`` (64, steps per parallel chunk), ``conv_size``
    (4, steps of the short convolution that feeds queries and keys),
    ``method`` (``"auto"``, ``"sequential"``, ``"parallel"``). Carry: a
    :class:`ConvolvedState` per layer.
    """

    num_heads: int = 4
    chunk_size: int = 64
    conv_size: int = 4

    def check_options(self) -> None:
        super().check_options()
        if self.num_heads < 1 or min(self.chunk_size, self.conv_size) < 1 or self.features % self.num_heads:
            raise ValueError(
                f"mLSTM features={self.features} must split into num_heads={self.num_heads} equal heads "
                f"and chunk_size={self.chunk_size} and conv_size={self.conv_size} must be >= 1."
            )

    def make_mixer(self, **naming) -> MLSTMLayer:
        return MLSTMLayer(
            features=self.features,
            num_heads=self.num_heads,
            chunk_size=self.chunk_size,
            method=self.method,
            conv_size=self.conv_size,
            **naming,
        )
