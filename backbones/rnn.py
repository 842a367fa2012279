"""Gated recurrent backbones: ``gru`` and ``lstm``, flax cells scanned over time with resets.

Before each step the carry of every batch entry whose ``resets[t]`` is true is
replaced by the initial (zero) carry, so the first step of an episode never
sees the previous episode. The cells are flax's own (``nn.GRUCell``,
``nn.OptimizedLSTMCell``); ``nn.scan`` runs them over the time axis.
"""

from __future__ import annotations

from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from mnemax.backbones.registry import check_inputs, register


class _ResettingStep(nn.Module):
    """One time step: zero the carry where ``reset``, then run the cell on ``x [B, D]``."""

    cell_class: Any
    features: int

    @nn.compact
    def __call__(self, carry: Any, step: tuple[jax.Array, jax.Array]) -> tuple[Any, jax.Array]:
        x, reset = step
        carry = jax.tree.map(lambda c: jnp.where(reset[:, None], jnp.zeros_like(c), c), carry)
        return self.cell_class(features=self.features, name="cell")(carry, x)


class RecurrentCellBackbone(nn.Module):
    """A flax RNN cell over time: ``(carry, inputs [T, B, D], resets [T, B]) -> (carry, outputs [T, B, H])``.

    ``project_inputs`` puts a ``Dense(features)`` before the cell.
    """

    features: int
    project_inputs: bool = False
    cell_class: ClassVar[Any] = None

    def initialize_carry(self, batch_size: int) -> Any:
        """The cell's zero carry for ``batch_size`` entries; needs no parameters."""
        cell = self.cell_class(features=self.features, parent=None)
        return cell.initialize_carry(jax.random.key(0), (batch_size, self.features))

    @nn.compact
    def __call__(self, carry: Any, inputs: jax.Array, resets: jax.Array) -> tuple[Any, jax.Array]:
        check_inputs(type(self).__name__, inputs, resets)
        x = inputs.astype(jnp.float32)
        if self.project_inputs:
            x = nn.Dense(self.features, name="input_projection")(x)
        scan = nn.scan(
            _ResettingStep, variable_broadcast="params", split_rngs={"params": False}, in_axes=0, out_axes=0
        )
        return scan(self.cell_class, self.features, name="rnn")(carry, (x, resets.astype(bool)))


@register("gru")
class GRU(RecurrentCellBackbone):
    """``nn.GRUCell`` over time; carry ``[B, H]``."""

    cell_class: ClassVar[Any] = nn.GRUCell


@register("lstm")
class LSTM(RecurrentCellBackbone):
    """``nn.OptimizedLSTMCell`` over time; carry ``(c [B, H], h [B, H])``."""

    cell_class: ClassVar[Any] = nn.OptimizedLSTMCell
