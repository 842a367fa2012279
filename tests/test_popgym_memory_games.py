"""POPGym card games and bandits ported to JAX: API, oracle returns, and agreement with the original package.

Families: Autoencode, Concentration, CountRecall, HigherLower, RepeatFirst,
RepeatPrevious, MultiarmedBandit. Agreement with ``popgym`` is checked two
ways: random-policy statistics (``popgym_compare``), and step-by-step replay
of an episode in the original env after dealing it the port's deck.
"""

from __future__ import annotations

import copy
import functools
import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from popgym_compare import assert_same_random_stats

from mnemax.envs.popgym import FAMILIES, LEVELS, POPGYM_ENVS
from mnemax.envs.popgym import cards

MEMORY_GAMES = (
    "Autoencode",
    "Concentration",
    "CountRecall",
    "HigherLower",
    "MultiarmedBandit",
    "RepeatFirst",
    "RepeatPrevious",
)
ALL_NAMES = [f"{family}{level}" for family in MEMORY_GAMES for level in LEVELS]
# Families whose episodes always last exactly params.max_steps_in_episode steps.
FIXED_LENGTH = ("Autoencode", "CountRecall", "HigherLower", "MultiarmedBandit", "RepeatFirst", "RepeatPrevious")


@functools.lru_cache(maxsize=None)
def make(name: str):
    return POPGYM_ENVS[name]()


def family_of(name: str) -> str:
    return next(family for family in MEMORY_GAMES if name.startswith(family))


def make_scan(env, params, policy, num_envs: int, num_steps: int):
    """Jitted ``run(key)`` of ``policy(key, state) -> action`` on ``num_envs`` envs for ``num_steps`` auto-resetting steps.

    ``run`` returns the reset observations ``[B, D]`` and per-step arrays ``[T, B, ...]``:
    observations, rewards, terminated, truncated, ``info["final_observation"]``
    and the time of the state after each step.
    """

    def run(key):
        reset_keys = jax.random.split(key, num_envs)
        obs, state = jax.vmap(env.reset, in_axes=(0, None))(reset_keys, params)

        def body(state, key):
            policy_key, step_key = jax.random.split(key)
            actions = jax.vmap(policy)(jax.random.split(policy_key, num_envs), state)
            step_keys = jax.random.split(step_key, num_envs)
            out = jax.vmap(env.step, in_axes=(0, 0, 0, None))(step_keys, state, actions, params)
            obs, state, reward, terminated, truncated, info = out
            return state, (obs, reward, terminated, truncated, info["final_observation"], state.time)

        _, trace = jax.lax.scan(body, state, jax.random.split(key, num_steps))
        return obs, trace

    return jax.jit(run)


def scan_policy(env, params, policy, num_envs: int, num_steps: int, seed: int = 0):
    """:func:`make_scan` run once from ``PRNGKey(seed)``."""
    return make_scan(env, params, policy, num_envs, num_steps)(jax.random.PRNGKey(seed))


def random_policy(env, params):
    return lambda key, state: env.action_space(params).sample(key)


def first_episode(rewards, terminated, truncated):
    """Return ``[B]`` and length ``[B]`` of each env's first episode from ``[T, B]`` traces."""
    done = np.asarray(terminated | truncated)
    assert done.any(axis=0).all(), "an episode did not finish within the scan"
    length = done.argmax(axis=0) + 1
    live = np.arange(done.shape[0])[:, None] < length[None]
    return (np.asarray(rewards) * live).sum(axis=0), length


# ---------------------------------------------------------------- API, shapes, spaces


@functools.lru_cache(maxsize=None)
def random_rollout(name: str):
    env, params = make(name)
    steps = int(params.max_steps_in_episode) + 5  # one whole episode and the start of the next
    return scan_policy(env, params, random_policy(env, params), num_envs=8, num_steps=steps)


