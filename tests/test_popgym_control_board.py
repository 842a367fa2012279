"""POPGym's control and board families in JAX against the original ``popgym`` package.

Covers PositionOnlyCartPole, NoisyPositionOnlyCartPole, VelocityOnlyCartPole,
PositionOnlyPendulum, NoisyPositionOnlyPendulum, Battleship and MineSweeper:
the API contract at every level, the difficulty tables, step-by-step
equality with the original from the same hidden state, noise scales, oracle
returns, board distributions and random-policy statistics.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from popgym_compare import assert_same_random_stats

from mnemax.envs.popgym import LEVELS, POPGYM_ENVS
from mnemax.envs.popgym.battleship import EnvState as BattleshipState
from mnemax.envs.popgym.minesweeper import EnvState as MineSweeperState

FAMILIES = (
    "PositionOnlyCartPole",
    "NoisyPositionOnlyCartPole",
    "VelocityOnlyCartPole",
    "PositionOnlyPendulum",
    "NoisyPositionOnlyPendulum",
    "Battleship",
    "MineSweeper",
)
NAMES = [f"{family}{level}" for family in FAMILIES for level in LEVELS]


@functools.lru_cache(maxsize=None)
def compiled(name: str):
    """``(env, params, reset, step)`` with ``reset`` / ``step`` jitted once per env name."""
    env, params = POPGYM_ENVS[name]()
    return env, params, jax.jit(env.reset), jax.jit(env.step)


def original(name: str):
    """The original ``popgym`` env ``name``; the calling test skips, with the reason, when popgym is not installed."""
    popgym_envs = pytest.importorskip("popgym.envs", reason="comparing with the original needs the popgym package")
    return getattr(popgym_envs, name)()


# --------------------------------------------------------------------------------------- API contract
@pytest.mark.parametrize("name", NAMES)
def test_api_contract_under_jit_and_vmap(name):
    """Reset and step agree on shape and dtype, flags are bool scalars, observations stay in the space."""
    env, params = POPGYM_ENVS[name]()
    batch = 4
    keys = jax.random.split(jax.random.PRNGKey(0), batch)
    obs0, state = jax.jit(jax.vmap(env.reset, (0, None)))(keys, params)
    space = env.observation_space(params)
    actions = jax.vmap(env.action_space(params).sample)(keys)
    step = jax.jit(jax.vmap(env.step, (0, 0, 0, None)))

    def run(carry, key):
        state, _ = carry
        obs, state, reward, terminated, truncated, info = step(jax.random.split(key, batch), state, actions, params)
        return (state, obs), (obs, reward, terminated, truncated, info["final_observation"])

    outs = [run((state, obs0), key) for key in jax.random.split(jax.random.PRNGKey(1), 3)]
    for (_, _), (obs, reward, terminated, truncated, final_obs) in outs:
        assert obs.shape == obs0.shape == (batch, *space.shape), (obs.shape, obs0.shape, space.shape)
        assert obs.dtype == obs0.dtype == final_obs.dtype == jnp.float32
        assert reward.shape == terminated.shape == truncated.shape == (batch,)
        assert reward.dtype == jnp.float32
        assert terminated.dtype == truncated.dtype == jnp.bool_
        assert bool(jnp.all(jax.vmap(space.contains)(obs)))
        assert bool(jnp.all(jax.vmap(space.contains)(final_obs)))
    assert bool(jnp.all(jax.vmap(space.contains)(obs0)))


def test_difficulty_tables_match_the_original():
    """Every level's constructor settings are the ones the original's level class uses."""
    for family in FAMILIES:
        for level in LEVELS:
            ours, params = POPGYM_ENVS[f"{family}{level}"]()
            theirs = original(f"{family}{level}")
            if family == "Battleship":
                assert (ours.board_size, list(ours.ship_sizes)) == (theirs.board_size, list(theirs.ship_sizes))
            elif family == "MineSweeper":
                assert (ours.dims, ours.num_mines) == (tuple(theirs.dims), theirs.num_mines)
            else:
                assert ours.max_episode_length == theirs.max_episode_length
                if family.startswith("Noisy"):
                    assert np.allclose(ours.noise_sigma, theirs.noise_sigma)
            assert params.max_steps_in_episode == theirs.max_episode_length


@pytest.mark.parametrize("name", ["PositionOnlyCartPoleEasy", "BattleshipEasy", "MineSweeperHard"])
def test_bad_constructor_arguments_raise_one_clear_sentence(name):
    family = name.removesuffix("Easy").removesuffix("Hard")
    bad = {
        "PositionOnlyCartPole": {"max_episode_length": 0},
        "Battleship": {"board_size": 3, "ship_sizes": (4,)},
        "MineSweeper": {"dims": (2, 2), "num_mines": 2},
    }[family]
    with pytest.raises(ValueError, match=r"must be"):
        POPGYM_ENVS[name](**bad)


# --------------------------------------------------------------------------------------- CartPole
CARTPOLE_FIELDS = ("x", "x_dot", "theta", "theta_dot")


def _state_vector(state, fields):
    return np.array([float(getattr(state, f)) for f in fields])


@pytest.mark.parametrize(
    "name, observed",
    [
        ("PositionOnlyCartPoleMedium", (0, 2)),
        ("VelocityOnlyCartPoleEasy", (1, 3)),
        ("NoisyPositionOnlyCartPoleEasy", (0, 2)),
    ],
)
def test_cartpole_follows_gymnasium_from_the_same_state(name, observed):
    """Same initial state and actions: same state trajectory, rewards and flags as popgym's CartPole."""
    env, params, reset, step = compiled(name)
    theirs = original(name)
    rng = np.random.default_rng(0)
    for episode in range(4):
        their_obs, _ = theirs.reset(seed=episode)
        _, state = reset(jax.random.PRNGKey(episode), params)
        start = np.asarray(theirs.state, dtype=np.float64)
        state = state.replace(**{f: jnp.float32(v) for f, v in zip(CARTPOLE_FIELDS, start)})
        if name.startswith("Velocity"):
            # POPGym's VelocityOnlyCartPole shows the positions at reset.
            np.testing.assert_allclose(their_obs, start[[0, 2]], rtol=1e-6)
            np.testing.assert_allclose(env._components(state, first=True), start[[0, 2]], rtol=1e-6)
        key = jax.random.PRNGKey(100 + episode)
        for t in range(1000):
            action = int(rng.integers(2))
            their_obs, their_reward, their_term, their_trunc, _ = theirs.step(action)
            key, step_key = jax.random.split(key)
            obs, state_next, reward, term, trunc, info = step(step_key, state, action, params)
            assert (bool(term), bool(trunc)) == (their_term, their_trunc), (episode, t)
            assert float(reward) == pytest.approx(their_reward, rel=1e-6)
            final_obs = np.asarray(info["final_observation"])
            if not name.startswith("Noisy"):
                # The observation is the right slice of the state (noise is tested on its own below).
                np.testing.assert_allclose(final_obs, their_obs, rtol=1e-4, atol=1e-5)
                np.testing.assert_allclose(final_obs, np.asarray(theirs.state)[list(observed)], rtol=1e-4, atol=1e-5)
            if term or trunc:
                break
            state = state_next
            np.testing.assert_allclose(
                _state_vector(state, CARTPOLE_FIELDS), theirs.state, rtol=1e-4, atol=1e-5, err_msg=f"step {t}"
            )
        assert term or trunc


