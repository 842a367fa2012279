"""Acting with trained PPO parameters: ``make_evaluate`` and the per-trial returns of MetaRL meta-episodes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mnemax.agents import Episodes, PPOConfig, make_evaluate, make_trainer, trial_returns
from mnemax.agents.incontext import evaluate_trials, make_meta_env, max_meta_episode_steps
from mnemax.backbones import BackboneSpec

TRIALS, LIMIT = 2, 8
TINY_S5 = PPOConfig(
    total_steps=64, num_envs=4, num_steps=16, update_epochs=1, num_minibatches=1, head_sizes=(8,),
    backbone=BackboneSpec.from_dict("s5", 8, {"num_layers": 1}),
)


def episodes_from(rewards, trial, done) -> Episodes:
    rewards, trial, done = (jnp.asarray(x) for x in (rewards, trial, done))
    return Episodes(rewards.astype(jnp.float32), done, jnp.zeros_like(done), {"trial": trial})


STEPS = 16
jitted_trial_returns = jax.jit(trial_returns, static_argnums=1)


@given(st.lists(st.integers(1, 4), min_size=3, max_size=3), st.integers(0, 2**16))
def test_trial_returns_sum_the_rewards_of_each_trial_of_the_first_meta_episode(lengths, seed):
    """Build one env's steps trial by trial: the result must be each trial's reward sum, later steps ignored."""
    rng = np.random.default_rng(seed)
    extra = STEPS - sum(lengths)  # steps of the next meta-episode, which must not count
    trial = np.concatenate([np.full(n, i) for i, n in enumerate(lengths)] + [np.arange(extra) % 3])
    rewards = rng.normal(size=trial.shape)
    done = np.zeros(trial.shape, bool)
    done[sum(lengths) - 1] = True
    returns, complete = jitted_trial_returns(episodes_from(rewards[:, None], trial[:, None], done[:, None]), 3)
    bounds = np.cumsum([0, *lengths])
    expected = [rewards[a:b].sum() for a, b in zip(bounds[:-1], bounds[1:])]
    np.testing.assert_allclose(np.asarray(returns)[0], expected, rtol=1e-5, atol=1e-5)
    assert bool(complete[0])


def test_trial_returns_flags_unfinished_meta_episodes_and_needs_the_trial_info():
    returns, complete = trial_returns(episodes_from(np.ones((3, 1)), np.zeros((3, 1), int), np.zeros((3, 1), bool)), 2)
    assert not bool(complete[0]) and float(returns[0, 0]) == 3.0
    with pytest.raises(ValueError, match="info_keys"):
        trial_returns(Episodes(jnp.zeros((2, 1)), jnp.zeros((2, 1), bool), jnp.zeros((2, 1), bool), {}), 2)


@pytest.fixture(scope="module")
def meta_setup():
    env, params = make_meta_env("CartPole-v1", TRIALS, episode_limit=LIMIT)
    state = jax.jit(make_trainer(TINY_S5, env, params).init)(jax.random.key(0))
    return env, params, state


def test_evaluate_plays_whole_meta_episodes_on_held_out_tasks(meta_setup):
    env, params, state = meta_setup
    eval_env, eval_params = make_meta_env("CartPole-v1", TRIALS, eval_tasks=True, episode_limit=LIMIT)
    steps = max_meta_episode_steps(eval_params, TRIALS)
    evaluate = jax.jit(make_evaluate(TINY_S5, eval_env, eval_params, 3, steps, info_keys=("trial", "task_id")))
    episodes = evaluate(state, jax.random.key(1))
    assert episodes.rewards.shape == (steps, 3) and episodes.info["trial"].shape == (steps, 3)
    # Held-out task ids have the top bit set; the training env never draws them.
    assert np.all(np.asarray(episodes.info["task_id"]) >= 2**31)
    returns, complete = trial_returns(episodes, TRIALS)
    assert bool(jnp.all(complete))
    # CartPole pays 1 per step, so each trial returns between 1 and the time limit.
    assert np.all((np.asarray(returns) >= 1) & (np.asarray(returns) <= LIMIT))
    again = evaluate(state, jax.random.key(1))
    np.testing.assert_array_equal(np.asarray(again.rewards), np.asarray(episodes.rewards))


def test_evaluate_trials_gives_mean_and_standard_error_per_trial(meta_setup):
    _, _, state = meta_setup
    key = jax.random.key(2)
    mean, err = evaluate_trials(TINY_S5, state, "CartPole-v1", TRIALS, key, num_envs=4, episode_limit=LIMIT)
    assert mean.shape == err.shape == (TRIALS,)
    assert np.all(np.isfinite(np.asarray(mean))) and np.all(np.asarray(err) >= 0)


def test_evaluate_rejects_empty_shapes(meta_setup):
    env, params, _ = meta_setup
    with pytest.raises(ValueError, match="positive integers"):
        make_evaluate(TINY_S5, env, params, 0, 10)
