"""The S4WM memory suite: API conformance, what the scripted data shows, each task's memory property, the metric.

Every test runs the tasks at tiny sizes (rooms of 3 x 3 cells, episodes of
tens of steps) and shares one compiled rollout per task (module fixtures).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mnemax.envs import check_env, make
from mnemax.envs.memory import (
    MEMORY_ENVS,
    DistractingMemory,
    FourRooms,
    MultiDoorsKeys,
    Rooms,
    TenRooms,
    Teleport,
    TwoRooms,
    metrics,
    rendering,
    scripted_policy,
)
from mnemax.envs.memory.dataset import collect
from mnemax.envs.memory.gridworld import DOWN, MOVES
from mnemax.envs.memory.rooms import RoomLayout, snake_orders
from mnemax.envs.memory.uniforms import hashed_uniforms, subset

# Tiny versions of every task: exploration fits the context, the door phase fits the rest.
TINY = {
    "TwoRooms": lambda: TwoRooms(room_size=3, points_per_room=2, episode_length=48, context_length=24),
    "FourRooms": lambda: FourRooms(room_size=3, points_per_room=1, episode_length=64, context_length=32),
    "TenRooms": lambda: TenRooms(room_size=3, points_per_room=1, episode_length=120, context_length=80),
    "Teleport": lambda: Teleport(room_size=3, points_per_room=1, episode_length=64, context_length=32),
    "DistractingMemory": lambda: DistractingMemory(episode_length=40, cue_steps=4, reward_steps=6, room_size=5),
    "MultiDoorsKeys": lambda: MultiDoorsKeys(num_keys=2, room_height=3, episode_length=80, context_length=30),
}
ROOM_TASKS = ["TwoRooms", "FourRooms", "TenRooms", "Teleport"]
EPISODES = 6


@functools.lru_cache(maxsize=None)
def tiny(name: str):
    env = TINY[name]()
    return env, env.default_params


@functools.lru_cache(maxsize=None)
def episodes(name: str, seed: int = 0) -> dict[str, np.ndarray]:
    """``{field: [T, N, ...]}`` scripted episodes of the tiny task (compiled once per task)."""
    env, params = tiny(name)
    return collect(env, params, EPISODES, seed=seed, batch_size=EPISODES)


def rooms_of(env: Rooms, position: np.ndarray) -> np.ndarray:
    """Room index of world positions ``[..., 2]`` (doorways count for a neighbour)."""
    padded = position + env.margin
    return env.layout.room_of[padded[..., 0], padded[..., 1]]


def test_suite_is_complete_and_registered():
    assert set(MEMORY_ENVS) == set(TINY)
    for name in MEMORY_ENVS:
        env, params = make(f"memory/{name}")
        assert isinstance(env, MEMORY_ENVS[name])
        assert params.max_steps_in_episode == env.episode_length - 1
        assert env.observation_space(params).shape == (32, 32, 3)
        assert env.action_space(params).n == 4


@pytest.mark.parametrize("name", sorted(TINY))
def test_check_env_passes(name):
    env, params = tiny(name)
    assert check_env(env, params, num_steps=2 * env.episode_length) == []


@pytest.mark.parametrize("name", sorted(TINY))
def test_observations_are_uint8_frames_with_the_agent_in_the_centre(name):
    env, _ = tiny(name)
    obs = episodes(name)["obs"]
    assert obs.dtype == np.uint8 and obs.shape[2:] == (32, 32, 3)
    centre = obs[:, :, 16:20, 16:20]
    assert (centre == rendering.AGENT_COLOUR).all()
    assert obs.std(axis=(2, 3, 4)).min() > 0  # never a blank frame


@pytest.mark.parametrize("name", ROOM_TASKS)
def test_scripted_policy_explores_every_room_in_the_context(name):
    env, _ = tiny(name)
    data = episodes(name)
    rooms = rooms_of(env, data["position"][: env.context_length])  # [C, N]
    for episode in range(EPISODES):
        assert set(rooms[:, episode]) - {-1} == set(range(env.layout.num_rooms))


def assert_revisit_only_seen(env: Rooms, data: dict[str, np.ndarray], start: int) -> None:
    """From ``start`` on, every position occurred in the context and shows the frame seen there."""
    context = env.context_length
    for episode in range(data["obs"].shape[1]):
        seen = {tuple(p): t for t, p in enumerate(data["position"][:context, episode])}
        for t in range(start, env.episode_length):
            where = tuple(data["position"][t, episode])
            assert where in seen, f"episode {episode} step {t}: {where} was never visited in the context"
            np.testing.assert_array_equal(data["obs"][t, episode], data["obs"][seen[where], episode])


@pytest.mark.parametrize("name", ["TwoRooms", "FourRooms", "TenRooms"])
def test_revisit_shows_only_places_already_seen(name):
    env, _ = tiny(name)
    assert_revisit_only_seen(env, episodes(name), env.context_length)


@settings(max_examples=5)
@given(seed=st.integers(0, 2**31 - 1))
def test_every_seed_explores_then_revisits_seen_places(seed):
    env, _ = tiny("FourRooms")
    data = episodes("FourRooms", seed)
    rooms = rooms_of(env, data["position"][: env.context_length])
    assert all(set(rooms[:, e]) - {-1} == set(range(4)) for e in range(EPISODES))
    assert_revisit_only_seen(env, data, env.context_length)


def test_teleport_lands_on_a_place_seen_before():
    env, _ = tiny("Teleport")
    data = episodes("Teleport")
    context = env.context_length
    jumps = np.abs(data["position"][context] - data["position"][context - 1]).sum(-1)
    assert (jumps > 1).any(), "no episode was teleported further than one move"
    assert_revisit_only_seen(env, data, context)  # the landing cell and every cell after it


@given(rows=st.integers(1, 6), cols=st.integers(1, 6))
def test_snake_orders_are_paths_through_adjacent_rooms(rows, cols):
    for order in snake_orders(rows, cols):
        assert sorted(order) == list(range(rows * cols))
        r, c = np.divmod(order, cols)
        assert (np.abs(np.diff(r)) + np.abs(np.diff(c)) == 1).all()


@given(rows=st.integers(1, 4), cols=st.integers(1, 4), half=st.integers(1, 4))
def test_adjacent_room_centres_see_each_other_through_a_doorway(rows, cols, half):
    """The tour walks straight from centre to centre, so the line between neighbours must be open."""
    layout = RoomLayout(rows, cols, 2 * half + 1, margin=8)
    free = layout.grid == rendering.FLOOR
    centres = layout.centres.reshape(rows, cols, 2)
    for r in range(rows):
        for c in range(cols):
            (r0, c0) = centres[r, c]
            if c + 1 < cols:
                assert free[r0, c0 : centres[r, c + 1][1] + 1].all()
            if r + 1 < rows:
                assert free[r0 : centres[r + 1, c][0] + 1, c0].all()
    assert free.sum() == rows * cols * (2 * half + 1) ** 2 + rows * (cols - 1) + cols * (rows - 1)


subset_jit = jax.jit(subset, static_argnums=1)


@given(values=st.lists(st.integers(0, 7), min_size=3 * 25, max_size=3 * 25))
def test_subset_is_the_start_of_a_stable_argsort(values):
    """Ranks instead of a sort give argsort's first entries, ties broken by index (small ints force ties)."""
    uniform = np.asarray(values, np.float32).reshape(3, 25) / 8
    chosen = np.asarray(subset_jit(jnp.asarray(uniform), 4))
    np.testing.assert_array_equal(chosen, np.argsort(uniform, axis=-1, kind="stable")[:, :4])


