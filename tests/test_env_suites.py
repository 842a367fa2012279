"""The JAX suites behind make(): craftax/, navix/, xminigrid/, popgym_arcade/.

Each suite's tests skip, with the reason, when its package is absent; the
missing-suite message and the uint8 flattening are tested without any suite.
Compiling Craftax or POPGym Arcade takes minutes on two cores, so their
check_env and step tests are slow (as is XLand's check_env) (``pytest -m slow``); ``test_check_env_passes_on_every_id``
checks every id of every installed suite.
"""

from __future__ import annotations

import functools
import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnax.environments import spaces
from hypothesis import given
from hypothesis import strategies as st

from mnemax.envs import check_env, make, names, registry, suite_adapter
from mnemax.envs.suite_adapter import LegacyGymnaxSuiteEnv, SuiteParams
from mnemax.envs.wrappers import flat_box, flatten

SUITES = {suite.prefix.rstrip("/"): suite for suite in registry.SUITES}

# One small, fast-compiling id per suite for the fast tests, and its native observation dtype.
REPRESENTATIVE = {
    "craftax": ("craftax/Craftax-Classic-Symbolic-v1", jnp.float32),
    "navix": ("navix/Navix-Empty-5x5-v0", jnp.uint8),
    "xminigrid": ("xminigrid/MiniGrid-Empty-5x5", jnp.uint8),
    "popgym_arcade": ("popgym_arcade/CountRecallEasy", jnp.uint8),
}

# The suite's own registry, to compare with the ids the adapter lists without importing it.
LIVE_IDS = {
    "craftax": lambda: ("Craftax-Symbolic-v1", "Craftax-Pixels-v1", "Craftax-Classic-Symbolic-v1", "Craftax-Classic-Pixels-v1"),
    "navix": lambda: tuple(importlib.import_module("navix").registry()),
    "xminigrid": lambda: tuple(importlib.import_module("xminigrid").registered_environments()),
    "popgym_arcade": lambda: tuple(importlib.import_module("popgym_arcade.registration").REGISTERED_ENVIRONMENTS),
}


def require(suite: str) -> None:
    """Skip, naming the extra, when ``suite`` is not installed."""
    spec = SUITES[suite]
    if not suite_adapter.suite_installed(spec.package):
        pytest.skip(f"{spec.title} is not installed (pip install \"mnemax[{spec.extra}]\").")


def rollout(env, params, actions, key=jax.random.key(0)):
    """Step ``env`` through ``actions`` [T] from a reset: stacked (reward, terminated, truncated, info)."""
    return _rollout(env, params, jnp.asarray(actions), key)


@functools.partial(jax.jit, static_argnums=0)
def _rollout(env, params, actions, key):
    def step(state, inputs):
        key, action = inputs
        _, state, reward, terminated, truncated, info = env.step(key, state, action, params)
        return state, (reward, terminated, truncated, info)

    reset_key, step_key = jax.random.split(key)
    _, state = env.reset(reset_key, params)
    return jax.lax.scan(step, state, (jax.random.split(step_key, len(actions)), actions))[1]


class CountdownLegacyEnv:
    """A gymnax-0.0.x-style env: the state counts steps; ``done`` at ``params["goal"]`` (natural) or ``params["limit"]``.

    ``info["truncated"]`` flags the time limit when the goal was not reached on the same step.
    """

    def reset_env(self, key, params):
        return jnp.zeros(1), jnp.zeros((), jnp.int32)

    def step_env(self, key, state, action, params):
        state = state + 1
        reached = state == params["goal"]
        truncated = jnp.logical_and(state >= params["limit"], jnp.logical_not(reached))
        return jnp.ones(1) * state, state, jnp.float32(1.0), jnp.logical_or(reached, truncated), {"truncated": truncated}

    def action_space(self, params):
        return spaces.Discrete(2)

    def observation_space(self, params):
        return spaces.Box(0.0, 1e6, (1,), jnp.float32)


class CountdownSuiteEnv(LegacyGymnaxSuiteEnv):
    prefix, env_id = "test/", "Countdown"

    def __init__(self):
        self.legacy_env, self.legacy_params = CountdownLegacyEnv(), {"goal": 1, "limit": 1}

    @property
    def default_params(self):
        return SuiteParams(max_steps_in_episode=1, inner=self.legacy_params)

    def split_done(self, done, inner_state, inner_params, info):
        time_limit_hit = jnp.logical_and(done, info["truncated"])
        return jnp.logical_and(done, jnp.logical_not(time_limit_hit)), time_limit_hit


COUNTDOWN = CountdownSuiteEnv()  # one instance: the jitted rollout compiles once for every example