@pytest.mark.parametrize("name", ALL_NAMES)
def test_shapes_dtypes_and_spaces(name):
    env, params = make(name)
    space = env.observation_space(params)
    reset_obs, (obs, reward, terminated, truncated, final_obs, time) = random_rollout(name)
    assert reset_obs.shape == (8, *space.shape) and reset_obs.dtype == jnp.float32
    assert obs.shape[1:] == (8, *space.shape) and obs.dtype == jnp.float32
    assert final_obs.shape == obs.shape and final_obs.dtype == jnp.float32
    # info["final_observation"] is the observation itself except where an episode just ended.
    running = ~np.asarray(terminated | truncated)
    np.testing.assert_array_equal(np.asarray(final_obs)[running], np.asarray(obs)[running])
    assert reward.dtype == jnp.float32 and reward.shape == obs.shape[:2]
    assert terminated.dtype == jnp.bool_ and truncated.dtype == jnp.bool_
    assert bool(jax.vmap(space.contains)(reset_obs).all())
    assert bool(jax.vmap(jax.vmap(space.contains))(obs).all())
    # Observations hold integer values, as POPGym's discrete spaces do.
    assert np.array_equal(np.asarray(obs), np.round(np.asarray(obs)))
    allowed = np.asarray(reward_values(env, params), np.float32)
    gaps = np.abs(np.asarray(reward)[..., None] - allowed).min(axis=-1)
    assert gaps.max() < 1e-7, f"{name}: rewards outside {allowed}"


def reward_values(env, params) -> list[float]:
    """Every reward a step of the original game can give."""
    family = type(env).__name__
    if family == "MultiarmedBandit":
        return [1 / env.episode_length, -1 / env.episode_length]
    if family == "Concentration":
        return [0.0, 2 / env.num_cards, -1 / env.step_limit, -2 / env.step_limit]
    n = env.num_cards
    unit = {
        "RepeatFirst": 1 / (n - 1),
        "CountRecall": 1 / (n - 1),
        "RepeatPrevious": 1 / (n - getattr(env, "k", 0)),
        "Autoencode": 1 / n,
        "HigherLower": 1 / n,
    }[family]
    return [unit, -unit] if family in ("RepeatFirst", "CountRecall") else [0.0, unit, -unit]


@pytest.mark.parametrize("name", ALL_NAMES)
def test_episode_length_termination_and_auto_reset(name):
    env, params = make(name)
    _, (obs, reward, terminated, truncated, final_obs, time) = random_rollout(name)
    returns, lengths = first_episode(reward, terminated, truncated)
    assert np.all(np.abs(returns) <= 1.0 + 1e-5)
    limit = int(params.max_steps_in_episode)
    family = family_of(name)
    if family in FIXED_LENGTH:
        assert np.all(lengths == limit), f"{name}: lengths {lengths}, expected {limit}"
    else:
        assert np.all(lengths <= limit)
    end = lengths - 1
    envs = np.arange(8)
    # POPGym's bandit is cut by its time limit; the card games end by running out of cards.
    assert np.all(np.asarray(truncated)[end, envs] == (family in ("MultiarmedBandit", "Concentration")))
    assert np.all(np.asarray(terminated)[end, envs] == (family not in ("MultiarmedBandit", "Concentration")))
    # Auto-reset: the step that ends an episode returns the next episode's first state.
    assert np.all(np.asarray(time)[end, envs] == 0)
    assert np.all(np.asarray(time)[end - 1, envs] == end)


@pytest.mark.parametrize("family", MEMORY_GAMES)
def test_spaces_match_original(family):
    """Action counts, observation value ranges and episode lengths equal the original classes'."""
    original_module = importlib.import_module("popgym.envs")
    for level in LEVELS:
        env, params = make(f"{family}{level}")
        original = getattr(original_module, f"{family}{level}")()
        assert env.action_space(params).n == original.action_space.n
        space = original.observation_space
        if hasattr(space, "spaces"):  # Tuple of Discrete
            highs = [s.n - 1 for s in space.spaces]
        elif hasattr(space, "nvec"):
            highs = list(np.asarray(space.nvec) - 1)
        else:
            highs = [space.n - 1]
        ours = env.observation_space(params)
        np.testing.assert_array_equal(np.broadcast_to(ours.high, ours.shape), highs)
        np.testing.assert_array_equal(np.broadcast_to(ours.low, ours.shape), 0)
        expected_length = getattr(original, "max_episode_length", getattr(original, "episode_length", None))
        if family == "HigherLower":  # POPGym does not store it: one guess per card after the first
            expected_length = original.deck_size - 1
        assert int(params.max_steps_in_episode) == expected_length