@given(seed=st.integers(0, 2**32 - 1), counter=st.integers(0, 2**32 - 1))
def test_hashed_uniforms_lie_in_the_unit_interval_and_differ(seed, counter):
    values = np.asarray(hashed_uniforms(seed, counter, 64))
    assert ((values >= 0) & (values < 1)).all()
    assert len(np.unique(values)) > 60


# --- DistractingMemory ---------------------------------------------------------


def run_from(env, params, state, length):
    """Scripted rollout from ``state``: ``(obs [L, ...], reward [L])``."""

    def step(state, key):
        obs, state, reward, _, _ = env.step_env(key, state, scripted_policy(key, state), params)
        return state, (obs, reward)

    _, (obs, reward) = jax.lax.scan(step, state, jax.random.split(jax.random.PRNGKey(1), length))
    return obs, reward


@functools.lru_cache(maxsize=None)
def distracting_runner():
    env, params = tiny("DistractingMemory")
    return jax.jit(lambda state: run_from(env, params, state, env.episode_length - 1))


@settings(max_examples=5)
@given(seed=st.integers(0, 2**31 - 1))
def test_distracting_memory_reward_is_a_function_of_the_cue_alone(seed):
    env, params = tiny("DistractingMemory")
    run = distracting_runner()
    _, state = env.reset_env(jax.random.PRNGKey(seed), params)
    obs, reward = map(np.asarray, run(state))
    flipped_obs, flipped = map(np.asarray, run(state.replace(cue=1 - state.cue)))
    other_obs, distracted = map(np.asarray, run(state.replace(distractor_seed=state.distractor_seed + 1)))
    paid = reward != 0
    assert paid.sum() == env.reward_steps and (np.abs(reward[paid]) == 1).all()
    assert reward[paid][0] == (1.0 if int(state.cue) == 0 else -1.0)
    np.testing.assert_array_equal(flipped, -reward)  # the cue alone flips the sign
    np.testing.assert_array_equal(distracted, reward)  # the distractors change nothing
    assert (other_obs != obs).any(), "changing the distractors' seed changed no frame"
    # The cue is visible only in the cue phase (frames t = 1 .. cue_steps - 1 here), nowhere later.
    cue_end = env.cue_steps - 1
    assert (flipped_obs[:cue_end] != obs[:cue_end]).any()
    np.testing.assert_array_equal(flipped_obs[cue_end:], obs[cue_end:])


