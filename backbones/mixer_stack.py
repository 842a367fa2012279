"""The residual layer stack shared by ``mamba``, ``mingru``, ``mlstm`` and ``ffm``.

Inputs are projected to ``features`` channels, then each of ``num_layers``
layers does (the pre-norm residual block of Mamba and xLSTM)::

    x = x + Mixer(LayerNorm(x))     # Mixer: a resettable recurrence over time

and a final LayerNorm normalises the output. A subclass says which mixer to
build (:meth:`MixerStack.make_mixer`); the mixer owns its per-layer state, an
arbitrary PyTree of arrays with batch as the leading axis, which it creates
with ``initial_state(batch_size)`` and threads through
``__call__(state, x [T, B, H], resets [T, B]) -> (state, y [T, B, H])``.
The stack's carry is the tuple of the layers' states.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from mnemax.backbones.registry import check_inputs

#: How a mixer runs over time: ``"auto"`` picks by backend, the others force one form.
SEQUENCE_METHODS = ("auto", "sequential", "parallel")


def check_sequence_method(backbone: str, method: str) -> None:
    """Raise the one-sentence error for an unknown ``method``."""
    if method not in SEQUENCE_METHODS:
        raise ValueError(f"Unknown {backbone} method {method!r}; choose one of {', '.join(SEQUENCE_METHODS)}.")


def diagonal_scan_method(method: str) -> str:
    """The :mod:`scan` method behind a mixer ``method``: ``"parallel"`` is the associative scan."""
    return "associative" if method == "parallel" else method


def reset_state(state: Any, reset: jax.Array) -> Any:
    """Zero every leaf of ``state`` (batch leading) where ``reset [B]`` is true."""
    return jax.tree.map(lambda s: jnp.where(reset.reshape(-1, *([1] * (s.ndim - 1))), jnp.zeros_like(s), s), state)


class MixerStack(nn.Module):
    """Input projection, ``num_layers`` pre-norm residual mixer layers, output LayerNorm."""

    features: int
    num_layers: int = 2
    method: str = "auto"

    def make_mixer(self, **naming: Any) -> nn.Module:
        """One mixer layer with this backbone's options; ``naming`` is ``name=...`` or ``parent=None``."""
        raise NotImplementedError

    def check_options(self) -> None:
        """Raise a one-sentence ValueError for inconsistent options (subclasses extend it)."""
        if self.num_layers < 1:
            raise ValueError(f"{type(self).__name__} needs num_layers >= 1, got {self.num_layers}.")
        check_sequence_method(type(self).__name__, self.method)

    def initialize_carry(self, batch_size: int) -> tuple[Any, ...]:
        """Zero states, one per layer; needs no parameters."""
        self.check_options()
        mixer = self.make_mixer(parent=None)
        return tuple(mixer.initial_state(batch_size) for _ in range(self.num_layers))

    @nn.compact
    def __call__(self, carry: tuple[Any, ...], inputs: jax.Array, resets: jax.Array) -> tuple[tuple[Any, ...], jax.Array]:
        """``inputs [T, B, D]``, ``resets [T, B]`` -> ``(carry, outputs [T, B, features])``."""
        self.check_options()
        check_inputs(type(self).__name__, inputs, resets)
        if not isinstance(carry, tuple) or len(carry) != self.num_layers:
            raise ValueError(
                f"{type(self).__name__} expects a carry of {self.num_layers} layer states; build it with initialize_carry."
            )
        resets = resets.astype(bool)
        x = nn.Dense(self.features, name="input_projection")(inputs.astype(jnp.float32))
        states = []
        for index, state in enumerate(carry):
            state, y = self.make_mixer(name=f"mixer_{index}")(state, nn.LayerNorm(name=f"norm_{index}")(x), resets)
            x = x + y
            states.append(state)
        return tuple(states), nn.LayerNorm(name="output_norm")(x)