def test_jit_does_not_recompile():
    env, params = make("RepeatPreviousEasy")
    step = jax.jit(env.step)
    obs, state = env.reset(jax.random.PRNGKey(0), params)
    step(jax.random.PRNGKey(1), state, 0, params)
    size = step._cache_size()
    step(jax.random.PRNGKey(2), state, 3, params)
    assert step._cache_size() == size


@pytest.mark.parametrize(
    "family, kwargs, message",
    [
        ("RepeatFirst", {"num_decks": 0}, "num_decks must be a positive integer"),
        ("RepeatPrevious", {"num_decks": 1, "k": 52}, "k must be an integer in"),
        ("Concentration", {"deck_type": "suits"}, "deck_type must be one of"),
        ("CountRecall", {"deck_type": "jokers"}, "deck_type must be one of"),
        ("MultiarmedBandit", {"num_bandits": 0}, "num_bandits must be a positive integer"),
        ("RepeatPrevious", {"one_hot": "yes"}, "one_hot must be true or false"),
    ],
)
def test_bad_arguments_raise_one_clear_error(family, kwargs, message):
    module = importlib.import_module(f"mnemax.envs.popgym.{FAMILIES[family]}")
    with pytest.raises(ValueError, match=message):
        getattr(module, family)(**kwargs)


# ---------------------------------------------------------------- one-hot card observations

CARD_GAMES = [name for name in MEMORY_GAMES if name != "MultiarmedBandit"]


def decode_one_hot(obs: np.ndarray, counts: tuple[int, ...]) -> np.ndarray:
    """Per-entry argmax of concatenated one-hot blocks ``[..., sum(counts)] -> [..., len(counts)]``."""
    edges = np.cumsum((0,) + counts)
    return np.stack([obs[..., a:b].argmax(-1) for a, b in zip(edges[:-1], edges[1:])], axis=-1)


@functools.lru_cache(maxsize=None)
def value_and_one_hot_scans(family: str):
    """Compiled random-policy scans of ``<family>Easy`` with values and with one-hot observations."""
    name = f"{family}Easy"
    plain_env, params = make(name)
    hot_env, hot_params = POPGYM_ENVS[name](one_hot=True)
    policy = random_policy(plain_env, params)
    scans = [make_scan(env, p, policy, num_envs=2, num_steps=20) for env, p in ((plain_env, params), (hot_env, hot_params))]
    return hot_env, hot_params, scans


@pytest.mark.parametrize("family", CARD_GAMES)
@given(seed=st.integers(0, 2**16))
def test_one_hot_observations_show_the_same_cards(family, seed):
    """Same keys, same actions: ``one_hot=True`` shows each value as one block with a single 1, and nothing else changes."""
    hot_env, hot_params, (plain_scan, hot_scan) = value_and_one_hot_scans(family)
    counts = hot_env.value_counts()
    assert hot_env.observation_space(hot_params).shape == (sum(counts),)
    key = jax.random.PRNGKey(seed)
    (plain_reset, plain), (hot_reset, hot) = plain_scan(key), hot_scan(key)
    for values, one_hot in ((plain_reset, hot_reset), (plain[0], hot[0]), (plain[4], hot[4])):
        values, one_hot = np.asarray(values), np.asarray(one_hot)
        assert one_hot.shape == values.shape[:-1] + (sum(counts),)
        assert set(np.unique(one_hot)) <= {0.0, 1.0}
        assert (one_hot.sum(-1) == len(counts)).all()
        np.testing.assert_array_equal(decode_one_hot(one_hot, counts), values)
        assert bool(hot_env.observation_space(hot_params).contains(jnp.asarray(one_hot[(0,) * (one_hot.ndim - 1)])))
    for plain_array, hot_array in zip(plain[1:4], hot[1:4]):  # rewards, terminated, truncated
        np.testing.assert_array_equal(np.asarray(plain_array), np.asarray(hot_array))


