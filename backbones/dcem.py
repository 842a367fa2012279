"""Dual-Coding Episodic Memory, ``dcem`` (Hill et al., "Grounded Language Learning Fast and Slow", ICLR 2021).

Every step the core writes the step's vision and language embeddings into two
columns of an episodic memory, reads it by attention with one modality as key
and the other as value, and feeds the reads to an LSTM::

    k^v_t, k^l_t = Dense(vision_t), Dense'(language_t)       # [B, K] each, written to slot t mod M
    q_t = Dense(concat(h_{t-1}, vision_t, language_t))         # [B, H, 2, K]: per head, one query per direction
    r^{l->v}_t = read_memory(language column, vision column, q_t[:, :, 0])   # language keys, vision values
    r^{v->l}_t = read_memory(vision column, language column, q_t[:, :, 1])   # vision keys, language values
    (c_t, h_t) = LSTMCell((c_{t-1}, h_{t-1}), concat(r^{l->v}_t, r^{v->l}_t, vision_t, language_t))

The output is ``h_t`` (the reads of step t already enter it). ``single_column``
is the paper's baseline: one column of ``concat(k^v, k^l)`` serves as keys and
values, one read per head.

The columns hold the projections to ``key_size``, not the raw embeddings: keys
and queries then share one space of width K in both directions, and the carry
(``B x M x 2K``) is sized by the config, not by the encoders' widths.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from mnemax.backbones.mixer_stack import reset_state
from mnemax.backbones.registry import check_inputs, register
from mnemax.backbones.rnn import LSTM


class DCEMCarry(NamedTuple):
    """The LSTM state and the episodic memory of each batch entry; all zeros is the initial carry."""

    lstm: tuple[jax.Array, jax.Array]  # (c, h), [B, features] each
    vision: jax.Array  # [B, M, K] projected vision embeddings, slot by slot
    language: jax.Array  # [B, M, K] projected language embeddings
    next_slot: jax.Array  # [B] int32: the slot the next write goes to (ring)
    filled: jax.Array  # [B] int32: how many slots hold a write of this episode (at most M)


def read_memory(
    keys: jax.Array, values: jax.Array, valid: jax.Array, queries: jax.Array, top_k: int, scale: float | None = None
) -> jax.Array:
    """Top-k attention read: ``keys [B, M, K]``, ``values [B, M, V]``, ``valid [B, M]``, ``queries [B, H, K]`` -> ``[B, H, V]``.

    The values weighted by :func:`read_weights`; a head with no valid slot reads zeros.
    """
    return weighted_read(read_weights(keys, valid, queries, top_k, scale), values)


def weighted_read(weights: jax.Array, values: jax.Array) -> jax.Array:
    """``weights [B, H, M]`` over the slots of ``values [B, M, V]`` -> each head's read ``[B, H, V]``."""
    return jnp.einsum("bhm,bmv->bhv", weights, values)


def read_weights(keys: jax.Array, valid: jax.Array, queries: jax.Array, top_k: int, scale: float | None = None) -> jax.Array:
    """Each head's weight on each slot, ``[B, H, M]``: what :func:`read_memory` reads with.

    Scores ``scale * q . k`` (``scale`` defaults to ``1 / sqrt(K)``) over the
    valid slots; each head keeps its ``top_k`` best valid slots (fewer when fewer
    are valid) and softmaxes over those. Invalid slots and slots outside the
    top k get zero weight; a head with no valid slot has none.
    """
    scale = keys.shape[-1] ** -0.5 if scale is None else scale
    scores = scale * jnp.einsum("bhk,bmk->bhm", queries, keys)
    valid = jnp.broadcast_to(valid[:, None, :], scores.shape)
    lowest = jnp.finfo(scores.dtype).min
    best, slots = jax.lax.top_k(jnp.where(valid, scores, lowest), min(top_k, keys.shape[1]))  # [B, H, k]
    chosen = jnp.take_along_axis(valid, slots, axis=-1)
    best = jnp.where(chosen, best, 0.0)  # keeps exp() and its gradient finite where nothing is valid
    shifted = best - jnp.max(jnp.where(chosen, best, lowest), axis=-1, keepdims=True)
    weights = jnp.where(chosen, jnp.exp(jnp.where(chosen, shifted, 0.0)), 0.0)
    weights = weights / jnp.maximum(jnp.sum(weights, axis=-1, keepdims=True), jnp.finfo(scores.dtype).tiny)
    return jnp.einsum("bhk,bhkm->bhm", weights, jax.nn.one_hot(slots, keys.shape[1], dtype=weights.dtype))  # onto the slots


def write_memory(carry: DCEMCarry, vision: jax.Array, language: jax.Array) -> DCEMCarry:
    """Write ``vision [B, K]`` and ``language [B, K]`` at each entry's ``next_slot``, overwriting the oldest when full."""
    capacity = carry.vision.shape[1]
    here = (jnp.arange(capacity)[None, :] == carry.next_slot[:, None])[..., None]  # [B, M, 1]
    return carry._replace(
        vision=jnp.where(here, vision[:, None, :], carry.vision),
        language=jnp.where(here, language[:, None, :], carry.language),
        next_slot=(carry.next_slot + 1) % capacity,
        filled=jnp.minimum(carry.filled + 1, capacity),
    )


