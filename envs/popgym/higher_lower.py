"""HigherLower (POPGym): guess whether the next card's rank is higher or lower.

Each step the agent sees the rank of the card on the table and guesses
whether the next card dealt will be higher (action 0) or lower (action 1).
The next card then becomes the card on the table. A right guess gives
``1 / N`` (``N = 52 * num_decks``), a wrong one ``-1 / N``, equal ranks 0.
There are ``N - 1`` guesses; the episode terminates when the deck runs out.
Because ties score 0 and the scale is ``1 / N``, the best return of a deck is
(number of unequal neighbours) / N, a little below 1. Counting cards helps.

Observation ``[1]`` float32: the rank (0 = ace, ..., 12 = king) on the table
(POPGym's ``Discrete(13)`` value); with ``one_hot=True`` ``[13]``. Action ``Discrete(2)``: 0 higher, 1 lower.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import spaces

from mnemax.envs.popgym.cards import CardGame, CardGameParams, deal, full_deck

DIFFICULTIES: dict[str, dict[str, Any]] = {
    "Easy": {"num_decks": 1},
    "Medium": {"num_decks": 2},
    "Hard": {"num_decks": 3},
}


@struct.dataclass
class EnvState:
    rank: jax.Array  # int32 [], the card on the table
    next_rank: jax.Array  # int32 [], the card that will be dealt next (drawn one step ahead)
    remaining: jax.Array  # int32 [13], cards of each rank still in the deck, next card excluded
    time: jax.Array  # int32 [], steps taken


EnvParams = CardGameParams


class HigherLower(CardGame):
    """Higher or lower with ``num_decks`` decks shuffled together."""

    def reset_env(self, key: jax.Array, params: EnvParams) -> tuple[jax.Array, EnvState]:
        key_rank, key_next = jax.random.split(key)
        rank, remaining = deal(key_rank, full_deck(self.num_decks, "ranks"))
        next_rank, remaining = deal(key_next, remaining)
        state = EnvState(rank=rank, next_rank=next_rank, remaining=remaining, time=jnp.int32(0))
        return self.observe(rank), state

    def step_env(self, key, state: EnvState, action, params: EnvParams):
        guessed_higher = action == 0
        scale = 1.0 / self.num_cards
        reward = jnp.where((state.next_rank > state.rank) == guessed_higher, scale, -scale)
        reward = jnp.where(state.next_rank == state.rank, 0.0, reward).astype(jnp.float32)
        terminated = state.time == self.num_cards - 2
        following, remaining = deal(key, state.remaining)
        state = EnvState(rank=state.next_rank, next_rank=following, remaining=remaining, time=state.time + 1)
        return self.observe(state.rank), state, reward, terminated, {}

    def action_space(self, params: EnvParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(2)

    def value_counts(self) -> tuple[int, ...]:
        return (13,)
