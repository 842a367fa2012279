"""The batch every world model trains on: replayed or recorded sequences, time-major."""

from __future__ import annotations

from typing import NamedTuple

import jax


class SequenceBatch(NamedTuple):
    """Sequences ``[T, B, ...]``; step t holds what arrived with observation t.

    obs: ``x_t``. prev_actions: ``a_{t-1}`` (one-hot if discrete; zero at episode starts).
    rewards: ``r_t``, the reward of the transition into ``x_t``. continues: ``1 - terminal_t``.
    resets: true where ``x_t`` is an episode's first observation.
    """

    obs: jax.Array
    prev_actions: jax.Array
    rewards: jax.Array
    continues: jax.Array
    resets: jax.Array