# ---------------------------------------------------------------- oracles that read the hidden state


def repeat_first_oracle(env):
    return lambda key, state: state.first_suit


def repeat_previous_oracle(env):
    return lambda key, state: state.recent[(state.time + 1) % env.k]


def autoencode_oracle(env):
    n = env.num_cards
    return lambda key, state: state.shown[jnp.clip(2 * n - 2 - state.time, 0, n - 1)]


def count_recall_oracle(env):
    return lambda key, state: env.seen(state)[state.query]


def concentration_oracle(env):
    """Knows the layout: flips the first face-down card, then its first face-down partner."""

    def act(key, state):
        down = ~state.face_up
        first = jnp.argmax(down)
        partner = down & (state.layout == state.layout[state.pending]) & (jnp.arange(env.num_cards) != state.pending)
        return jnp.where(state.pending < 0, first, jnp.argmax(partner))

    return act


@pytest.mark.parametrize(
    "name, oracle",
    [
        ("RepeatFirstEasy", repeat_first_oracle),
        pytest.param("RepeatFirstHard", repeat_first_oracle, marks=pytest.mark.slow),
        ("RepeatPreviousEasy", repeat_previous_oracle),
        ("RepeatPreviousHard", repeat_previous_oracle),
        ("AutoencodeEasy", autoencode_oracle),
        pytest.param("AutoencodeHard", autoencode_oracle, marks=pytest.mark.slow),
        ("CountRecallEasy", count_recall_oracle),
        pytest.param("CountRecallHard", count_recall_oracle, marks=pytest.mark.slow),
        ("ConcentrationEasy", concentration_oracle),
        ("ConcentrationHard", concentration_oracle),
    ],
)
def test_oracle_earns_the_maximum_return_of_one(name, oracle):
    env, params = make(name)
    limit = int(params.max_steps_in_episode)
    _, (obs, reward, terminated, truncated, _, _) = scan_policy(env, params, oracle(env), num_envs=4, num_steps=limit)
    returns, lengths = first_episode(reward, terminated, truncated)
    np.testing.assert_allclose(returns, 1.0, atol=1e-5)
    if name.startswith("Concentration"):  # every pair found at the first try: N flips
        assert np.all(lengths == env.num_cards)


@pytest.mark.parametrize("name", ["HigherLowerEasy", pytest.param("HigherLowerHard", marks=pytest.mark.slow)])
def test_higher_lower_oracle_wins_every_guess(name):
    """Knowing the next card wins every guess; ties score 0, so the best return is (unequal neighbours) / N."""
    env, params = make(name)

    def oracle(key, state):
        return jnp.where(state.next_rank > state.rank, 0, 1)

    limit = int(params.max_steps_in_episode)
    reset_obs, (obs, reward, terminated, truncated, final_obs, _) = scan_policy(env, params, oracle, 4, limit)
    ranks = np.concatenate([np.asarray(reset_obs)[None, :, 0], np.asarray(final_obs)[:, :, 0]])  # [N, B]
    ties = ranks[1:] == ranks[:-1]
    np.testing.assert_allclose(np.asarray(reward), np.where(ties, 0.0, 1.0 / env.num_cards), atol=1e-7)
    returns, _ = first_episode(reward, terminated, truncated)
    np.testing.assert_allclose(returns, (~ties).sum(axis=0) / env.num_cards, atol=1e-5)
    # Each rank appears 4 * num_decks times in the deck dealt.
    counts = np.stack([np.bincount(ranks[:, b].astype(int), minlength=13) for b in range(4)])
    assert np.all(counts == 4 * env.num_decks)


