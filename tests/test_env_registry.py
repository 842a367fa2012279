"""mnemax.envs.make / register / names: gymnax ids, popgym/*, brax/*, user envs, kwargs and errors."""

from __future__ import annotations

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnax.environments import environment, spaces
from hypothesis import given
from hypothesis import strategies as st

from mnemax.envs import BRAX_ENV_NAMES, make, names, register
from mnemax.envs import registry
from mnemax.envs.popgym import POPGYM_ENVS


class TinyEnv(environment.Environment):
    """Reachable as ``"test_env_registry:TinyEnv"``; ``size`` sets the observation length."""

    def __init__(self, size: int = 2):
        self.size = size

    @property
    def default_params(self):
        return environment.EnvParams(max_steps_in_episode=3)

    def reset_env(self, key, params):
        return jnp.zeros(self.size), environment.EnvState(time=jnp.int32(0))

    def step_env(self, key, state, action, params):
        state = environment.EnvState(time=state.time + 1)
        return jnp.zeros(self.size), state, jnp.float32(0.0), jnp.bool_(False), {}

    def action_space(self, params=None):
        return spaces.Discrete(2)

    def observation_space(self, params=None):
        return spaces.Box(0.0, 1.0, (self.size,), jnp.float32)


@pytest.fixture
def clean_user_registry():
    before = dict(registry._USER_ENVS)
    yield
    registry._USER_ENVS.clear()
    registry._USER_ENVS.update(before)


@pytest.mark.parametrize("name", [n for n in gymnax.registered_envs if n != "MNISTBandit-bsuite"])
def test_every_gymnax_id_builds(name):
    # MNISTBandit-bsuite downloads MNIST when constructed; tests run offline.
    env, params = make(name)
    assert jax.tree.all(jax.tree.map(np.array_equal, params, env.default_params))
    assert hasattr(env, "step") and hasattr(env, "reset")


def test_names_list_every_kind():
    listed = names()
    assert set(gymnax.registered_envs) <= set(listed)
    assert {f"popgym/{name}" for name in POPGYM_ENVS} <= set(listed)
    assert {f"brax/{name}" for name in BRAX_ENV_NAMES} <= set(listed)
    assert len(listed) == len(set(listed))


@given(st.integers(1, 10_000))
def test_params_keywords_override_params(max_steps):
    env, params = make("CartPole-v1", max_steps_in_episode=max_steps, gravity=3.0)
    assert params.max_steps_in_episode == max_steps and params.gravity == 3.0
    assert env.default_params.max_steps_in_episode == 500  # the env itself is unchanged


def test_constructor_keywords_go_to_the_constructor():
    env, params = make("MemoryChain-bsuite", num_bits=3, memory_length=7)
    assert env.num_bits == 3 and params.memory_length == 7
    assert env.observation_space(params).shape == (5,)


def test_unknown_keyword_names_the_valid_ones():
    with pytest.raises(ValueError, match=r"no option\(s\) 'max_step'.*max_steps_in_episode"):
        make("CartPole-v1", max_step=10)


def test_unknown_name_suggests_the_closest():
    with pytest.raises(ValueError, match=r"Unknown env 'CartPole-v2'; did you mean 'CartPole-v1'"):
        make("CartPole-v2")
    with pytest.raises(ValueError, match="popgym/RepeatPreviousEasy"):
        make("popgym/RepeatPrevousEasy")


def test_import_path_builds_a_user_class_with_kwargs():
    env, params = make(f"{TinyEnv.__module__}:TinyEnv", size=5, max_steps_in_episode=9)
    assert isinstance(env, TinyEnv) and env.size == 5 and params.max_steps_in_episode == 9
    env, _ = make("gymnax.environments.classic_control.cartpole:CartPole")
    assert env.name == "CartPole-v1"


def test_import_path_errors_are_one_sentence():
    with pytest.raises(ValueError, match="Cannot import module 'no_such_module_xyz'"):
        make("no_such_module_xyz:Env")
    with pytest.raises(ValueError, match="has no attribute 'Missing'"):
        make(f"{TinyEnv.__module__}:Missing")


def test_register_adds_a_name(clean_user_registry):
    register("tiny-v0", lambda **kwargs: (TinyEnv(**kwargs), environment.EnvParams(max_steps_in_episode=4)))
    env, params = make("tiny-v0", size=3)
    assert env.size == 3 and params.max_steps_in_episode == 4
    assert "tiny-v0" in names()
    with pytest.raises(ValueError, match="already registered"):
        register("tiny-v0", TinyEnv)
    with pytest.raises(ValueError, match="already registered"):
        register("CartPole-v1", TinyEnv)


def test_factory_must_return_an_env(clean_user_registry):
    register("not-an-env", lambda: object())
    with pytest.raises(TypeError, match="lacks reset, step, default_params"):
        make("not-an-env")


@pytest.mark.parametrize("name", list(POPGYM_ENVS))
def test_every_popgym_name_builds(name):
    env, params = make(f"popgym/{name}")
    assert hasattr(env.observation_space(params), "shape") and hasattr(env, "step")  # check_env runs them


# -- Brax ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def brax_pendulum():
    env, params = make("brax/inverted_pendulum", max_steps=4)

    @jax.jit
    def rollout(key):
        obs, state = env.reset(key, params)
        zero = jnp.zeros(env.action_space(params).shape)

        def body(state, step_key):
            obs, state, reward, terminated, truncated, info = env.step(step_key, state, zero, params)
            return state, (obs, reward, terminated, truncated, info["final_observation"])

        return obs, jax.lax.scan(body, state, jax.random.split(key, 9))[1]

    return env, params, rollout


def test_brax_adapter_spaces_and_time_limit(brax_pendulum):
    env, params, rollout = brax_pendulum
    assert params.max_steps_in_episode == 4
    assert env.observation_space(params).shape == (4,)
    action_space = env.action_space(params)
    assert isinstance(action_space, spaces.Box) and action_space.shape == (1,)
    np.testing.assert_allclose([action_space.low, action_space.high], [[-3.0], [3.0]])
    first, (obs, reward, terminated, truncated, final) = jax.device_get(rollout(jax.random.PRNGKey(0)))
    # With zero torque the pendulum stays up for 4 steps: the time limit truncates, nothing terminates.
    np.testing.assert_array_equal(truncated, [False, False, False, True] * 2 + [False])
    assert not terminated.any() and reward.dtype == np.float32
    # Auto-reset: the step after truncation starts a new episode; final_observation holds the old one.
    assert not np.allclose(final[3], obs[3])
    np.testing.assert_array_equal(final[:3], obs[:3])


def test_brax_params_keyword_overrides_the_time_limit():
    _, params = make("brax/inverted_pendulum", max_steps_in_episode=7)
    assert params.max_steps_in_episode == 7


def test_brax_unknown_option_is_reported():
    with pytest.raises(ValueError, match="rejected an option"):
        make("brax/inverted_pendulum", no_such_option=1)
