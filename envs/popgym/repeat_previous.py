"""RepeatPrevious (POPGym): name the suit of the card dealt ``k`` steps ago.

The agent sees one card's suit per step and must answer with the suit of the
card seen ``k`` steps earlier (the card seen at reset counts as the first).
The first ``k - 1`` steps have no answer and give no reward; the other
``52 * num_decks - k`` steps give ``+-1 / (52 * num_decks - k)``, so returns
lie in [-1, 1]. The episode terminates when the deck runs out, after
``52 * num_decks - 1`` steps.

Observation ``[1]`` float32: the suit (0-3) of the card just dealt (POPGym's
``Discrete(4)`` value); with ``one_hot=True`` ``[4]``, the suit one-hot (see
``cards.card_observation``). Action ``Discrete(4)``: a suit.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import spaces

from mnemax.envs.popgym.arguments import positive_int
from mnemax.envs.popgym.cards import CardGame, CardGameParams, deal, full_deck

DIFFICULTIES: dict[str, dict[str, Any]] = {
    "Easy": {"num_decks": 1, "k": 4},
    "Medium": {"num_decks": 2, "k": 32},
    "Hard": {"num_decks": 3, "k": 64},
}


@struct.dataclass
class EnvState:
    recent: jax.Array  # int32 [k], suits of the last k cards; card i sits in slot i % k
    remaining: jax.Array  # int32 [4], cards of each suit still in the deck
    time: jax.Array  # int32 [], steps taken (card `time` is the latest dealt)


EnvParams = CardGameParams


class RepeatPrevious(CardGame):
    """Repeat the suit seen ``k`` steps ago; ``num_decks`` decks set the episode length."""

    def __init__(self, num_decks: int = 1, k: int = 4, one_hot: bool = False):
        super().__init__(num_decks, one_hot)
        if positive_int("k", k) >= self.num_cards:
            raise ValueError(f"k must be an integer in [1, {self.num_cards - 1}] for {num_decks} deck(s), got {k!r}.")
        self.k = k

    def reset_env(self, key: jax.Array, params: EnvParams) -> tuple[jax.Array, EnvState]:
        suit, remaining = deal(key, full_deck(self.num_decks, "suits"))
        recent = jnp.zeros((self.k,), jnp.int32).at[0].set(suit)
        return self.observe(suit), EnvState(recent=recent, remaining=remaining, time=jnp.int32(0))

    def step_env(self, key, state: EnvState, action, params: EnvParams):
        # The answer is card `time + 1 - k`; the new card `time + 1` takes its slot.
        slot = (state.time + 1) % self.k
        scale = 1.0 / (self.num_cards - self.k)
        answered = state.time + 1 >= self.k
        reward = jnp.where(action == state.recent[slot], scale, -scale)
        reward = jnp.where(answered, reward, 0.0).astype(jnp.float32)
        suit, remaining = deal(key, state.remaining)
        terminated = remaining.sum() == 0
        recent = jnp.where(jnp.arange(self.k) == slot, suit, state.recent)
        state = EnvState(recent=recent, remaining=remaining, time=state.time + 1)
        return self.observe(suit), state, reward, terminated, {}

    def action_space(self, params: EnvParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(4)

    def value_counts(self) -> tuple[int, ...]:
        return (4,)