def test_bandit_best_arm_has_the_highest_expected_return():
    """Always pulling the best arm: realised returns average ``2 max_a p_a - 1``, the most any policy can expect.

    Any policy's expected return is the mean over pulls of ``2 p_{a_t} - 1``, at
    most ``2 max_a p_a - 1``; the test checks that the realised return of the
    expected-best arm is unbiased for that bound (within 4 standard errors over
    episodes), that the bound averages ``2 K / (K + 1) - 1`` over arms drawn
    uniformly, and that a random policy stays well below it.
    """
    env, params = make("MultiarmedBanditEasy")
    episodes = 512

    def best_arm(key, state):
        return jnp.argmax(state.payout_probs)

    def run(policy):
        reset_obs, (obs, reward, terminated, truncated, _, _) = scan_policy(
            env, params, policy, episodes, env.episode_length, seed=3
        )
        return first_episode(reward, terminated, truncated)[0]

    _, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(jax.random.PRNGKey(3), episodes), params)
    bound = 2 * np.asarray(state.payout_probs).max(axis=1) - 1  # [episodes], expected return of the best arm
    best = run(best_arm)
    gap = best - bound
    assert abs(gap.mean()) <= 4 * gap.std(ddof=1) / np.sqrt(episodes)
    k = env.num_bandits
    assert abs(bound.mean() - (2 * k / (k + 1) - 1)) <= 4 * bound.std(ddof=1) / np.sqrt(episodes)
    assert run(random_policy(env, params)).mean() < best.mean() - 0.5


# ---------------------------------------------------------------- random policy against the original package

DEFAULT_COMPARISONS = [f"{family}Easy" for family in MEMORY_GAMES] + ["ConcentrationHard", "RepeatPreviousHard"]
SLOW_COMPARISONS = [name for name in ALL_NAMES if name not in DEFAULT_COMPARISONS]


@pytest.mark.parametrize("name", DEFAULT_COMPARISONS)
def test_random_policy_matches_original(name):
    _, params = make(name)
    assert_same_random_stats(name, episodes=200, max_steps=int(params.max_steps_in_episode))


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW_COMPARISONS + DEFAULT_COMPARISONS)
def test_random_policy_matches_original_many_episodes(name):
    _, params = make(name)
    assert_same_random_stats(name, episodes=1000, max_steps=int(params.max_steps_in_episode))


# ---------------------------------------------------------------- decks and prepared resets


@jax.jit
def deal_many(key, remaining):
    """Deal ``[4096]`` single cards from the same ``remaining[13]`` deck."""
    return jax.vmap(cards.deal, in_axes=(0, None))(jax.random.split(key, 4096), remaining)


@given(st.lists(st.integers(0, 8), min_size=13, max_size=13), st.integers(0, 2**31 - 1))
def test_deal_draws_in_proportion_to_the_cards_left(counts, seed):
    remaining = jnp.asarray(counts, jnp.int32)
    values, left = deal_many(jax.random.PRNGKey(seed), remaining)
    values, left = np.asarray(values), np.asarray(left)
    total = sum(counts)
    if total == 0:
        assert np.all(values == 0) and np.all(left == 0)
        return
    # Only values still in the deck are dealt, and exactly that card leaves the deck.
    assert np.all(np.asarray(counts)[values] > 0)
    expected_left = np.asarray(counts)[None] - np.eye(13, dtype=int)[values]
    np.testing.assert_array_equal(left, expected_left)
    frequency = np.bincount(values, minlength=13) / len(values)
    p = np.asarray(counts) / total
    assert np.all(np.abs(frequency - p) <= 5 * np.sqrt(p * (1 - p) / len(values)) + 1e-9)


@given(st.integers(0, 2**31 - 1), st.integers(0, 60))
def test_fisher_yates_swap_keeps_the_deck(seed, position):
    deck = jnp.arange(52, dtype=jnp.int32) % 13
    shuffled = jax.jit(cards.fisher_yates_swap)(jax.random.PRNGKey(seed), deck, position)
    np.testing.assert_array_equal(np.sort(np.asarray(shuffled)), np.sort(np.asarray(deck)))
    changed = np.flatnonzero(np.asarray(shuffled) != np.asarray(deck))
    assert len(changed) in (0, 2) and (len(changed) == 0 or changed.min() == min(position, 51))


