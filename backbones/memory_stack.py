"""The layer stack shared by the matrix-memory backbones (``gated_deltanet``, ``deltanet``, ``mom``, ``titans``).

Inputs are projected to ``features`` channels; each of ``num_layers`` layers is
the block the diagonal SSMs use (ssm_stack.py), with a memory mixer in place of
the SSM::

    z = Mixer(LayerNorm(x))                      # reads and writes its memory
    x = x + Dense(gelu z) * sigmoid(Dense'(gelu z))

A subclass builds one layer's mixer (:meth:`make_mixer`) and says the zero state of
one layer (:meth:`layer_state`); the carry is the tuple of the layers' states. A
mixer is called as ``mixer(state, z [T, B, H], resets [T, B]) -> (state, z)``.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from mnemax.backbones.delta_rule import check_delta_method
from mnemax.backbones.registry import check_inputs
from mnemax.backbones.ssm_stack import gated_output


class MemoryStack(nn.Module):
    """Input projection, then ``num_layers`` pre-norm mixer / GELU / GLU / residual layers."""

    features: int
    num_layers: int = 2
    method: str = "auto"

    def make_mixer(self, name: str) -> nn.Module:
        raise NotImplementedError

    def layer_state(self, batch_size: int) -> Any:
        """One layer's zero state for ``batch_size`` entries."""
        raise NotImplementedError

    def check_options(self) -> None:
        """Raise a one-sentence ValueError for inconsistent options (subclasses extend it)."""
        if self.num_layers < 1:
            raise ValueError(f"num_layers must be at least 1, got {self.num_layers}.")
        check_delta_method(self.method)

    def initialize_carry(self, batch_size: int) -> tuple[Any, ...]:
        """Zero memories, one per layer; needs no parameters."""
        self.check_options()
        return tuple(self.layer_state(batch_size) for _ in range(self.num_layers))

    @nn.compact
    def __call__(self, carry: tuple[Any, ...], inputs: jax.Array, resets: jax.Array) -> tuple[tuple[Any, ...], jax.Array]:
        """``inputs [T, B, D]``, ``resets [T, B]`` -> ``(carry, outputs [T, B, features])``."""
        self.check_options()
        check_inputs(type(self).__name__, inputs, resets)
        if len(carry) != self.num_layers:
            raise ValueError(
                f"The carry holds {len(carry)} layer states but num_layers is {self.num_layers}; "
                "build it with initialize_carry."
            )
        resets = resets.astype(bool)
        x = nn.Dense(self.features, name="input_projection")(inputs.astype(jnp.float32))
        new_carry = []
        for index, state in enumerate(carry):
            state, z = self.make_mixer(f"mixer_{index}")(state, nn.LayerNorm(name=f"norm_{index}")(x), resets)
            x = x + gated_output(self.features, z, index)
            new_carry.append(state)
        return tuple(new_carry), x
