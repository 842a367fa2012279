"""CountRecall (POPGym): say how many cards of the queried value have been dealt so far.

Two decks are dealt side by side: a value deck and a query deck. Each step
shows one card of each. At the next step the agent must answer how many cards
of the queried value the value deck has shown so far, the card shown with the
query included. Right answers give ``1 / (N - 1)``, wrong ones
``-1 / (N - 1)`` (``N = 52 * num_decks``); the episode terminates when the
decks run out, after ``N - 1`` steps, so returns lie in [-1, 1]. Cards are
told apart by colour, suit or rank (``deck_type``).

POPGym's ``error_clamp`` argument is not used by its reward, so it is not
taken here.

Observation ``[2]`` float32, POPGym's ``MultiDiscrete([K, K])`` in order:
``[dealt value, queried value]``, each in ``[0, K)`` with K = 2, 4 or 13;
with ``one_hot=True`` ``[2K]``, the two values one-hot.
Action ``Discrete(N / K + 1)``: a count.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import spaces

from mnemax.envs.popgym.cards import (
    CardGame,
    CardGameParams,
    attribute_values,
    deal,
    full_deck,
)

DIFFICULTIES: dict[str, dict[str, Any]] = {
    "Easy": {"num_decks": 1, "deck_type": "colors"},
    "Medium": {"num_decks": 2, "deck_type": "suits"},
    "Hard": {"num_decks": 4, "deck_type": "ranks"},
}


@struct.dataclass
class EnvState:
    query: jax.Array  # int32 [], the value asked about at the next step
    values_left: jax.Array  # int32 [K], value-deck cards of each value not yet dealt
    queries_left: jax.Array  # int32 [K], query-deck cards of each value not yet dealt
    time: jax.Array  # int32 [], steps taken


EnvParams = CardGameParams


class CountRecall(CardGame):
    """Count cards of a queried value; ``num_decks`` decks, cards told apart by ``deck_type``."""

    def __init__(self, num_decks: int = 1, deck_type: str = "colors", one_hot: bool = False):
        super().__init__(num_decks, one_hot)
        self.deck_type = deck_type
        self.num_values = attribute_values(deck_type)
        self.max_count = self.num_cards // self.num_values

    def seen(self, state: EnvState) -> jax.Array:
        """Counts ``[K]`` of each value the value deck has shown so far."""
        return self.max_count - state.values_left

    def _deal_pair(self, key, values_left, queries_left):
        key_value, key_query = jax.random.split(key)
        value, values_left = deal(key_value, values_left)
        query, queries_left = deal(key_query, queries_left)
        return value, query, values_left, queries_left

    def reset_env(self, key: jax.Array, params: EnvParams) -> tuple[jax.Array, EnvState]:
        fresh = full_deck(self.num_decks, self.deck_type)
        value, query, values_left, queries_left = self._deal_pair(key, fresh, fresh)
        state = EnvState(query=query, values_left=values_left, queries_left=queries_left, time=jnp.int32(0))
        return self.observe(value, query), state

    def step_env(self, key, state: EnvState, action, params: EnvParams):
        answer = self.seen(state)[state.query]
        scale = 1.0 / (self.num_cards - 1)
        reward = jnp.where(action == answer, scale, -scale).astype(jnp.float32)
        value, query, values_left, queries_left = self._deal_pair(key, state.values_left, state.queries_left)
        terminated = values_left.sum() == 0
        state = EnvState(query=query, values_left=values_left, queries_left=queries_left, time=state.time + 1)
        return self.observe(value, query), state, reward, terminated, {}

    def action_space(self, params: EnvParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(self.max_count + 1)

    def value_counts(self) -> tuple[int, ...]:
        return (self.num_values, self.num_values)