def test_prepared_concentration_layouts_are_fresh_and_independent():
    """The layout an auto-reset starts from holds the whole deck and is independent of the previous one."""
    env, params = make("ConcentrationEasy")
    envs = 256
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(jax.random.PRNGKey(0), envs), params)
    first = np.asarray(state.layout)
    policy = jax.vmap(random_policy(env, params))

    def body(state, key):
        action_key, step_key = jax.random.split(key)
        actions = policy(jax.random.split(action_key, envs), state)
        state = jax.vmap(env.step, in_axes=(0, 0, 0, None))(jax.random.split(step_key, envs), state, actions, params)[1]
        return state, None

    # Random play on ConcentrationEasy is (almost) always cut at L steps; run exactly L steps.
    state, _ = jax.jit(lambda s, k: jax.lax.scan(body, s, jax.random.split(k, env.step_limit)))(
        state, jax.random.PRNGKey(1)
    )
    restarted = np.asarray(state.time) == 0
    assert restarted.mean() > 0.9
    second = np.asarray(state.layout)[restarted]
    assert np.all(second.sum(axis=1) == env.num_cards // 2)  # 26 red, 26 black
    agreement = (second == first[restarted]).mean(axis=1)  # 0.5 expected for independent layouts
    assert abs(agreement.mean() - 0.5) <= 4 * agreement.std(ddof=1) / np.sqrt(len(agreement))
    position_mean = second.mean(axis=0)  # each position red with probability 1/2
    assert np.all(np.abs(position_mean - 0.5) <= 5 * 0.5 / np.sqrt(len(second)))


def test_prepared_bandit_arms_are_fresh_and_independent():
    env, params = make("MultiarmedBanditEasy")
    envs = 512
    _, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(jax.random.PRNGKey(0), envs), params)
    first = np.asarray(state.payout_probs)
    policy = jax.vmap(random_policy(env, params))

    def body(state, key):
        action_key, step_key = jax.random.split(key)
        actions = policy(jax.random.split(action_key, envs), state)
        state = jax.vmap(env.step, in_axes=(0, 0, 0, None))(jax.random.split(step_key, envs), state, actions, params)[1]
        return state, None

    state, _ = jax.jit(lambda s, k: jax.lax.scan(body, s, jax.random.split(k, env.episode_length)))(
        state, jax.random.PRNGKey(1)
    )
    assert np.all(np.asarray(state.time) == 0)
    second = np.asarray(state.payout_probs)
    assert not np.any(second == first)
    correlation = np.corrcoef(first.ravel(), second.ravel())[0, 1]
    assert abs(correlation) < 4 / np.sqrt(first.size)
    assert abs(second.mean() - 0.5) < 4 * np.sqrt(1 / 12 / second.size)


@pytest.mark.parametrize("name", ["RepeatFirstEasy", "AutoencodeEasy"])
def test_a_shorter_max_steps_in_episode_truncates(name):
    """By default a card game ends by termination; a smaller ``max_steps_in_episode`` is a time limit."""
    env, params = make(name)
    short = params.replace(max_steps_in_episode=10)
    _, (_, reward, terminated, truncated, _, time) = scan_policy(env, short, random_policy(env, short), 4, 12)
    assert np.all(np.asarray(truncated)[9]) and not np.asarray(terminated).any()
    assert not np.asarray(truncated)[:9].any()
    assert np.all(np.asarray(time)[9] == 0)


# ---------------------------------------------------------------- step-by-step replay in the original package


class ScriptedShuffle:
    """Stands in for an original env's ``np_random``: each ``shuffle`` writes the next given deck order."""

    def __init__(self, *orders):
        self.orders = list(orders)

    def shuffle(self, array):
        array[:] = self.orders.pop(0)


def deck_order(dealt, card_values):
    """Card ids of an original ``Deck`` (``idx`` order) that deal the values ``dealt`` in turn.

    The original deals from the end of ``idx``; ``card_values[i]`` is the
    attribute of card id ``i`` (``deck.suits_idx`` ...).
    """
    pools = {value: list(np.flatnonzero(card_values == value)) for value in np.unique(card_values)}
    return np.asarray([pools[int(value)].pop() for value in dealt])[::-1].copy()


