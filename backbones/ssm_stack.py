"""The layer stack shared by the diagonal state-space backbones (``s5``, ``s4d``, ``lru``).

Inputs are projected to ``features`` channels, then each of ``num_layers``
layers does (Lu et al. 2023, popjaxrl's S5 block, without dropout)::

    z = LayerNorm(x)            # pre-norm
    z = SSM(z)                  # a resettable diagonal recurrence, see scan.py
    z = gelu(z)
    z = Dense(z) * sigmoid(Dense'(z))   # "full GLU"
    x = x + z                   # residual

Sequences longer than ``chunk_size`` run chunk by chunk with the states
rematerialised in the backward pass (:func:`scan.scan_in_chunks`), so memory
grows with ``T * features`` rather than ``T * state``. The recomputation costs
about one extra forward pass of the SSM, so the default (4096) leaves it off at
the lengths PPO trains on (popjaxrl's 1024-step rollouts); lower it for long
sequences that do not fit in memory. ``scan_method`` picks how the recurrence
runs over time (:func:`scan.resettable_scan`; ``"auto"``: sequential on CPU,
associative elsewhere).

The complex matrices ``B_bar`` and ``C~`` are applied as real matrix products
on stacked real and imaginary parts: ``B_bar u = [Re B; Im B] u`` split in two,
and ``Re(C x) = [Re C, -Im C] [Re x; Im x]``. Complex ``dot`` runs about 5x
slower than the equivalent real one on CPU.

A subclass says only which SSM layer to build (:meth:`make_ssm`) and the
per-example shape of its complex state (:meth:`state_shape`). The carry is a
tuple with one complex64 state ``[B, *state_shape]`` per layer.
"""

from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from mnemax.backbones.registry import check_inputs
from mnemax.backbones.scan import check_scan_method, resettable_scan, scan_in_chunks


class DiscreteSystem(NamedTuple):
    """One layer's discretised system, as the recurrence and readout use it."""

    transition: jax.Array  # Lambda_bar [*S]
    input_matrix: jax.Array  # B_bar, complex
    output_matrix: jax.Array  # C~ (times 2 under conjugate symmetry), complex
    feedthrough: jax.Array  # D [H]


class DiagonalSSM(nn.Module):
    """Base of one SSM layer: ``(state [B, *S], u [T, B, H], resets [T, B]) -> (state, y [T, B, H])``.

    A subclass registers its parameters and discretises them in :meth:`system`.
    The default :meth:`drive` and :meth:`readout` are the multi-input
    multi-output maps of S5 and the LRU (``S = [P]``, ``B_bar [P, H]``,
    ``C [H, P]``); S4D overrides them with per-channel ones.
    """

    def system(self) -> DiscreteSystem:
        raise NotImplementedError

    @staticmethod
    def drive(system: DiscreteSystem, u: jax.Array) -> jax.Array:
        """``B_bar u_t`` for every step: ``[T, B, H] -> [T, B, *S]``, as one real product with ``[Re B; Im B]``."""
        matrix = system.input_matrix  # [P, H] complex
        size = matrix.shape[0]
        stacked = jnp.concatenate([matrix.real, matrix.imag]).T  # [H, 2P]
        packed = u.astype(stacked.dtype) @ stacked  # [T, B, 2P]
        return jax.lax.complex(packed[..., :size], packed[..., size:])

    @staticmethod
    def readout(system: DiscreteSystem, states: jax.Array, u: jax.Array) -> jax.Array:
        """``y_t = Re(C x_t) + D u_t``: ``[T, B, *S], [T, B, H] -> [T, B, H]``, as ``[Re C, -Im C] [Re x; Im x]``."""
        matrix = system.output_matrix  # [H, P] complex
        stacked = jnp.concatenate([matrix.real, -matrix.imag], axis=1).T  # [2P, H]
        packed = jnp.concatenate([states.real, states.imag], axis=-1)  # [T, B, 2P]
        return packed @ stacked + system.feedthrough * u

    @nn.compact
    def __call__(
        self, state: jax.Array, u: jax.Array, resets: jax.Array, chunk_size: int = 4096, scan_method: str = "auto"
    ) -> tuple[jax.Array, jax.Array]:
        system = self.system()
        drive, readout = self.drive, self.readout

        def run(state, u, resets):
            state, states = resettable_scan(system.transition, drive(system, u), resets, state, scan_method)
            return state, readout(system, states, u)

        return scan_in_chunks(run, state, u, resets, chunk_size)


def gated_output(features: int, z: jax.Array, index: int) -> jax.Array:
    """The layer's output block ``Dense(gelu z) * sigmoid(Dense'(gelu z))``, ``[..., features]`` (popjaxrl's "full_glu").

    Called inside a stack's compact ``__call__``: its two Dense layers become
    that stack's submodules ``glu_value_<index>`` and ``glu_gate_<index>``.
    """
    z = nn.gelu(z)
    return nn.Dense(features, name=f"glu_value_{index}")(z) * nn.sigmoid(nn.Dense(features, name=f"glu_gate_{index}")(z))


class SSMStack(nn.Module):
    """Input projection, then ``num_layers`` pre-norm SSM / GELU / GLU / residual layers."""

    features: int
    num_layers: int = 4
    chunk_size: int = 4096
    scan_method: str = "auto"

    def make_ssm(self, name: str) -> DiagonalSSM:
        """One SSM layer with this backbone's options."""
        raise NotImplementedError

    def state_shape(self) -> tuple[int, ...]:
        """Per-example shape of one layer's complex state."""
        raise NotImplementedError

    def check_options(self) -> None:
        """Raise a one-sentence ValueError for inconsistent options (subclasses extend it)."""
        if self.num_layers < 1 or self.chunk_size < 1:
            raise ValueError(
                f"num_layers and chunk_size must be at least 1, got {self.num_layers} and {self.chunk_size}."
            )
        check_scan_method(self.scan_method)

    def initialize_carry(self, batch_size: int) -> tuple[jax.Array, ...]:
        """Zero states, one ``[B, *state_shape]`` complex64 array per layer; needs no parameters."""
        self.check_options()
        return tuple(jnp.zeros((batch_size, *self.state_shape()), jnp.complex64) for _ in range(self.num_layers))

    @nn.compact
    def __call__(
        self, carry: tuple[jax.Array, ...], inputs: jax.Array, resets: jax.Array
    ) -> tuple[tuple[jax.Array, ...], jax.Array]:
        """``inputs [T, B, D]``, ``resets [T, B]`` -> ``(carry, outputs [T, B, features])``."""
        self.check_options()
        check_inputs(type(self).__name__, inputs, resets)
        if len(carry) != self.num_layers:
            raise ValueError(f"The carry holds {len(carry)} layer states but num_layers is {self.num_layers}; "
                             "build it with initialize_carry.")
        x = nn.Dense(self.features, name="input_projection")(inputs.astype(jnp.float32))
        states = []
        for index, state in enumerate(carry):
            z = nn.LayerNorm(name=f"norm_{index}")(x)
            state, z = self.make_ssm(f"ssm_{index}")(state, z, resets, self.chunk_size, self.scan_method)
            x = x + gated_output(self.features, z, index)
            states.append(state)
        return tuple(states), x
