"""Titans' neural long-term memory (Behrouz et al. 2025, "Titans: Learning to Memorize at Test Time"), resettable.

Each layer holds a memory MLP ``M_W(x) = W_2 silu(W_1 x)`` (``W_1 [h, d]``,
``W_2 [d, h]``) whose weights are trained *while the sequence runs*, by the
gradient of the associative-recall loss (Sec. 3.1, eqs. 12-14)::

    g_t = clip(grad_W || M_W(k_t) - v_t ||^2)         (norm at most 1, see recall_gradient)
    S_t = eta_t S_{t-1} - theta_t g_t                 (momentum, "surprise")
    W_t = W_0 + (1 - a_t) (W_{t-1} - W_0) + S_t       (forget gate a_t)
    y_t = M_{W_t}(q_t)

with data-dependent ``eta_t, theta_t, a_t`` (sigmoids of projections of
``x_t``; ``theta_t`` scaled to ``(0, max_learning_rate)``) and L2-normalised ``q_t, k_t``.
Queries, keys and values are projections of ``x_t`` through a short causal
convolution and SiLU (Sec. 4.4, "Architectural Details"; short_conv.py). ``W_0`` are learned initial weights; the
forget gate shrinks the weights toward them (the paper shrinks toward zero with
a zero start; anchoring at learned weights keeps the same gate and lets the
carry hold only deviations, so ``initialize_carry`` needs no parameters). A
reset returns the weights to ``W_0`` and the momentum to zero.

**Parallel chunks** (Sec. 3.2): within a chunk of ``chunk_size`` steps every
gradient is taken at the chunk-start weights, so the ``C`` gradients are one
batched computation and what remains is two linear recurrences (momentum, then
weights). Chunks follow each episode's own clock: a chunk starts at an
episode's first step and every ``chunk_size`` steps after, which the carry
tracks (``phase``), so the answer never depends on where a sequence call is
cut. ``method="chunkwise"`` processes the call in blocks of ``chunk_size``
steps; inside a block an entry's gradients are taken at one of three weights:
the carried chunk-start weights, ``W_0`` (after a reset in the block) or the
weights at the one clock boundary the block can contain. The first two are
known up front; the third comes out of a first pass over the block.
``method="sequential"`` runs the same model step by step (``lax.scan``), as
acting does. On two shared CPU cores the sequential form is faster (one layer
of width 32, ``T = 64, B = 32``: gradient 287 ms sequential, 553 ms
chunkwise), so ``"auto"`` picks it there and the chunkwise form elsewhere.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from mnemax.backbones.delta_rule import resolve_delta_method
from mnemax.backbones.gated_deltanet import l2_normalise
from mnemax.backbones.memory_stack import MemoryStack
from mnemax.backbones.registry import register
from mnemax.backbones.short_conv import ConvolvedState, conv_history, convolved_projections


class NeuralMemory(NamedTuple):
    """One layer's carry; ``P`` is the number of memory weights, batch leading.

    deviation: ``[B, P]``, ``W_t - W_0``.
    momentum: ``[B, P]``, ``S_t``.
    anchor: ``[B, P]``, the current chunk's start weights minus ``W_0``.
    phase: ``[B]`` float32, steps taken in the current chunk (``0 .. chunk_size - 1``).
    """

    deviation: jax.Array
    momentum: jax.Array
    anchor: jax.Array
    phase: jax.Array


def memory_apply(weights: jax.Array, x: jax.Array, size: int, hidden: int) -> jax.Array:
    """``M_W(x) = W_2 silu(W_1 x)`` for flat ``weights [P]`` and ``x [d]``."""
    first = weights[: hidden * size].reshape(hidden, size)
    second = weights[hidden * size :].reshape(size, hidden)
    return second @ nn.silu(first @ x)


def recall_gradient(weights: jax.Array, key: jax.Array, value: jax.Array, size: int, hidden: int) -> jax.Array:
    """``grad_W ||M_W(k) - v||^2``, ``[P]``, its norm clipped at 1.

    Plain gradient descent on an MLP diverges once the weights (and with them
    the loss curvature) grow, and the run then turns to inf/NaN within tens of
    steps; with the step bounded, the weights can at most grow linearly.
    """
    gradient = jax.grad(lambda w: jnp.sum((memory_apply(w, key, size, hidden) - value) ** 2))(weights)
    return gradient / jnp.maximum(1.0, jnp.sqrt(jnp.sum(gradient**2) + 1e-12))


def linear_recurrence(transition: jax.Array, drive: jax.Array, start: jax.Array) -> jax.Array:
    """All ``x_t = transition_t * x_{t-1} + drive_t`` from ``x_{-1} = start``, ``[C, B, P]``, by associative scan."""
    drive = drive.at[0].add(transition[0] * start)

    def compose(earlier, later):
        return later[0] * earlier[0], later[0] * earlier[1] + later[1]

    return jax.lax.associative_scan(compose, (transition, drive))[1]


class TitansMixer(nn.Module):
    """One neural-memory layer: ``(ConvolvedState, x [T, B, F], resets) -> (state, y [T, B, F])``.

    ``state.core`` is the :class:`NeuralMemory`, ``state.conv`` the window of the q/k/v convolution.
    """

    features: int
    memory_size: int
    hidden_size: int
    chunk_size: int
    max_learning_rate: float
    method: str
    conv_size: int

    @nn.compact
    def __call__(self, state: ConvolvedState, x: jax.Array, resets: jax.Array) -> tuple[ConvolvedState, jax.Array]:
        size, hidden = self.memory_size, self.hidden_size
        initial = self.param(
            "initial_weights", nn.initializers.normal(1.0 / jnp.sqrt(size)), (2 * size * hidden,)
        )  # W_0 [P]
        history, (q, k, v) = convolved_projections(x, (size, size, size), state.conv, resets, self.conv_size)
        q, k = l2_normalise(q), l2_normalise(k)
        gates = nn.sigmoid(nn.Dense(3, name="gates", bias_init=lambda *_: jnp.array([0.0, 2.0, -4.0]))(x))
        theta = self.max_learning_rate * gates[..., 0:1]  # [T, B, 1] each
        eta, forget = gates[..., 1:2], gates[..., 2:3]
        gradient = jax.vmap(jax.vmap(partial(recall_gradient, size=size, hidden=hidden)), (None, 0, 0))  # over C, B
        read = jax.vmap(jax.vmap(partial(memory_apply, size=size, hidden=hidden)))  # over T, B

        def grad_at(anchor, keys, values):
            """Recall gradients at ``W_0 + anchor [B, P]`` for ``keys, values [C, B, d]``: ``[C, B, P]``."""
            return gradient(initial + anchor, keys, values)

        inputs = (k, v, theta, eta, forget, resets)

        def step(carry: NeuralMemory, step_inputs):
            k_t, v_t, theta_t, eta_t, forget_t, reset_t = step_inputs
            keep = 1.0 - reset_t[:, None].astype(jnp.float32)
            anchor, momentum, deviation = carry.anchor * keep, carry.momentum * keep, carry.deviation * keep
            phase = carry.phase * keep[:, 0]
            g = grad_at(anchor, k_t[None], v_t[None])[0]
            momentum = eta_t * momentum - theta_t * g
            deviation = (1.0 - forget_t) * deviation + momentum
            phase = phase + 1.0
            boundary = (phase >= self.chunk_size)[:, None]
            anchor = jnp.where(boundary, deviation, anchor)
            phase = jnp.where(boundary[:, 0], 0.0, phase)
            return NeuralMemory(deviation, momentum, anchor, phase), deviation

        def block(carry: NeuralMemory, block_inputs):
            return chunk_block(carry, block_inputs, grad_at, self.chunk_size)

        length, memory = x.shape[0], state.core
        if self.method == "sequential" or length < self.chunk_size:
            memory, deviations = jax.lax.scan(step, memory, inputs)
        else:
            blocks = length // self.chunk_size
            cut = blocks * self.chunk_size
            folded = jax.tree.map(lambda a: a[:cut].reshape(blocks, self.chunk_size, *a.shape[1:]), inputs)
            memory, deviations = jax.lax.scan(block, memory, folded)
            deviations = deviations.reshape(cut, *deviations.shape[2:])
            if cut < length:
                memory, rest = jax.lax.scan(step, memory, jax.tree.map(lambda a: a[cut:], inputs))
                deviations = jnp.concatenate([deviations, rest])
        y = read(initial + deviations, q)  # [T, B, d]
        return ConvolvedState(memory, history), nn.Dense(self.features, use_bias=False, name="output")(y)


def chunk_block(carry: NeuralMemory, inputs, grad_at, chunk_size: int):
    """One block of ``chunk_size`` steps in the parallel form; returns ``(carry, deviations [C, B, P])``."""
    k, v, theta, eta, forget, resets = inputs
    resets = resets.astype(bool)
    steps = jnp.arange(chunk_size)[:, None]  # [C, 1]
    last_reset = jax.lax.cummax(jnp.where(resets, steps, -1), axis=0)  # [C, B]
    seen = last_reset >= 0  # a reset at or before t in this block
    phase = jnp.where(seen, steps - last_reset, (carry.phase[None] + steps) % chunk_size)  # steps into the chunk before t
    boundary = (chunk_size - carry.phase).astype(jnp.int32)  # first step whose chunk starts in this block
    before = (steps < boundary[None]) & ~seen  # [C, B]
    keep = (~resets).astype(jnp.float32)[..., None]

    def recurrences(g):
        momentum = linear_recurrence(eta * keep, -theta * g, carry.momentum)
        return momentum, linear_recurrence((1.0 - forget) * keep, momentum, carry.deviation)

    from_carry = grad_at(carry.anchor, k, v)
    from_start = grad_at(jnp.zeros_like(carry.anchor), k, v)
    first = jnp.where(seen[..., None], from_start, from_carry)
    _, deviation = recurrences(first)
    index = jnp.clip(boundary - 1, 0, chunk_size - 1)
    middle = jnp.take_along_axis(deviation, index[None, :, None], axis=0)[0]  # weights at the clock boundary
    g = jnp.where(seen[..., None], from_start, jnp.where(before[..., None], from_carry, grad_at(middle, k, v)))
    momentum, deviation = recurrences(g)

    ends = phase[-1] + 1.0 >= chunk_size  # the last step closes a chunk
    crossed = (~seen[-1]) & (boundary <= chunk_size - 1)
    anchor = jnp.where(crossed[:, None], middle, jnp.where(seen[-1][:, None], 0.0, carry.anchor))
    anchor = jnp.where(ends[:, None], deviation[-1], anchor)
    new_phase = jnp.where(ends, 0.0, phase[-1] + 1.0)
    return NeuralMemory(deviation[-1], momentum[-1], anchor, new_phase), deviation


@register("titans")
class Titans(MemoryStack):
    """Stacked resettable Titans neural-memory layers (the memory as a layer, "MAL").

    Options: ``num_layers`` (2), ``memory_size`` (d, 16: width of keys, values
    and queries), ``hidden_size`` (h, 32: the memory MLP's hidden width),
    ``chunk_size`` (8: steps whose gradients share their chunk-start weights;
    1 is exact online gradient descent), ``max_learning_rate`` (0.1, the
    upper end of ``theta_t``), ``conv_size`` (4, steps of the short
    convolution on queries, keys and values), ``method`` ("auto", "chunkwise",
    "sequential"; "auto" is sequential on CPU, chunkwise elsewhere). Carry: a
    :class:`ConvolvedState` per layer, the :class:`NeuralMemory` and the convolution's window.
    """

    memory_size: int = 16
    hidden_size: int = 32
    chunk_size: int = 8
    max_learning_rate: float = 0.1
    conv_size: int = 4

    def check_options(self) -> None:
        super().check_options()
        if min(self.memory_size, self.hidden_size, self.chunk_size, self.conv_size) < 1:
            raise ValueError(
                "memory_size, hidden_size, chunk_size and conv_size must be at least 1, got "
                f"{self.memory_size}, {self.hidden_size}, {self.chunk_size} and {self.conv_size}."
            )

    def layer_state(self, batch_size: int) -> ConvolvedState:
        zeros = jnp.zeros((batch_size, 2 * self.memory_size * self.hidden_size), jnp.float32)
        memory = NeuralMemory(zeros, zeros, zeros, jnp.zeros((batch_size,), jnp.float32))
        return ConvolvedState(memory, conv_history(batch_size, self.conv_size, 3 * self.memory_size))

    def make_mixer(self, name: str) -> TitansMixer:
        return TitansMixer(
            self.features,
            self.memory_size,
            self.hidden_size,
            self.chunk_size,
            self.max_learning_rate,
            resolve_delta_method(self.method),
            self.conv_size,
            name=name,
        )