def play_port(env, params, seed, steps):
    """One env for ``steps`` random actions: reset observation and state, actions, and per-step outputs."""
    rng = np.random.default_rng(seed)
    key = jax.random.PRNGKey(seed)
    key, reset_key = jax.random.split(key)
    obs, state = env.reset(reset_key, params)
    reset_obs, reset_state = np.asarray(obs), state
    n = env.action_space(params).n
    record = []
    for _ in range(steps):
        action = int(rng.integers(n))
        key, step_key = jax.random.split(key)
        obs, state, reward, terminated, truncated, info = env.step(step_key, state, action, params)
        record.append((action, np.asarray(info["final_observation"]), float(reward), bool(terminated), bool(truncated)))
        if terminated or truncated:
            break
    return reset_obs, reset_state, record


def original_for(name, reset_obs, reset_state, record):
    """The original ``popgym`` env, reset to play the deck (or arms) the port played."""
    original = getattr(importlib.import_module("popgym.envs"), name)()
    family = family_of(name)
    seen = np.stack([reset_obs] + [final for _, final, *_ in record])  # [T + 1, D]
    if family in ("RepeatFirst", "RepeatPrevious", "HigherLower", "Autoencode"):
        attribute = "ranks_idx" if family == "HigherLower" else "suits_idx"
        column = 1 if family == "Autoencode" else 0
        dealt = seen[: original.deck.num_cards, column]
        original._np_random = ScriptedShuffle(deck_order(dealt, getattr(original.deck, attribute)))
    elif family == "CountRecall":
        values = original.deck_idx_type
        original._np_random = ScriptedShuffle(deck_order(seen[:, 0], values), deck_order(seen[:, 1], values))
    elif family == "Concentration":
        layout = np.asarray(reset_state.layout)
        original._np_random = ScriptedShuffle(deck_order(layout[::-1], original.deck_idx_type))
    original.reset()
    if family == "MultiarmedBandit":
        original.bandits = np.asarray(reset_state.payout_probs)
    return original


def copy_with(env, **methods):
    """A shallow copy of ``env`` with some methods replaced (instance attributes shadow the class's)."""
    clone = copy.copy(env)
    for method_name, method in methods.items():
        setattr(clone, method_name, method)
    return clone


def as_port_observation(obs) -> np.ndarray:
    return np.atleast_1d(np.asarray(obs if not isinstance(obs, tuple) else list(obs), np.float32))


@pytest.mark.parametrize(
    "name",
    [f"{family}Easy" for family in MEMORY_GAMES if family != "MultiarmedBandit"]
    + ["ConcentrationHard", "CountRecallHard", "MultiarmedBanditEasy"],
)
def test_replay_matches_original_step_by_step(name):
    """The original package, dealt the port's deck and given its actions, returns the same
    observations, rewards, terminations and truncations at every step of an episode."""
    env, params = make(name)
    if name.startswith("MultiarmedBandit"):  # arms that always or never pay make payouts deterministic
        probs = (np.arange(env.num_bandits) % 2).astype(np.float32)

        def reset_with_sure_arms(key, params, reset=env.reset):
            obs, state = reset(key, params)
            return obs, state.replace(payout_probs=jnp.asarray(probs))

        env = copy_with(env, reset=reset_with_sure_arms)
    reset_obs, reset_state, record = play_port(env, params, seed=7, steps=int(params.max_steps_in_episode))
    original = original_for(name, reset_obs, reset_state, record)
    assert record[-1][3] or record[-1][4], "the port's episode did not end"
    for t, (action, obs, reward, terminated, truncated) in enumerate(record):
        their_obs, their_reward, their_terminated, their_truncated, _ = original.step(action)
        where = f"{name} step {t} (action {action})"
        np.testing.assert_array_equal(obs, as_port_observation(their_obs), err_msg=where)
        assert reward == pytest.approx(float(their_reward), abs=1e-7), where
        assert (terminated, truncated) == (bool(their_terminated), bool(their_truncated)), where