@pytest.mark.parametrize("name", ["PositionOnlyCartPoleEasy", "PositionOnlyPendulumHard"])
def test_time_limit_is_truncation_not_termination(name):
    """The step that reaches ``max_episode_length`` reports truncated, not terminated, like the original."""
    env, params, reset, step = compiled(name)
    theirs = original(name)
    theirs.reset(seed=0)
    _, state = reset(jax.random.PRNGKey(0), params)
    if "CartPole" in name:
        theirs.state = np.zeros(4)
        state = state.replace(**{f: jnp.float32(0.0) for f in CARTPOLE_FIELDS})
    limit = params.max_steps_in_episode
    theirs.num_steps = limit - 2
    state = state.replace(time=limit - 2)
    action = 1 if "CartPole" in name else np.zeros(1, np.float32)
    flags = []
    for _ in range(2):
        _, _, their_term, their_trunc, _ = theirs.step(action)
        _, state, _, term, trunc, _ = step(jax.random.PRNGKey(1), state, jnp.asarray(action), params)
        flags.append(((bool(term), bool(trunc)), (their_term, their_trunc)))
    assert flags == [((False, False), (False, False)), ((False, True), (False, True))]


@pytest.mark.parametrize("name", ["NoisyPositionOnlyCartPoleHard", "NoisyPositionOnlyPendulumMedium"])
def test_noise_has_the_original_scale(name):
    """Noisy minus clean observation has the law of the original's noise (clipping included), at reset and after a step."""
    env, params = POPGYM_ENVS[name]()
    theirs = original(name)
    theirs.reset(seed=0)
    sigma = float(theirs.noise_sigma[0])
    n = 4000
    keys = jax.random.split(jax.random.PRNGKey(3), n)
    obs, state = jax.vmap(env.reset, (0, None))(keys, params)
    clean = jax.vmap(lambda s: env._components(s, first=True))(state)
    action = jnp.zeros((n,), jnp.int32) if "CartPole" in name else jnp.zeros((n, 1))
    obs1, state1, *_ = jax.vmap(env.step_env, (0, 0, 0, None))(jax.random.split(keys[0], n), state, action, params)
    clean1 = jax.vmap(lambda s: env._components(s, first=False))(state1)
    low, high = env.observation_bounds()
    for noisy, exact in ((obs, clean), (obs1, clean1)):
        ours = np.asarray(noisy - exact)
        their_noisy = np.stack([theirs.add_noise_to_obs(x) for x in np.asarray(exact)])
        reference = their_noisy - np.asarray(exact)
        assert np.allclose(their_noisy.std(0) > 0, True)
        for d in range(ours.shape[1]):
            error = np.hypot(ours[:, d].std(), reference[:, d].std()) / np.sqrt(n)
            assert abs(ours[:, d].mean() - reference[:, d].mean()) < 5 * error
            assert ours[:, d].std() == pytest.approx(reference[:, d].std(), rel=0.06)
            if float(high[d]) > 10 * sigma:  # unclipped component: the standard deviation is sigma itself
                assert ours[:, d].std() == pytest.approx(sigma, rel=0.06)
        assert bool(jnp.all((noisy >= low) & (noisy <= high)))