def test_reward_sign_accuracy_separates_memory_from_guessing():
    data = episodes("DistractingMemory")
    reward = data["reward"]
    assert np.isclose(metrics.reward_sign_accuracy(reward, reward), 1.0)
    assert np.isclose(metrics.reward_sign_accuracy(-reward, reward), 0.0)
    cues = np.sign(reward.sum(0))
    assert len(set(cues)) == 2, "both cues should occur in six episodes"
    always_positive = metrics.reward_sign_accuracy(np.ones_like(reward), reward)
    assert np.isclose(always_positive, np.mean(cues > 0))


# --- MultiDoorsKeys ---------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def doors_runner():
    env, params = tiny("MultiDoorsKeys")

    def run(key):
        _, state = env.reset_env(key, params)

        def step(state, key):
            _, state, reward, _, _ = env.step_env(key, state, scripted_policy(key, state), params)
            return state, (reward, state.held, state.time)

        return jax.lax.scan(step, state, jax.random.split(key, env.episode_length - 1))

    return jax.jit(jax.vmap(run))


def test_doors_open_exactly_for_the_keys_collected_in_the_context():
    env, _ = tiny("MultiDoorsKeys")
    final, (reward, held, time) = doors_runner()(jax.random.split(jax.random.PRNGKey(0), 16))
    held_at_context = np.asarray(held)[:, env.context_length - 1]  # [E, K] after the context
    np.testing.assert_array_equal(np.asarray(final.held), held_at_context)  # no key is picked up later
    opened = np.asarray(final.grid >= env.open0).sum(axis=(1, 2))
    np.testing.assert_array_equal(opened, held_at_context.sum(-1))  # every door tried; those with keys opened
    np.testing.assert_array_equal(np.asarray(reward).sum(-1), held_at_context.sum(-1))
    assert np.asarray(reward)[:, : env.context_length - 1].sum() == 0  # doors pay only in the query horizon
    counts = set(held_at_context.sum(-1).tolist())
    assert len(counts) >= 2, f"every episode held the same number of keys {counts}"