@given(goal=st.integers(1, 12), limit=st.integers(1, 12), mnemax_limit=st.integers(1, 12))
def test_suite_endings_split_into_terminated_or_truncated(goal, limit, mnemax_limit):
    # The episode ends at the first of the goal, the suite's limit and mnemax's limit; only the goal terminates.
    params = SuiteParams(max_steps_in_episode=jnp.int32(mnemax_limit), inner={"goal": jnp.int32(goal), "limit": jnp.int32(limit)})
    _, terminated, truncated, info = rollout(COUNTDOWN, params, [0] * 13)
    end = min(goal, limit, mnemax_limit)
    first = int(np.argmax(np.logical_or(terminated, truncated)))
    assert first == end - 1
    assert bool(terminated[first]) == (goal == end)
    assert bool(truncated[first]) == (goal != end)
    assert not np.any(np.logical_and(terminated, truncated))
    assert float(info["final_observation"][first, 0]) == end  # the last observation before the auto-reset


@pytest.mark.parametrize("suite", sorted(SUITES))
def test_listed_ids_are_the_installed_suites_ids(suite):
    require(suite)
    listed = [n[len(SUITES[suite].prefix) :] for n in names() if n.startswith(SUITES[suite].prefix)]
    assert listed == list(LIVE_IDS[suite]())


# Craftax's step, POPGym Arcade's renderer and XLand's rule engine take from ten seconds to minutes to
# compile on two cores; check_env compiles each several times (jit, vmap), so these are slow tests.
# XLand's step is also covered, in one compile, by the fast meta-episode test below.
COMPILE_HEAVY = {"craftax", "popgym_arcade", "xminigrid"}


@pytest.mark.parametrize(
    "suite", [pytest.param(s, marks=pytest.mark.slow) if s in COMPILE_HEAVY else s for s in sorted(SUITES)]
)
def test_check_env_passes_and_observation_keeps_its_dtype(suite):
    require(suite)
    name, dtype = REPRESENTATIVE[suite]
    env, params = make(name, max_steps_in_episode=6)
    assert check_env(env, params, num_steps=16) == []
    obs, _ = env.reset(jax.random.key(1), params)
    assert obs.dtype == dtype == env.observation_space(params).dtype
    assert isinstance(env.action_space(params), spaces.Discrete)


@pytest.mark.parametrize("suite", sorted(SUITES))
def test_a_missing_suite_is_one_sentence_naming_the_extra(suite, monkeypatch):
    spec = SUITES[suite]
    find_spec = suite_adapter.importlib.util.find_spec
    monkeypatch.setattr(
        suite_adapter.importlib.util, "find_spec", lambda module, *a: None if module == spec.package else find_spec(module, *a)
    )
    assert not any(n.startswith(spec.prefix) for n in names())
    with pytest.raises(ValueError, match=rf"is not installed; install it with `pip install \"mnemax\[{spec.extra}\]\"") as error:
        make(REPRESENTATIVE[suite][0])
    assert "\n" not in str(error.value)


def test_navix_time_limit_is_truncated_not_terminated():
    require("navix")
    # From its start the agent needs more than three steps to reach the goal of Empty-5x5.
    env, params = make("navix/Navix-Empty-5x5-v0", max_steps=3)
    _, terminated, truncated, _ = rollout(env, params, [2, 2, 2, 2])  # forward, forward, ...
    np.testing.assert_array_equal(truncated, [False, False, True, False])
    assert not terminated.any()


def test_navix_goal_is_terminated():
    require("navix")
    env, params = make("navix/Navix-Empty-5x5-v0")
    # Empty-5x5: agent at (1, 1) facing east, goal at (3, 3): forward twice, turn clockwise, forward twice.
    reward, terminated, truncated, _ = rollout(env, params, [2, 2, 1, 2, 2])
    assert terminated[-1] and not truncated.any() and reward[-1] > 0


@pytest.mark.slow
def test_craftax_own_step_limit_is_truncated():
    require("craftax")
    env, params = make("craftax/Craftax-Classic-Symbolic-v1")
    params = params.replace(inner=params.inner.replace(max_timesteps=4))  # the suite's limit, not mnemax's
    _, terminated, truncated, _ = rollout(env, params, [0] * 5)  # NOOP
    np.testing.assert_array_equal(truncated, [False, False, False, True, False])
    assert not terminated.any()