# --------------------------------------------------------------------------------------- Pendulum
@pytest.mark.parametrize("name", ["PositionOnlyPendulumEasy", "NoisyPositionOnlyPendulumHard"])
def test_pendulum_follows_gymnasium_from_the_same_state(name):
    """Same angle, velocity and torques: same observations and rescaled rewards as popgym's Pendulum."""
    env, params, reset, step = compiled(name)
    theirs = original(name)
    rng = np.random.default_rng(1)
    for episode in range(3):
        theirs.reset(seed=episode)
        _, state = reset(jax.random.PRNGKey(episode), params)
        theta, theta_dot = theirs.state
        state = state.replace(theta=jnp.float32(theta), theta_dot=jnp.float32(theta_dot))
        for t in range(60):
            torque = rng.uniform(-2.5, 2.5, size=(1,)).astype(np.float32)  # out-of-range torques get clipped
            their_obs, their_reward, their_term, their_trunc, _ = theirs.step(torque)
            obs, state, reward, term, trunc, _ = step(jax.random.PRNGKey(t), state, jnp.asarray(torque), params)
            assert not (bool(term) or bool(trunc) or their_term or their_trunc)
            np.testing.assert_allclose([state.theta, state.theta_dot], theirs.state, rtol=1e-4, atol=1e-4)
            assert float(reward) == pytest.approx(their_reward, rel=1e-4, abs=1e-7)
            if not name.startswith("Noisy"):
                np.testing.assert_allclose(obs, their_obs, atol=1e-5)