class _DCEMStep(nn.Module):
    """One step for the whole batch: reset, write, read both ways, LSTM; ``-> (carry, h_t [B, features])``."""

    features: int
    num_heads: int
    top_k: int
    key_size: int
    single_column: bool
    read_before_write: bool

    @nn.compact
    def __call__(self, carry: DCEMCarry, step: tuple[jax.Array, ...]) -> tuple[DCEMCarry, jax.Array]:
        vision, language, vision_code, language_code, reset = step
        carry = reset_state(carry, reset)
        written = write_memory(carry, vision_code, language_code)
        memory = carry if self.read_before_write else written
        valid = jnp.arange(memory.vision.shape[1])[None, :] < memory.filled[:, None]
        _, h_previous = carry.lstm
        directions = 1 if self.single_column else 2
        width = 2 * self.key_size if self.single_column else self.key_size
        queries = nn.Dense(self.num_heads * directions * width, name="query")(
            jnp.concatenate([h_previous, vision, language], axis=-1)
        ).reshape(-1, self.num_heads, directions, width)
        if self.single_column:
            column = jnp.concatenate([memory.vision, memory.language], axis=-1)
            weights = read_weights(column, valid, queries[:, :, 0], self.top_k)
            reads = [weighted_read(weights, column)]
        else:
            weights = read_weights(memory.language, valid, queries[:, :, 0], self.top_k)
            reads = [
                weighted_read(weights, memory.vision),  # language -> vision
                read_memory(memory.vision, memory.language, valid, queries[:, :, 1], self.top_k),  # vision -> language
            ]
        reads = jnp.concatenate([r.reshape(r.shape[0], -1) for r in reads], axis=-1)
        self.sow("intermediates", "reads", reads)
        self.sow("intermediates", "slot_weights", weights)  # [B, H, M]: where the language -> vision read looked
        lstm, h = LSTM.cell_class(features=self.features, name="lstm")(
            carry.lstm, jnp.concatenate([reads, vision, language], axis=-1)
        )
        return written._replace(lstm=lstm), h


@register("dcem")
class DCEM(nn.Module):
    """Dual-coding episodic memory feeding an LSTM: ``inputs {vision: [T, B, Dv], language: [T, B, Dl]}`` -> ``[T, B, features]``.

    ``capacity`` slots (M, one per step; the oldest is overwritten once an
    episode is longer), ``num_heads`` heads each reading the ``top_k`` best
    slots in both directions, keys of width ``key_size``. ``single_column``
    reads one column of both embeddings instead (the baseline). Reads made in
    a call are sown as ``intermediates/reads`` ``[T, B, reads]``, and the slot
    weights of the language -> vision read (of the one read with
    ``single_column``) as ``intermediates/slot_weights`` ``[T, B, H, M]``, for
    inspection: which slot a word found. ``read_before_write`` reads the
    memory as it was before this step's write, so that a query never finds
    the step's own embeddings (the closest match of its own words); by
    default the step is written first.
    """

    features: int
    num_heads: int = 2
    top_k: int = 8
    key_size: int = 32
    capacity: int = 64
    single_column: bool = False
    read_before_write: bool = False
    vision_key: str = "vision"
    language_key: str = "language"

    def input_parts(self) -> tuple[str, ...]:
        """The dict keys ``__call__`` reads: the vision and the language embedding."""
        return (self.vision_key, self.language_key)

    def check_options(self) -> None:
        """Raise a one-sentence ValueError for an option that cannot work."""
        for option in ("num_heads", "top_k", "key_size", "capacity"):
            if getattr(self, option) < 1:
                raise ValueError(f"dcem needs {option} >= 1, got {getattr(self, option)}.")
        if self.vision_key == self.language_key:
            raise ValueError(f"dcem needs two different part names, got vision_key = language_key = {self.vision_key!r}.")

    def initialize_carry(self, batch_size: int) -> DCEMCarry:
        """Zero LSTM state and an empty memory (nothing filled); needs no parameters."""
        self.check_options()
        column = jnp.zeros((batch_size, self.capacity, self.key_size), jnp.float32)
        slots = jnp.zeros((batch_size,), jnp.int32)
        return DCEMCarry(LSTM(self.features, parent=None).initialize_carry(batch_size), column, column, slots, slots)

    @nn.compact
    def __call__(self, carry: DCEMCarry, inputs: dict[str, jax.Array], resets: jax.Array) -> tuple[DCEMCarry, jax.Array]:
        """``inputs {vision_key: [T, B, Dv], language_key: [T, B, Dl]}``, ``resets [T, B]`` -> ``(carry, [T, B, features])``."""
        self.check_options()
        check_inputs("dcem", inputs, resets, self.input_parts())
        vision = inputs[self.vision_key].astype(jnp.float32)
        language = inputs[self.language_key].astype(jnp.float32)
        memory = tuple(carry.vision.shape[1:]) if isinstance(carry, DCEMCarry) else type(carry).__name__
        if memory != (self.capacity, self.key_size):
            raise ValueError(
                f"The carry's memory is {memory} but (capacity, key_size) is "
                f"{(self.capacity, self.key_size)}; make the carry with this module's initialize_carry."
            )
        vision_code = nn.Dense(self.key_size, name="vision_projection")(vision)  # [T, B, K]
        language_code = nn.Dense(self.key_size, name="language_projection")(language)
        scan = nn.scan(
            _DCEMStep,
            variable_broadcast="params",
            variable_axes={"intermediates": 0},
            split_rngs={"params": False},
            in_axes=0,
            out_axes=0,
        )
        step = scan(
            self.features, self.num_heads, self.top_k, self.key_size, self.single_column, self.read_before_write, name="step"
        )
        return step(carry, (vision, language, vision_code, language_code, resets.astype(bool)))
