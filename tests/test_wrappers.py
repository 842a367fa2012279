"""Wrappers: episode statistics across truncation, normalisation, action clipping, PrevActionReward, MetaRL."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct
from gymnax.environments import environment, spaces
from hypothesis import given
from hypothesis import strategies as st

from mnemax.envs import (
    ClipAction,
    EpisodeStatistics,
    FlattenObservation,
    MetaRL,
    NormalizeObservation,
    NormalizeReward,
    PrevActionReward,
    RunningMoments,
    check_env,
    make,
    merge_moments,
    pool_moments,
)
from mnemax.envs.wrappers import observe_moments

T = 24  # steps per scripted rollout
LIMIT = 5  # time limit of the scripted env


@struct.dataclass
class CounterState(environment.EnvState):
    position: jax.Array


class ScriptedEnv(environment.Environment):
    """Discrete(3); reward = 1 + action; action 2 terminates; time limit ``LIMIT`` truncates.

    The observation ``[time, position]`` makes every step's value known in advance.
    """

    @property
    def default_params(self) -> environment.EnvParams:
        return environment.EnvParams(max_steps_in_episode=LIMIT)

    def reset_env(self, key, params):
        position = jax.random.uniform(key, ())
        return self.get_obs(CounterState(time=jnp.int32(0), position=position)), CounterState(jnp.int32(0), position)

    def step_env(self, key, state, action, params):
        state = CounterState(time=state.time + 1, position=state.position + action)
        reward = (1.0 + action).astype(jnp.float32)
        return self.get_obs(state), state, reward, action == 2, {}

    def get_obs(self, state, params=None, key=None):
        return jnp.stack([state.time.astype(jnp.float32), state.position])

    def action_space(self, params=None):
        return spaces.Discrete(3)

    def observation_space(self, params=None):
        return spaces.Box(-jnp.inf, jnp.inf, (2,), jnp.float32)


def scripted_rollout(env: Any, params: Any = None):
    """``(actions [T]) -> (obs [T, ...], reward [T], terminated [T], truncated [T], info)``, jitted once per env."""

    @jax.jit
    def run(actions):
        obs, state = env.reset(jax.random.PRNGKey(1), params)

        def body(state, inputs):
            step_key, action = inputs
            obs, state, reward, terminated, truncated, info = env.step(step_key, state, action, params)
            return state, (obs, reward, terminated, truncated, info)

        keys = jax.random.split(jax.random.PRNGKey(2), actions.shape[0])
        return obs, jax.lax.scan(body, state, (keys, actions))[1]

    return run


actions_strategy = st.lists(st.integers(0, 2), min_size=T, max_size=T).map(lambda a: jnp.asarray(a, jnp.int32))

_episode_statistics = scripted_rollout(EpisodeStatistics(ScriptedEnv()))


@given(actions_strategy)
def test_episode_statistics_match_a_python_reference_across_truncation(actions):
    _, (_, _, terminated, truncated, info) = _episode_statistics(actions)
    running_return, running_length, last_return, last_length = 0.0, 0, 0.0, 0
    for t, action in enumerate(np.asarray(actions)):
        running_return += 1.0 + action
        running_length += 1
        ended = action == 2 or running_length == LIMIT
        assert bool(terminated[t]) == (action == 2)
        assert bool(truncated[t]) == (running_length == LIMIT)
        if ended:
            last_return, last_length, running_return, running_length = running_return, running_length, 0.0, 0
        assert bool(info["returned_episode"][t]) == ended
        assert float(info["returned_episode_returns"][t]) == pytest.approx(last_return)
        assert int(info["returned_episode_lengths"][t]) == last_length


def test_episode_statistics_count_truncated_episodes():
    # Never terminating: every episode is cut by the time limit after LIMIT steps.
    _, (_, _, terminated, truncated, info) = _episode_statistics(jnp.zeros(T, jnp.int32))
    ends = np.flatnonzero(np.asarray(info["returned_episode"]))
    np.testing.assert_array_equal(ends, np.arange(LIMIT - 1, T, LIMIT))
    assert not np.asarray(terminated).any() and np.asarray(truncated)[ends].all()
    np.testing.assert_allclose(np.asarray(info["returned_episode_returns"])[ends], float(LIMIT))


def test_flatten_observation_flattens_observation_space_and_final_observation():
    env, params = make("Catch-bsuite")
    wrapped = FlattenObservation(env)
    space = wrapped.observation_space(params)
    obs, state = wrapped.reset(jax.random.PRNGKey(0), params)
    _, _, _, _, _, info = wrapped.step(jax.random.PRNGKey(1), state, 0, params)
    assert space.shape == (int(np.prod(env.observation_space(params).shape)),)
    assert obs.shape == space.shape and obs.dtype == jnp.float32
    assert info["final_observation"].shape == space.shape and info["final_observation"].dtype == jnp.float32


# -- running moments ---------------------------------------------------------

finite = st.floats(-1e3, 1e3, allow_nan=False, width=32)


@jax.jit
def _moments_of_stream(values):
    return jax.lax.scan(lambda m, x: (observe_moments(m, x), None), RunningMoments.zeros(), values)[0]


@given(st.lists(finite, min_size=2, max_size=64))
def test_welford_update_converges_to_the_stream_mean_and_variance(values):
    moments = RunningMoments.zeros()
    for value in values:
        moments = observe_moments(moments, jnp.float32(value))
    data = np.asarray(values, np.float64)
    scale = max(1.0, float(np.abs(data).max()))
    assert float(moments.count) == len(values)
    assert float(moments.mean) == pytest.approx(data.mean(), abs=1e-4 * scale)
    assert float(moments.var) == pytest.approx(data.var(), abs=1e-3 * scale**2)


@given(st.lists(finite, min_size=64, max_size=64), st.integers(1, 63))
def test_chan_merge_of_two_parts_equals_the_whole(values, split):
    data = jnp.asarray(values, jnp.float32)
    whole = _moments_of_stream(data)
    merged = merge_moments(_moments_of_stream(data[:split]), _moments_of_stream(data[split:]))
    scale = max(1.0, float(jnp.abs(data).max()))
    np.testing.assert_allclose(merged.mean, whole.mean, atol=1e-4 * scale)
    np.testing.assert_allclose(merged.var, whole.var, atol=1e-3 * scale**2)
    np.testing.assert_allclose(merged.mean, np.mean(values), atol=1e-4 * scale)


def test_pool_moments_merges_vmapped_copies():
    data = jax.random.normal(jax.random.PRNGKey(0), (4, 50)) * 3.0 + 1.0
    per_copy = jax.vmap(_moments_of_stream)(data)
    pooled = pool_moments(per_copy)
    np.testing.assert_allclose(pooled.mean, np.mean(data), atol=1e-5)
    np.testing.assert_allclose(pooled.var, np.var(data), rtol=1e-4)
    assert float(pooled.count) == 200


def test_normalize_observation_tracks_every_returned_observation():
    inner = ScriptedEnv()
    actions = jnp.asarray(np.random.default_rng(0).integers(0, 3, T), jnp.int32)
    raw_first, (raw_obs, *_) = scripted_rollout(inner)(actions)
    wrapped = NormalizeObservation(inner)
    first, (obs, *_rest) = scripted_rollout(wrapped)(actions)
    seen = np.concatenate([np.asarray(raw_first)[None], np.asarray(raw_obs)])
    mean, std = seen.mean(axis=0), np.sqrt(seen.var(axis=0) + wrapped.epsilon)
    np.testing.assert_allclose(obs[-1], np.clip((seen[-1] - mean) / std, -10, 10), rtol=1e-4, atol=1e-4)
    assert wrapped.observation_space(None).low == -10.0 and np.abs(np.asarray(obs)).max() <= 10.0


def test_normalize_reward_scales_by_the_std_of_the_discounted_return():
    gamma = 0.9
    actions = jnp.asarray(np.random.default_rng(1).integers(0, 3, T), jnp.int32)
    _, (_, scaled, terminated, truncated, info) = scripted_rollout(NormalizeReward(ScriptedEnv(), gamma=gamma))(actions)
    discounted, returns = 0.0, []
    for t, action in enumerate(np.asarray(actions)):
        discounted = gamma * discounted + (1.0 + action)
        returns.append(discounted)
        expected = (1.0 + action) / np.sqrt(np.var(returns) + 1e-8)
        assert float(scaled[t]) == pytest.approx(expected, rel=1e-4)
        assert float(info["raw_reward"][t]) == 1.0 + action
        if terminated[t] or truncated[t]:
            discounted = 0.0


def test_clip_action_clips_to_the_box_and_keeps_the_action_space():
    env, params = make("Pendulum-v1")
    clipped = ClipAction(env)
    _, state = env.reset(jax.random.PRNGKey(0), params)
    key = jax.random.PRNGKey(3)
    too_big = clipped.step(key, state, jnp.array([10.0]), params)
    at_bound = env.step(key, state, jnp.array([2.0]), params)
    np.testing.assert_allclose(too_big[0], at_bound[0])
    assert float(too_big[2]) == pytest.approx(float(at_bound[2]))
    assert clipped.action_space(params).high == env.action_space(params).high


# -- previous action and reward ---------------------------------------------


def test_prev_action_reward_layout_and_episode_starts():
    env = PrevActionReward(ScriptedEnv())
    assert env.observation_space(None).shape == (2 + 3 + 2,)
    actions = jnp.asarray([1, 0, 2, 1, 0, 0, 0, 0] + [0] * (T - 8), jnp.int32)
    first, (obs, _, _, _, info) = scripted_rollout(env)(actions)
    # Reset: no previous action or reward, start flag on.
    np.testing.assert_array_equal(first[2:], [0, 0, 0, 0, 1])
    # After action 1 (reward 2): one-hot [0, 1, 0], reward 2, mid-episode.
    np.testing.assert_array_equal(obs[0, 2:], [0, 1, 0, 2, 0])
    # Action 2 terminates: the next observation starts an episode, final_observation keeps the last action.
    np.testing.assert_array_equal(obs[2, 2:], [0, 0, 0, 0, 1])
    np.testing.assert_array_equal(info["final_observation"][2, 2:], [0, 0, 1, 3, 0])
    # Truncation at the time limit (steps 3..7 are one episode of LIMIT steps) also starts an episode.
    np.testing.assert_array_equal(obs[2 + LIMIT, 2:], [0, 0, 0, 0, 1])
    np.testing.assert_array_equal(obs[3, 2:], [0, 1, 0, 2, 0])


def test_prev_action_reward_box_actions_are_raw():
    env, params = make("Pendulum-v1")
    wrapped = PrevActionReward(env)
    _, state = wrapped.reset(jax.random.PRNGKey(0), params)
    obs, *_ = wrapped.step(jax.random.PRNGKey(1), state, jnp.array([0.5]), params)
    assert wrapped.observation_space(params).shape == (3 + 1 + 2,)
    assert float(obs[3]) == 0.5 and float(obs[-1]) == 0.0


# -- MetaRL --------------------------------------------------------------------

TRIALS = 3


@pytest.fixture(scope="module")
def meta_cartpole():
    env, params = make("CartPole-v1", max_steps_in_episode=12)
    return MetaRL(env, trials=TRIALS, obs_dim=6, num_train_tasks=100), params


def test_meta_rl_meta_episodes_with_different_seeds_get_different_projections(meta_cartpole):
    env, params = meta_cartpole
    _, first = env.reset(jax.random.PRNGKey(0), params)
    _, second = env.reset(jax.random.PRNGKey(1), params)
    assert first.obs_projection.shape == (4, 6)
    assert not np.allclose(first.obs_projection, second.obs_projection)
    assert sorted(np.asarray(first.action_map).tolist()) == [0, 1]  # a permutation of CartPole's actions


def test_meta_rl_trials_share_the_task_and_only_the_last_trial_ends_the_meta_episode(meta_cartpole):
    env, params = meta_cartpole

    @jax.jit
    def rollout(key):
        _, state = env.reset(key, params)

        def body(state, step_key):
            action_key, step_key = jax.random.split(step_key)
            action = env.action_space(params).sample(action_key)
            obs, next_state, _, terminated, truncated, info = env.step(step_key, state, action, params)
            return next_state, (obs, state.task_id, state.obs_projection, terminated, truncated, info)

        return jax.lax.scan(body, state, jax.random.split(key, 200))[1]

    obs, task_id, projection, terminated, truncated, info = jax.device_get(rollout(jax.random.PRNGKey(0)))
    meta_end = terminated | truncated
    trial_end = info["trial_end"]
    assert trial_end.sum() >= 2 * TRIALS and meta_end.sum() >= 2
    # The wrapper ends a meta-episode exactly at every TRIALS-th trial end.
    np.testing.assert_array_equal(np.flatnonzero(meta_end), np.flatnonzero(trial_end)[TRIALS - 1 :: TRIALS])
    # Trial index counts trial ends within the meta-episode; the observation flags each trial's first step.
    assert set(info["trial"][trial_end].tolist()) == set(range(TRIALS))
    np.testing.assert_array_equal(obs[:, -1], trial_end.astype(np.float32))
    # Within one meta-episode, every step sees the same task.
    boundaries = np.flatnonzero(meta_end) + 1
    for segment_ids, segment_maps in zip(np.split(task_id, boundaries), np.split(projection, boundaries)):
        if len(segment_ids):
            assert (segment_ids == segment_ids[0]).all()
            assert np.allclose(segment_maps, segment_maps[0])
    assert len(set(task_id.tolist())) == meta_end.sum() + 1  # each meta-episode drew a new task


def test_meta_rl_train_and_held_out_task_ids_are_disjoint():
    env, _ = make("CartPole-v1")
    keys = jax.random.split(jax.random.PRNGKey(0), 4096)
    for num_train_tasks in (10, None):
        train = np.asarray(jax.vmap(MetaRL(env, num_train_tasks=num_train_tasks).sample_task_id)(keys))
        held_out = np.asarray(jax.vmap(MetaRL(env, num_train_tasks=num_train_tasks, eval_tasks=True).sample_task_id)(keys))
        assert not set(train.tolist()) & set(held_out.tolist())
        assert (held_out >= 2**31).all() and (train < (num_train_tasks or 2**31)).all()
        if num_train_tasks:
            assert set(train.tolist()) == set(range(num_train_tasks))


def test_meta_rl_projects_box_actions_into_the_env_bounds():
    env, params = make("Pendulum-v1")
    meta = MetaRL(env, trials=2, action_dim=3)
    _, state = meta.reset(jax.random.PRNGKey(0), params)
    assert meta.action_space(params).shape == (3,) and state.action_map.shape == (3, 1)
    for action in (jnp.full(3, -1.0), jnp.full(3, 1.0), jnp.array([0.3, -0.7, 0.9])):
        env_action = meta._env_action(action, state.action_map, params)
        assert env_action.shape == (1,) and -2.0 <= float(env_action[0]) <= 2.0


@pytest.mark.parametrize("name", ["CartPole-v1", "Pendulum-v1"])
def test_meta_rl_passes_the_env_checker(name):
    env, params = make(name, max_steps_in_episode=20)
    assert check_env(PrevActionReward(MetaRL(env, trials=2)), params, num_steps=100) == []


@pytest.mark.slow
def test_meta_rl_over_brax_passes_the_env_checker():
    env, params = make("brax/inverted_pendulum", max_steps=20)
    assert check_env(MetaRL(env, trials=2, obs_dim=8, action_dim=2), params, num_steps=100) == []
