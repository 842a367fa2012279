"""The benchmark's measuring tools: interleaved timing and the memorax peer (scripts/benchmarks/)."""

import dataclasses
import sys
from pathlib import Path

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from benchmarks.memorax_peer import FiveValueStep  # noqa: E402
from benchmarks.timing import measure_interleaved  # noqa: E402


def test_interleaved_measurements_have_one_call_per_case_and_round():
    small, large = jnp.ones((8, 8)), jnp.ones((256, 256))
    cases = [(lambda x: x @ x, (small,)), (lambda x: jnp.tanh(x @ x) @ x, (large,))]
    quick, slow = measure_interleaved(cases, rounds=4, min_seconds=0.02)
    assert len(quick.seconds) == len(slow.seconds) >= 4
    assert min(sum(quick.seconds), sum(slow.seconds)) >= 0.02
    for m in (quick, slow):
        assert m.median_seconds == pytest.approx(float(np.median(m.seconds)))
        assert m.best_seconds == min(m.seconds) and m.compile_seconds > 0


def test_five_value_step_ends_an_episode_on_termination_or_truncation():
    env, long_episodes = gymnax.make("CartPole-v1")
    short_episodes = long_episodes.replace(max_steps_in_episode=3)
    peer = FiveValueStep(env)
    key = jax.random.key(0)
    obs, state = env.reset(key, short_episodes)
    ends = []
    for t in range(40):
        step_key = jax.random.fold_in(key, t)
        # Balance under a 3-step limit (time-limit ends), then push one way until the pole falls (terminations).
        action, params = (t % 2, short_episodes) if t < 10 else (0, long_episodes)
        expected = env.step(step_key, state, action, params)
        obs_, state_, reward, done, info = peer.step(step_key, state, action, params)
        np.testing.assert_array_equal(obs_, expected[0])
        assert float(reward) == float(expected[2]) and info == {}
        assert bool(done) == bool(expected[3] | expected[4])
        ends.append((bool(expected[3]), bool(expected[4])))
        state = state_
    assert any(trunc and not term for term, trunc in ends), "the rollout should contain a time-limit end"
    assert any(term for term, _ in ends), "the rollout should contain a termination"


def test_memorax_peer_runs_the_same_number_of_env_steps_as_mnemax():
    pytest.importorskip("memorax", reason="memorax is the benchmark's peer, installed by the `bench` extra")
    from benchmarks.memorax_peer import memorax_case
    from benchmarks.ppo import GRU_128, PUREJAXRL_RNN

    from mnemax.agents import make_ppo_env

    env, params = make_ppo_env("popgym/RepeatPreviousEasy")
    config = dataclasses.replace(PUREJAXRL_RNN, backbone=GRU_128, total_steps=2 * PUREJAXRL_RNN.steps_per_update)
    case = memorax_case(config, env, params, updates=2)
    key, state = jax.jit(case.run)(*case.args)
    assert case.env_steps == 2 * config.steps_per_update
    assert int(state.step) == int(case.args[1].step) + case.env_steps
    moved = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), state.actor_params, case.args[1].actor_params)
    assert any(jax.tree.leaves(moved)), "two PPO updates should change the actor's parameters"
