"""Concentration (POPGym): find the matching pairs among face-down cards.

``N = 52 * num_decks`` cards lie face down. Each step flips one card (the
action is its position). After every second flip the two cards are compared:
if their values match (colour or rank, ``deck_type``) they stay face up and
give ``1 / (N / 2)``; otherwise both turn face down again and the pair costs
``2 / L``. Flipping a card that is already face up costs ``1 / L`` per card
in play and abandons the pair being turned. ``L = ceil(2N - N / (2N - 1))``
is the episode's step limit: the episode terminates when every card is face
up (return 1 at best, when no pair fails) and is truncated after ``L`` steps.
Returns lie in [-1, 1].

Observation ``[N]`` float32, POPGym's ``MultiDiscrete([F + 1] * N)``: the
value of each face-up card and of the cards flipped this turn (shown for the
step that flips them), ``F`` (the number of values: 2 or 13) for a face-down
card; with ``one_hot=True`` ``[N (F + 1)]``, each position one-hot. Action ``Discrete(N)``: the position to flip. The agent needs its
previous action to make sense of an observation (``obs_requires_prev_action``).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import spaces

from mnemax.envs.popgym.arguments import check_flag
from mnemax.envs.popgym.cards import (
    CardObservations,
    attribute_values,
    deck_size,
    fisher_yates_swap,
    shuffled_layout,
)
from mnemax.envs.popgym.prepared_reset import PreparedResetEnvironment

DIFFICULTIES: dict[str, dict[str, Any]] = {
    "Easy": {"num_decks": 1, "deck_type": "colors"},
    "Medium": {"num_decks": 2, "deck_type": "colors"},
    "Hard": {"num_decks": 1, "deck_type": "ranks"},
}

NO_CARD = -1  # `pending` when no card of an unfinished pair is face up


@struct.dataclass
class EnvState:
    layout: jax.Array  # int32 [N], value of the card at each position
    face_up: jax.Array  # bool [N], cards matched so far
    pending: jax.Array  # int32 [], position of the first card of the pair being turned, or NO_CARD
    time: jax.Array  # int32 [], steps taken
    next_layout: jax.Array  # int32 [N], the next episode's layout, shuffled one swap per step


@struct.dataclass
class EnvParams:
    max_steps_in_episode: int = 104  # L, the step limit


class Concentration(CardObservations, PreparedResetEnvironment):
    """Concentration on ``num_decks`` decks, matching ``deck_type`` ("colors" or "ranks").

    The next episode's layout is shuffled during the current one, one
    Fisher-Yates swap per step, so auto-reset draws nothing. Its ``N - 1``
    swaps are done in time because every episode lasts at least ``N`` steps
    (``N`` flips turn every card up); a ``max_steps_in_episode`` below
    ``N - 1`` would leave it partly shuffled.
    """

    obs_requires_prev_action = True

    def __init__(self, num_decks: int = 1, deck_type: str = "ranks", one_hot: bool = False):
        self.one_hot = check_flag("one_hot", one_hot)
        self.num_decks = num_decks
        self.num_cards = deck_size(num_decks)
        self.deck_type = deck_type
        # Suits are not offered, as in POPGym: a deck holds an odd number (13) of each suit.
        self.num_values = attribute_values(deck_type, allowed=("colors", "ranks"))
        n = self.num_cards
        self.step_limit = math.ceil(2 * n - n / (2 * n - 1))

    @property
    def default_params(self) -> EnvParams:
        return EnvParams(max_steps_in_episode=self.step_limit)

    def reset_env(self, key: jax.Array, params: EnvParams) -> tuple[jax.Array, EnvState]:
        layout = shuffled_layout(key, self.num_decks, self.deck_type)
        return self._start(layout)

    def restart(self, state: EnvState, params: EnvParams) -> tuple[jax.Array, EnvState]:
        return self._start(state.next_layout)

    def _start(self, layout: jax.Array) -> tuple[jax.Array, EnvState]:
        """A new episode on ``layout``; the next layout is shuffled from it (the result does not depend on it)."""
        state = EnvState(
            layout=layout,
            face_up=jnp.zeros((self.num_cards,), bool),
            pending=jnp.int32(NO_CARD),
            time=jnp.int32(0),
            next_layout=layout,
        )
        return self.get_obs(state), state

    def step_env(self, key, state: EnvState, action, params: EnvParams):
        action = jnp.asarray(action, jnp.int32)
        positions = jnp.arange(self.num_cards)
        has_pending = state.pending != NO_CARD
        in_play = (positions == action) | (positions == state.pending)
        obs = self.get_obs(state, shown=in_play)

        success, failure = 1.0 / (self.num_cards // 2), -1.0 / self.step_limit
        already_up = state.face_up[action]
        completes_pair = has_pending & ~already_up
        matched = completes_pair & (state.layout[state.pending] == state.layout[action]) & (state.pending != action)
        cards_in_play = 1 + has_pending.astype(jnp.float32)
        reward = jnp.where(already_up, failure * cards_in_play, 0.0)
        reward = jnp.where(completes_pair, jnp.where(matched, success, 2 * failure), reward)

        face_up = state.face_up | (matched & in_play)
        pending = jnp.where(already_up | completes_pair, NO_CARD, action)
        terminated = matched & face_up.all()
        next_layout = fisher_yates_swap(key, state.next_layout, state.time)
        state = EnvState(state.layout, face_up, pending, state.time + 1, next_layout)
        return obs, state, reward.astype(jnp.float32), terminated, {}

    def get_obs(self, state: EnvState, shown: jax.Array | None = None, params=None, key=None) -> jax.Array:
        """Values of face-up and ``shown[N]`` cards, ``num_values`` elsewhere: ``[N]`` float32."""
        visible = state.face_up if shown is None else state.face_up | shown
        return self.observe(jnp.where(visible, state.layout, self.num_values))

    def action_space(self, params: EnvParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(self.num_cards)

    def value_counts(self) -> tuple[int, ...]:
        return (self.num_values + 1,) * self.num_cards
