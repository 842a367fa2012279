"""Sequence cores behind one resettable interface.

Every backbone is a ``flax.linen.Module`` with::

    initialize_carry(batch_size) -> carry
    __call__(carry, inputs[T, B, D], resets[T, B]) -> (carry, outputs[T, B, features])

``resets[t, b]`` true means step t starts a new episode: the carry is replaced
by the initial carry before step t. One call over T steps equals T calls of one
step with the carry threaded through.
"""

from mnemax.backbones.registry import BackboneSpec, make, names, register

__all__ = ["BackboneSpec", "make", "names", "register"]