def test_pendulum_rewards_span_minus_one_to_one_over_an_episode():
    """POPGym's rescaling: the worst cost pays -1/L, no cost pays +1/L."""
    env, params, reset, step = compiled("PositionOnlyPendulumEasy")
    theirs = original("PositionOnlyPendulumEasy")
    worst, best = env._scale_reward(jnp.float32(-16.2736044), params), env._scale_reward(jnp.float32(0.0), params)
    limit = params.max_steps_in_episode
    assert float(worst) == pytest.approx(-1 / limit) and float(best) == pytest.approx(1 / limit)
    assert float(worst) == pytest.approx(theirs.reward_transform(-16.2736044))


# --------------------------------------------------------------------------------------- Battleship
def _battleship_state(board: np.ndarray) -> BattleshipState:
    n = board.shape[0]
    return BattleshipState(
        board=jnp.asarray(board, jnp.bool_),
        guesses=jnp.zeros((n, n), jnp.bool_),
        hits=jnp.int32(0),
        time=0,
        spare=jnp.zeros((n, n), jnp.bool_),
        spare_ships=jnp.int32(0),
    )


def _mines_state(mines: np.ndarray) -> MineSweeperState:
    return MineSweeperState(
        mines=jnp.asarray(mines, jnp.bool_),
        revealed=jnp.zeros(mines.shape, jnp.bool_),
        exploded=jnp.bool_(False),
        time=0,
    )


def _play_both(name, theirs, state, actions):
    """Step the port from ``state`` and the original side by side; assert equal transitions until done."""
    env, params, _, step = compiled(name)
    cols = env.board_size if hasattr(env, "board_size") else env.dims[1]
    for t, flat in enumerate(actions):
        their_obs, their_reward, their_term, their_trunc, _ = theirs.step(np.array(divmod(flat, cols)))
        obs, state, reward, term, trunc, info = step(jax.random.PRNGKey(t), state, jnp.int32(flat), params)
        assert float(info["final_observation"][0]) == their_obs, t
        assert float(reward) == pytest.approx(their_reward, rel=1e-6), t
        assert (bool(term), bool(trunc)) == (bool(their_term), bool(their_trunc)), t
        if their_term or their_trunc:
            return t + 1
    return len(actions)


@settings(max_examples=12)
@given(seed=st.integers(0, 2**31 - 1), level=st.sampled_from(LEVELS), data=st.data())
def test_battleship_matches_the_original_on_its_boards(seed, level, data):
    """On the original's board, any shot sequence (repeats included) gives the same obs, rewards and flags."""
    name = f"Battleship{level}"
    theirs = original(name)
    theirs.reset(seed=seed)
    cells = theirs.board_size**2
    ship_cells = list(np.flatnonzero(theirs.board))
    pool = st.one_of(st.integers(0, cells - 1), st.sampled_from(ship_cells))
    actions = data.draw(st.lists(pool, min_size=1, max_size=cells))
    _play_both(name, theirs, _battleship_state(theirs.board), actions)


@pytest.mark.parametrize("level", LEVELS)
def test_battleship_oracle_returns_one_and_full_sweep_returns_zero(level):
    env, params, reset, step = compiled(f"Battleship{level}")
    _, state = reset(jax.random.PRNGKey(7), params)
    ships = np.flatnonzero(np.asarray(state.board))
    assert len(ships) == sum(env.ship_sizes)
    total, s = 0.0, state
    for i, cell in enumerate(ships):
        _, s, reward, term, trunc, _ = step(jax.random.PRNGKey(i), s, jnp.int32(cell), params)
        total += float(reward)
        assert bool(term) == (i == len(ships) - 1) and not bool(trunc)
    assert total == pytest.approx(1.0, abs=1e-5)
    # Every cell once, ships last: all misses then all hits; the last shot both terminates and truncates.
    water = np.flatnonzero(~np.asarray(state.board))
    total, s = 0.0, state
    for i, cell in enumerate(np.concatenate([water, ships])):
        _, s, reward, term, trunc, _ = step(jax.random.PRNGKey(i), s, jnp.int32(cell), params)
        total += float(reward)
    assert total == pytest.approx(0.0, abs=1e-5) and bool(term) and bool(trunc)