def test_xminigrid_meta_episode_shares_a_ruleset_across_trials():
    require("xminigrid")
    env, params = make("xminigrid/XLand-MiniGrid-R1-9x9", trials=2, max_steps=3, num_rulesets=64)
    _, state = env.reset(jax.random.key(0), params)
    first_goal = state.inner["ruleset"].goal
    _, terminated, truncated, info = rollout(env, params, [5] * 6)  # "toggle" never reaches a trivial goal
    np.testing.assert_array_equal(info["trial_end"], [False, False, True, False, False, True])
    np.testing.assert_array_equal(info["trial"], [0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(truncated, [False] * 5 + [True])
    assert not terminated.any()
    assert first_goal.shape == (5,) and first_goal[0] in (1, 3)


def test_xminigrid_train_and_held_out_rulesets_are_disjoint():
    require("xminigrid")
    train, _ = make("xminigrid/XLand-MiniGrid-R1-9x9", num_rulesets=200, split="train")
    held_out, _ = make("xminigrid/XLand-MiniGrid-R1-9x9", num_rulesets=200, split="held_out")

    def rows(env):
        r = env.rulesets
        return {bytes(np.concatenate([g, t.reshape(-1)])) for g, t in zip(np.asarray(r.goals), np.asarray(r.init_tiles))}

    assert train.rulesets.num_rulesets() == 160 and held_out.rulesets.num_rulesets() == 40
    assert not rows(train) & rows(held_out)


def test_xminigrid_unknown_benchmark_names_the_choices():
    require("xminigrid")
    with pytest.raises(ValueError, match="no benchmark 'nope'; choose one of trivial-local, trivial-21k"):
        make("xminigrid/XLand-MiniGrid-R1-9x9", benchmark="nope")


@given(st.lists(st.integers(0, 255), min_size=6, max_size=6))
def test_uint8_observations_flatten_into_the_unit_interval(values):
    space = spaces.Box(0, 255, (2, 3), jnp.uint8)
    x = jnp.asarray(values, jnp.uint8).reshape(2, 3)
    flat = flatten(space, x)
    np.testing.assert_allclose(flat, np.asarray(values, np.float32) / 255.0, rtol=1e-6)
    box = flat_box(space)
    assert float(box.low.min()) == 0.0 and float(box.high.max()) == 1.0


@pytest.mark.slow
@pytest.mark.parametrize("suite", sorted(SUITES))
def test_check_env_passes_on_every_id(suite):
    require(suite)
    failures = {}
    for name in (n for n in names() if n.startswith(SUITES[suite].prefix)):
        env, params = make(name, max_steps_in_episode=6)
        findings = check_env(env, params, num_steps=16, raise_on_error=False)
        if findings:
            failures[name] = [f.message for f in findings]
    assert not failures


def test_xminigrid_is_an_incontext_task_source():
    """``make_meta_env`` on an XLand id: the adapter's own meta-episodes, train and held-out rulesets, XLand's step limit."""
    from mnemax.agents.incontext import make_meta_env, max_meta_episode_steps

    require("xminigrid")
    name = "xminigrid/XLand-MiniGrid-R1-9x9"
    train, params = make_meta_env(name, 2, episode_limit=3, num_rulesets=64)
    held_out, _ = make_meta_env(name, 2, eval_tasks=True, episode_limit=3, num_rulesets=64)
    assert (train._env.split, held_out._env.split, train._env.trials) == ("train", "held_out", 2)
    assert train._env.xland_params.max_steps == 3 and max_meta_episode_steps(params, 2, name) == 6
    flat_obs = int(np.prod(train._env.observation_space(params).shape))
    assert train.observation_space(params).shape == (flat_obs + train.action_space(params).n + 2,)
    # evaluate_trials builds its env inside the caller's jit: the rulesets must still be drawn as concrete arrays.
    obs = jax.eval_shape(lambda key: make_meta_env(name, 2, eval_tasks=True, num_rulesets=64)[0].reset(key)[0], jax.random.key(0))
    assert obs.shape == train.observation_space(params).shape


# Cores of each kind (gated recurrence, diagonal SSM, attention), at a tiny width, on each suite's representative id.
SUITE_CORES = ("gru", "s5", "transformer")
TINY_TRAINING = [
    "agent.num_envs=4",
    "agent.num_steps=8",
    "agent.update_epochs=1",
    "agent.num_minibatches=1",
    "backbone.features=16",
    "total_steps=64",
    "progress=false",
    "checkpoint_every=0",
]


@pytest.mark.slow
@pytest.mark.parametrize("suite", sorted(SUITES))
@pytest.mark.parametrize("core", SUITE_CORES)
def test_every_kind_of_core_trains_on_every_suite_through_the_runner(suite, core, tmp_path):
    """`scripts/train.py env=<suite id> backbone=<core>` trains and writes finite metrics (any backbone, any suite)."""
    require(suite)
    from mnemax.experiment.composition import load_run_config
    from mnemax.experiment.run_folder import load_metrics
    from mnemax.experiment.runner import run

    config = load_run_config([f"env={REPRESENTATIVE[suite][0]}", f"backbone={core}", *TINY_TRAINING, f"run_dir={tmp_path}"])
    run(config)
    metrics = load_metrics(tmp_path)
    assert metrics["env_steps"].max() == 64
    assert np.isfinite(metrics["policy_loss"]).all() and np.isfinite(metrics["value_loss"]).all()
