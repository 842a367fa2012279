"""Decks of playing cards shared by the POPGym card games, dealt without a shuffle.

POPGym's deck holds ``52 * num_decks`` cards. A game looks at one attribute of
each card: its colour (2 values), its suit (4) or its rank (13), and every
value of an attribute is held by the same number of cards. Values are the
integers POPGym uses (suit index, rank index with ace = 0, colour index).

Why no shuffle: gymnax's auto-reset runs ``reset_env`` at every ``step`` and
keeps its result only where an episode ended. A reset that shuffles the deck
(a sort of the whole deck) then costs every step 30-40 times a step's own
work. Instead a deck is kept as the count of each value still in it,
``remaining[K]``, and each deal draws a value with probability proportional to
its count. Dealing a shuffled deck from the top gives exactly this law (the
cards are exchangeable), so the games play as POPGym's do, and a reset costs
one random integer per card dealt.

Concentration lays every card out at once; for it :func:`shuffled_layout`
shuffles a whole deck and :func:`fisher_yates_swap` spreads the next shuffle
over the steps of the current episode.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from mnemax.envs.popgym.arguments import check_flag, positive_int

CARDS_PER_DECK = 52
ATTRIBUTE_VALUES: dict[str, int] = {"colors": 2, "suits": 4, "ranks": 13}


def deck_size(num_decks: int) -> int:
    """Number of cards in ``num_decks`` decks; rejects anything but a positive integer."""
    return CARDS_PER_DECK * positive_int("num_decks", num_decks)


def attribute_values(attribute: str, allowed: tuple[str, ...] = tuple(ATTRIBUTE_VALUES)) -> int:
    """Number of distinct values of a card attribute ("colors", "suits" or "ranks")."""
    if attribute not in allowed:
        raise ValueError(f"deck_type must be one of {', '.join(map(repr, allowed))}, got {attribute!r}.")
    return ATTRIBUTE_VALUES[attribute]


def full_deck(num_decks: int, attribute: str) -> jax.Array:
    """Counts ``[K]`` (int32) of each value of ``attribute`` in a fresh deck of ``num_decks`` decks."""
    values = attribute_values(attribute)
    return jnp.full((values,), deck_size(num_decks) // values, dtype=jnp.int32)


def deal(key: jax.Array, remaining: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Deal one card from a deck of counts ``remaining[K]``: its value (int32 []) and the deck left.

    The value is drawn with probability ``remaining / remaining.sum()`` (from
    32 random bits taken modulo the deck size: a bias below 1e-7, for one
    hash instead of ``randint``'s three). An empty deck deals value 0 and
    stays empty, so a game may draw one card past its end without corrupting
    its state.
    """
    total = remaining.sum()
    bits = jax.random.bits(key, (), jnp.uint32)
    position = (bits % jnp.maximum(total, 1).astype(jnp.uint32)).astype(jnp.int32)
    value = jnp.sum(jnp.cumsum(remaining) <= position).astype(jnp.int32)
    value = jnp.where(total > 0, value, 0)
    taken = (jnp.arange(remaining.shape[0]) == value) & (total > 0)
    return value, remaining - taken.astype(remaining.dtype)


def shuffled_layout(key: jax.Array, num_decks: int, attribute: str) -> jax.Array:
    """The values ``[52 * num_decks]`` (int32) of ``attribute`` of a shuffled deck, in deck order."""
    size, values = deck_size(num_decks), attribute_values(attribute)
    return jax.random.permutation(key, jnp.arange(size, dtype=jnp.int32) % values)


def fisher_yates_swap(key: jax.Array, deck: jax.Array, position: jax.Array) -> jax.Array:
    """One step of a Fisher-Yates shuffle of ``deck[N]``: swap ``deck[position]`` with a uniform later card.

    Steps at ``position = 0, 1, ..., N - 2`` shuffle any arrangement of the
    deck into a uniformly random one, independent of where it started.
    Positions at or past ``N - 1`` leave the deck unchanged.
    """
    size = deck.shape[0]
    position = jnp.minimum(position, size - 1)
    other = jax.random.randint(key, (), position, size)
    a, b = deck[position], deck[other]
    return deck.at[position].set(b).at[other].set(a)