def test_battleship_boards_have_the_original_distribution():
    """Per-cell ship frequency matches the original's placement (Easy, 8x8), for boards drawn by ``reset``
    and for the next-episode boards that ``step`` builds one ship at a time."""
    env, params = POPGYM_ENVS["BattleshipEasy"]()
    ours_n, theirs_n = 20000, 2000

    def boards(key):
        reset_key, step_key = jax.random.split(key)
        _, state = env.reset_env(reset_key, params)
        state = state.replace(spare=jnp.zeros_like(state.spare), spare_ships=jnp.int32(0))
        for i, k in enumerate(jax.random.split(step_key, len(env.ship_sizes))):
            _, state, _, _, _, _ = env.step(k, state, jnp.int32(i), params)
        assert state.spare_ships.shape == ()
        return state.board, state.spare, state.spare_ships

    reset_boards, step_boards, placed = jax.jit(jax.vmap(boards))(jax.random.split(jax.random.PRNGKey(0), ours_n))
    assert bool(jnp.all(placed == len(env.ship_sizes)))
    theirs = original("BattleshipEasy")
    their_boards = []
    for seed in range(theirs_n):
        theirs.reset(seed=seed)
        their_boards.append(theirs.board.copy())
    theirs_p = np.stack(their_boards).mean(0)
    for ours in (reset_boards, step_boards):
        assert bool(jnp.all(ours.sum((1, 2)) == sum(env.ship_sizes)))
        ours_p = np.asarray(ours).mean(0)
        error = np.sqrt(theirs_p * (1 - theirs_p) / theirs_n + ours_p * (1 - ours_p) / ours_n)
        assert np.all(np.abs(ours_p - theirs_p) < 4.5 * error + 1e-3), np.abs(ours_p - theirs_p) / error
        # Edges hold fewer ships than the centre, in both.
        assert ours_p[0, 0] < ours_p[3, 3] and theirs_p[0, 0] < theirs_p[3, 3]


def test_battleship_next_board_is_the_one_built_during_the_episode():
    """Auto-reset starts the next episode on the spare board, complete by then, and starts a new spare."""
    env, params, reset, step = compiled("BattleshipEasy")
    _, state = reset(jax.random.PRNGKey(5), params)
    spare = state.spare
    water = np.flatnonzero(~np.asarray(state.board))
    for i, cell in enumerate(water[:4]):
        _, state, *_ = step(jax.random.PRNGKey(i), state, jnp.int32(cell), params)
        assert int(state.spare_ships) == len(env.ship_sizes)  # the pre-drawn spare is already complete
    for i, cell in enumerate(np.flatnonzero(np.asarray(state.board))):
        obs, state, _, term, _, info = step(jax.random.PRNGKey(10 + i), state, jnp.int32(cell), params)
    assert bool(term) and float(info["final_observation"][0]) == 1.0 and float(obs[0]) == 0.0
    assert bool(jnp.all(state.board == spare)) and int(state.time) == 0
    assert int(state.spare_ships) == 0 and not bool(state.spare.any())


# --------------------------------------------------------------------------------------- MineSweeper
@settings(max_examples=12)
@given(seed=st.integers(0, 2**31 - 1), level=st.sampled_from(LEVELS), data=st.data())
def test_minesweeper_matches_the_original_on_its_boards(seed, level, data):
    """On the original's mines, any click sequence gives the same counts, rewards and flags."""
    name = f"MineSweeper{level}"
    theirs = original(name)
    theirs.reset(seed=seed)
    mines = theirs.hidden_grid == 1
    safe = list(np.flatnonzero(~mines))
    pool = st.one_of(st.sampled_from(safe), st.integers(0, mines.size - 1))
    actions = data.draw(st.lists(pool, min_size=1, max_size=len(safe)))
    _play_both(name, theirs, _mines_state(mines), actions)


