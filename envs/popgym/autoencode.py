"""Autoencode (POPGym): watch a deck's suits go by, then recite them in reverse order.

Watch phase: the reset and each of the next ``N - 1`` steps show one card
(``N = 52 * num_decks``); actions are ignored and give no reward. The step
that shows the last card already flags the play phase. Play phase: ``N``
steps, each asking for one suit, last card seen first, rewarded
``+-1 / N``; the episode terminates after the first card is recited, so it
lasts ``2N - 1`` steps and returns lie in [-1, 1].

Observation ``[2]`` float32, POPGym's ``Tuple(Discrete(2), Discrete(4))`` in
order: ``[watching, suit]`` with ``watching`` 1 while cards are shown and 0
once the agent must recite, and ``suit`` the card shown (0 during the play
phase, as POPGym shows); with ``one_hot=True`` ``[6]``, both one-hot. Action ``Discrete(4)``: a suit.
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
    shown: jax.Array  # int32 [N], suits in the order shown (entries past the cards dealt are 0)
    remaining: jax.Array  # int32 [4], cards of each suit still in the deck
    time: jax.Array  # int32 [], steps taken


EnvParams = CardGameParams


class Autoencode(CardGame):
    """Recite a deck's suits backwards; ``num_decks`` decks set the episode length."""

    @staticmethod
    def game_length(num_cards: int) -> int:
        """Watch every card, then recite all of them: ``2 N - 1`` steps."""
        return 2 * num_cards - 1

    def reset_env(self, key: jax.Array, params: EnvParams) -> tuple[jax.Array, EnvState]:
        suit, remaining = deal(key, full_deck(self.num_decks, "suits"))
        shown = jnp.zeros((self.num_cards,), jnp.int32).at[0].set(suit)
        state = EnvState(shown=shown, remaining=remaining, time=jnp.int32(0))
        return self.observe(1, suit), state

    def step_env(self, key, state: EnvState, action, params: EnvParams):
        n = self.num_cards
        watching = state.time < n - 1
        # Watch phase: show card `time + 1`.
        suit, remaining = deal(key, state.remaining)
        shown = jnp.where(watching & (jnp.arange(n) == state.time + 1), suit, state.shown)
        still_watching = state.time + 1 < n - 1
        # Play phase: recite card `2n - 2 - time` (the last card first).
        asked = jnp.clip(2 * n - 2 - state.time, 0, n - 1)
        reward = jnp.where(action == state.shown[asked], 1.0 / n, -1.0 / n)
        reward = jnp.where(watching, 0.0, reward).astype(jnp.float32)
        terminated = state.time == 2 * n - 2
        obs = self.observe(jnp.where(watching, still_watching, 0), jnp.where(watching, suit, 0))
        state = EnvState(shown=shown, remaining=remaining, time=state.time + 1)
        return obs, state, reward, terminated, {}

    def action_space(self, params: EnvParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(4)

    def value_counts(self) -> tuple[int, ...]:
        return (2, 4)