def test_a_door_opens_only_with_its_key():
    env, params = tiny("MultiDoorsKeys")
    _, state = env.reset_env(jax.random.PRNGKey(3), params)
    slot = 0
    colour = int(state.door_key[slot])
    state = state.replace(position=jnp.asarray(env.above[slot]))
    door = tuple(env.doors[slot])
    _, blocked, reward, _, _ = env.step_env(jax.random.PRNGKey(0), state, DOWN, params)
    assert tuple(np.asarray(blocked.position)) == tuple(env.above[slot]) and float(reward) == 0.0
    held = state.replace(held=state.held.at[colour].set(True))
    _, opened, reward, _, _ = env.step_env(jax.random.PRNGKey(0), held, DOWN, params)
    assert tuple(np.asarray(opened.position)) == door and float(reward) == 1.0
    assert int(opened.grid[door]) == env.open0 + colour
    wrong = state.replace(held=jnp.ones_like(state.held).at[colour].set(False))
    _, still, reward, _, _ = env.step_env(jax.random.PRNGKey(0), wrong, DOWN, params)
    assert tuple(np.asarray(still.position)) == tuple(env.above[slot]) and float(reward) == 0.0


# --- the revisit metric ---------------------------------------------------------------


@pytest.mark.parametrize("name", ROOM_TASKS)
def test_oracle_recalls_the_revisit_and_the_mean_frame_does_not(name):
    env, _ = tiny(name)
    data = episodes(name)
    context = env.context_length
    oracle, found = metrics.oracle_frames(data["obs"], data["position"], context)
    assert bool(found.all())
    oracle_error = metrics.imagination_error(oracle, data["obs"], context)
    mean_error = metrics.imagination_error(metrics.mean_frames(data["obs"], context), data["obs"], context)
    assert oracle_error.shape == mean_error.shape == (env.episode_length - context,)
    assert float(oracle_error.max()) < 1e-6
    assert float(mean_error.min()) > 0.01


def test_per_step_mse_is_the_mean_squared_pixel_error():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (3, 2, 4, 4, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (3, 2, 4, 4, 3), dtype=np.uint8)
    expected = ((a / 255.0 - b / 255.0) ** 2).mean(axis=(1, 2, 3, 4))
    np.testing.assert_allclose(metrics.per_step_mse(a, b), expected, rtol=1e-5)
    np.testing.assert_allclose(metrics.per_step_mse(a, a / 255.0), 0.0, atol=1e-7)
    with pytest.raises(ValueError, match="matching"):
        metrics.per_step_mse(a, b[:2])


def test_oracle_marks_positions_never_seen():
    obs = np.arange(4 * 1 * 1 * 1 * 1, dtype=np.uint8).reshape(4, 1, 1, 1, 1)
    position = np.array([[[0, 0]], [[0, 1]], [[0, 0]], [[5, 5]]])
    frames, found = metrics.oracle_frames(obs, position, 2)
    np.testing.assert_array_equal(np.asarray(found), [[True], [False]])
    np.testing.assert_array_equal(np.asarray(frames)[:, 0, 0, 0, 0], [0, 1])


# --- construction errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: TwoRooms(context_length=20), "raise context_length"),
        (lambda: TwoRooms(room_size=4), "odd"),
        (lambda: Rooms(rooms=(1, 1)), "at least two rooms"),
        (lambda: FourRooms(episode_length=100, context_length=100), r"context_length must be an integer in \[1, episode_length\)"),
        (lambda: DistractingMemory(episode_length=10, cue_steps=5, reward_steps=5), "no distractor phase"),
        (lambda: MultiDoorsKeys(num_keys=9), "num_keys"),
        (lambda: MultiDoorsKeys(episode_length=160, context_length=150), "lengthen episode_length"),
        (lambda: TenRooms(tile_pixels=0), "tile_pixels"),
    ],
)
def test_bad_options_get_one_clear_sentence(build, message):
    with pytest.raises(ValueError, match=message) as error:
        build()
    assert "\n" not in str(error.value)


def test_moves_are_up_right_down_left():
    np.testing.assert_array_equal(MOVES, [[-1, 0], [0, 1], [1, 0], [0, -1]])
