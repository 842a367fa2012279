"""mnemax.envs.auto_reset: fresh episodes only where episodes ended, optimistic under vmap."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mnemax.envs.auto_reset import auto_reset
from mnemax.envs.checker import check_env
from mnemax.envs.suite_adapter import SuiteParams

from test_env_suites import CountdownSuiteEnv


def reset(key, params):
    """A toy reset: a random observation offset by ``params``; the state remembers it and a step count."""
    obs = jax.random.uniform(key, (5,)) + params
    return obs, {"obs": obs, "time": jnp.zeros((), jnp.int32)}


def old_episode(copies):
    obs = -jnp.ones((copies, 5))
    return obs, {"obs": obs, "time": jnp.full((copies,), 7, jnp.int32)}


@functools.partial(jax.jit, static_argnums=0)
def batched(ratio, done, keys, params):
    obs, state = old_episode(done.shape[0])
    return jax.vmap(auto_reset(reset, ratio), in_axes=(0, 0, None, 0, 0))(done, keys, params, obs, state)


@functools.partial(jax.jit, static_argnums=0)
def fresh_for_all(copies, keys, params):
    return jax.vmap(reset, in_axes=(0, None))(keys, params)


@given(done=st.booleans())
def test_one_env_resets_exactly_when_done(done):
    key, params = jax.random.key(3), jnp.float32(2.0)
    obs, state = jax.jit(auto_reset(reset, 16))(jnp.asarray(done), key, params, -jnp.ones(5), {"obs": -jnp.ones(5), "time": jnp.int32(7)})
    expected_obs, _ = reset(key, params)
    np.testing.assert_array_equal(obs, expected_obs if done else -np.ones(5))
    assert int(state["time"]) == (0 if done else 7)


@settings(deadline=None, max_examples=40)
@given(done=st.lists(st.booleans(), min_size=8, max_size=8), ratio=st.sampled_from([1, 2, 3, 8, 16]))
def test_copies_that_ended_take_the_fresh_episodes_in_order_and_the_others_keep_theirs(done, ratio):
    done = jnp.asarray(done)
    keys, params = jax.random.split(jax.random.key(0), 8), jnp.float32(1.0)
    obs, state = batched(ratio, done, keys, params)
    pool = math.ceil(8 / ratio)
    fresh_obs, _ = fresh_for_all(8, keys, params)  # fresh episode i is reset(keys[i]) for i < pool
    order = np.cumsum(np.asarray(done)) - 1
    for i in range(8):
        if done[i]:
            np.testing.assert_allclose(obs[i], fresh_obs[order[i] % pool], rtol=1e-6)
            np.testing.assert_allclose(state["obs"][i], obs[i])
            assert int(state["time"][i]) == 0
        else:
            np.testing.assert_array_equal(obs[i], -np.ones(5))
            assert int(state["time"][i]) == 7
    # With one fresh episode per copy, no two copies that ended share one.
    ended = np.asarray(obs)[np.asarray(done)]
    if ratio == 1:
        assert len({tuple(row) for row in ended}) == len(ended)


def test_under_vmap_only_the_pool_is_generated():
    # The reset's random draw appears once, for a batch of ceil(copies / ratio) keys, not one per copy.
    jaxpr = str(jax.make_jaxpr(lambda done, keys: batched(16, done, keys, jnp.float32(0.0)))(jnp.ones(64, bool), jax.random.split(jax.random.key(0), 64)))
    assert "f32[4,5]" in jaxpr and "f32[64,5] = add" not in jaxpr


def test_an_outer_vmap_over_seeds_gives_each_seed_its_own_pool():
    done = jnp.asarray([[True, False, True, True], [False, True, True, False]])
    keys = jax.random.split(jax.random.key(1), (2, 4))
    seeds = jax.vmap(lambda d, k: batched(2, d, k, jnp.float32(0.0)))(done, keys)
    for seed in range(2):
        alone = batched(2, done[seed], keys[seed], jnp.float32(0.0))
        jax.tree.map(np.testing.assert_array_equal, jax.tree.map(lambda x: x[seed], seeds), alone)


def test_per_copy_params_give_every_copy_its_own_episode():
    done, keys = jnp.ones(4, bool), jax.random.split(jax.random.key(2), 4)
    params = jnp.arange(4.0) * 10
    obs, state = old_episode(4)
    new_obs, _ = jax.vmap(auto_reset(reset, 16))(done, keys, params, obs, state)
    expected, _ = jax.vmap(reset)(keys, params)
    np.testing.assert_allclose(new_obs, expected)


def test_a_suite_env_with_optimistic_reset_passes_check_env_and_keeps_its_endings():
    env = CountdownSuiteEnv()
    env.reset_ratio = 4
    params = SuiteParams(max_steps_in_episode=3, inner={"goal": 2, "limit": 9})
    assert check_env(env, params, num_steps=16) == []


@pytest.mark.parametrize("ratio", [0, -3, 2.5, True])
def test_a_bad_reset_ratio_is_one_sentence(ratio):
    with pytest.raises(ValueError, match="reset_ratio must be a positive number of copies per fresh episode, got"):
        auto_reset(reset, ratio)