def card_observation(values: jax.Array, counts: tuple[int, ...], one_hot: bool) -> jax.Array:
    """Card values ``[n]`` (integers, entry i in ``[0, counts[i])``) as a float32 observation.

    Without ``one_hot`` the values themselves, ``[n]``: POPGym's ``Discrete`` /
    ``MultiDiscrete`` value held as a float. With it, each entry one-hot over its
    ``counts[i]`` values and the blocks concatenated, ``[sum(counts)]``: how
    POPGym's RLlib baselines and popjaxrl present them to a network.
    """
    values = jnp.asarray(values, jnp.int32).reshape(len(counts))
    if not one_hot:
        return values.astype(jnp.float32)
    if len(set(counts)) == 1:
        return jax.nn.one_hot(values, counts[0], dtype=jnp.float32).reshape(-1)
    return jnp.concatenate([jax.nn.one_hot(v, n, dtype=jnp.float32) for v, n in zip(values, counts)])


def card_observation_space(counts: tuple[int, ...], one_hot: bool) -> spaces.Box:
    """The Box holding :func:`card_observation`'s observations for these ``counts``."""
    if one_hot:
        return spaces.Box(0.0, 1.0, (sum(counts),), jnp.float32)
    return spaces.Box(jnp.zeros(len(counts)), jnp.asarray(counts, jnp.float32) - 1.0, (len(counts),), jnp.float32)


class CardObservations:
    """Observations of card values, as the values or one-hot (``one_hot``), for the card games.

    A game sets ``self.one_hot`` in its constructor, says in :meth:`value_counts`
    how many values each entry of its observation takes, and builds
    observations with :meth:`observe`; :meth:`observation_space` follows.
    """

    one_hot: bool = False

    def value_counts(self) -> tuple[int, ...]:
        """Number of values of each observation entry (the sizes of POPGym's observation space)."""
        raise NotImplementedError

    def observe(self, *values: jax.Array) -> jax.Array:
        """The observation showing ``values`` (integer scalars, or one integer array of all entries)."""
        return card_observation(jnp.stack(values), self.value_counts(), self.one_hot)

    def observation_space(self, params: Any = None) -> spaces.Box:
        return card_observation_space(self.value_counts(), self.one_hot)


@struct.dataclass
class CardGameParams:
    max_steps_in_episode: int = 51  # time limit; a game's default_params set it to the game's length


class CardGame(CardObservations, environment.Environment):
    """A POPGym game over ``num_decks`` decks that ends when the deck runs out, after ``episode_length`` steps.

    That end is a termination. ``default_params.max_steps_in_episode`` is the
    game's length, so by default no episode is truncated, as in POPGym. A
    smaller ``max_steps_in_episode`` acts as a time limit and truncates
    episodes there. A game whose length is not ``num_cards - 1`` (one step per
    card dealt after the first) overrides :meth:`game_length`. ``one_hot`` picks
    how card values are observed (:func:`card_observation`).
    """

    def __init__(self, num_decks: int = 1, one_hot: bool = False):
        self.one_hot = check_flag("one_hot", one_hot)
        self.num_decks = num_decks
        self.num_cards = deck_size(num_decks)
        self.episode_length = self.game_length(self.num_cards)

    @staticmethod
    def game_length(num_cards: int) -> int:
        """Steps until a deck of ``num_cards`` runs out."""
        return num_cards - 1

    @property
    def default_params(self) -> CardGameParams:
        return CardGameParams(max_steps_in_episode=self.episode_length)

    def is_truncated(self, state, params) -> jax.Array:
        return (state.time >= params.max_steps_in_episode) & (state.time < self.episode_length)
