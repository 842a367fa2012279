"""RepeatFirst (POPGym): name the suit of the episode's first card at every step.

The agent sees one card's suit per step; at every step its action must be the
suit of the first card it saw. Episodes deal the whole deck: ``52 * num_decks
- 1`` steps, each rewarded ``+-1 / (52 * num_decks - 1)``, so returns lie in
[-1, 1]. The episode terminates when the deck runs out.

Observation ``[1]`` float32: the suit (0-3) of the card just dealt (POPGym's
``Discrete(4)`` value); with ``one_hot=True`` ``[4]``, the suit one-hot.
Action ``Discrete(4)``: a suit.
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
    "Medium": {"num_decks": 8},
    "Hard": {"num_decks": 16},
}


@struct.dataclass
class EnvState:
    first_suit: jax.Array  # int32 [], the suit to repeat
    remaining: jax.Array  # int32 [4], cards of each suit still in the deck
    time: jax.Array  # int32 [], steps taken


EnvParams = CardGameParams


class RepeatFirst(CardGame):
    """Repeat the suit of the first card; ``num_decks`` decks set the episode length."""

    def reset_env(self, key: jax.Array, params: EnvParams) -> tuple[jax.Array, EnvState]:
        suit, remaining = deal(key, full_deck(self.num_decks, "suits"))
        state = EnvState(first_suit=suit, remaining=remaining, time=jnp.int32(0))
        return self.observe(suit), state

    def step_env(self, key, state: EnvState, action, params: EnvParams):
        scale = 1.0 / (self.num_cards - 1)
        reward = jnp.where(action == state.first_suit, scale, -scale).astype(jnp.float32)
        suit, remaining = deal(key, state.remaining)
        terminated = remaining.sum() == 0
        state = state.replace(remaining=remaining, time=state.time + 1)
        return self.observe(suit), state, reward, terminated, {}

    def action_space(self, params: EnvParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(4)

    def value_counts(self) -> tuple[int, ...]:
        return (4,)