@pytest.mark.parametrize("level", LEVELS)
def test_minesweeper_oracle_returns_one_on_the_last_safe_cell(level):
    env, params, reset, step = compiled(f"MineSweeper{level}")
    _, state = reset(jax.random.PRNGKey(11), params)
    mines = np.asarray(state.mines)
    assert mines.sum() == env.num_mines
    safe = np.flatnonzero(~mines)
    total = 0.0
    for i, cell in enumerate(safe):
        _, state, reward, term, trunc, _ = step(jax.random.PRNGKey(i), state, jnp.int32(cell), params)
        total += float(reward)
        assert bool(term) == (i == len(safe) - 1) and not bool(trunc)
    assert total == pytest.approx(1.0, abs=1e-5)


def test_minesweeper_time_limit_truncates_only_without_termination():
    """Clicking one safe cell over and over: truncated (not terminated) at the limit, as in the original."""
    name = "MineSweeperEasy"
    env, params, reset, _ = compiled(name)
    theirs = original(name)
    theirs.reset(seed=4)
    mines = theirs.hidden_grid == 1
    safe_cell = int(np.flatnonzero(~mines)[0])
    steps = _play_both(name, theirs, _mines_state(mines), [safe_cell] * params.max_steps_in_episode)
    assert steps == params.max_steps_in_episode


def test_minesweeper_mines_are_uniform():
    """Each cell holds a mine with probability num_mines / cells, and every board has exactly num_mines."""
    env, params = POPGYM_ENVS["MineSweeperMedium"]()
    n = 20000
    mines = jax.jit(jax.vmap(lambda k: env.reset(k, params)[1].mines))(jax.random.split(jax.random.PRNGKey(0), n))
    assert bool(jnp.all(mines.sum((1, 2)) == env.num_mines))
    p = env.num_mines / mines[0].size
    freq = np.asarray(mines).mean(0)
    assert np.all(np.abs(freq - p) < 4.5 * np.sqrt(p * (1 - p) / n))


# --------------------------------------------------------------------------------------- random policy
# (name, episodes, scan bound) — the bound must exceed the longest episode.
FAST_RANDOM = [
    ("PositionOnlyCartPoleEasy", 300, 201),
    ("NoisyPositionOnlyCartPoleEasy", 300, 201),
    ("VelocityOnlyCartPoleEasy", 300, 201),
    ("PositionOnlyPendulumEasy", 100, 201),
    ("NoisyPositionOnlyPendulumEasy", 100, 201),
    ("PositionOnlyPendulumHard", 100, 101),
    ("BattleshipEasy", 150, 65),
    ("MineSweeperEasy", 300, 15),
]
SLOW_RANDOM = [
    ("PositionOnlyCartPoleHard", 1000, 601),
    ("NoisyPositionOnlyCartPoleHard", 1000, 201),
    ("VelocityOnlyCartPoleHard", 1000, 601),
    ("NoisyPositionOnlyPendulumHard", 500, 201),
    ("BattleshipHard", 500, 145),
    ("MineSweeperMedium", 1000, 31),
    ("MineSweeperHard", 1000, 55),
]


@pytest.mark.parametrize("name, episodes, max_steps", FAST_RANDOM)
def test_random_policy_statistics_match_the_original(name, episodes, max_steps):
    assert_same_random_stats(name, episodes, max_steps)


@pytest.mark.slow
@pytest.mark.parametrize("name, episodes, max_steps", SLOW_RANDOM)
def test_random_policy_statistics_match_the_original_slow(name, episodes, max_steps):
    assert_same_random_stats(name, episodes, max_steps)
