"""Slow learning checks: PPO must actually solve tasks, feed-forward and with memory (`pytest -m slow`)."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from mnemax.agents import PPOConfig, make_ppo_env, make_train
from mnemax.backbones import BackboneSpec

pytestmark = pytest.mark.slow


def final_return(metrics, fraction: float = 0.1) -> float:
    """Mean episode return over the last ``fraction`` of updates (and over seeds, if vmapped)."""
    returns = np.asarray(metrics["episode_return"])
    tail = max(1, int(returns.shape[-1] * fraction))
    return float(np.nanmean(returns[..., -tail:]))


def test_feed_forward_ppo_solves_cartpole_at_purejaxrl_defaults():
    env, params = make_ppo_env("CartPole-v1")
    config = PPOConfig()  # purejaxrl's CartPole settings, 5e5 steps
    keys = jax.random.split(jax.random.key(0), 2)
    _, metrics = jax.jit(jax.vmap(make_train(config, env, params)))(keys)
    assert final_return(metrics, 0.05) >= 475.0


# A small memory PPO (32 envs x 128 steps, 4 x 4 minibatches, width 64) trained for 1e6 steps.
MEMORY = PPOConfig(
    total_steps=1_000_000,
    num_envs=32,
    num_steps=128,
    learning_rate=1e-3,
    ent_coef=0.0,
    encoder_sizes=(64,),
    head_sizes=(64,),
    activation="leaky_relu",
)
BACKBONES = {"gru": BackboneSpec("gru", 64), "s5": BackboneSpec.from_dict("s5", 64, {"num_layers": 2})}
# POPGym returns lie in [-1, 1]; a memoryless policy scores about -0.5 on RepeatPreviousEasy
# (chance of naming the suit seen 4 steps ago) and about 0.4 on PositionOnlyCartPoleEasy.
# Measured with seed 0 (last 10% of updates): GRU 1.00 and 0.98, S5 0.50 and 0.99. The S5
# stack at this size and budget recalls only part of RepeatPreviousEasy; its target says so.
TARGETS = {
    ("popgym/RepeatPreviousEasy", "gru"): 0.9,
    ("popgym/RepeatPreviousEasy", "s5"): 0.45,
    ("popgym/PositionOnlyCartPoleEasy", "gru"): 0.9,
    ("popgym/PositionOnlyCartPoleEasy", "s5"): 0.9,
}


@pytest.mark.parametrize("env_name, backbone", sorted(TARGETS))
def test_memory_ppo_solves_popgym_easy_tasks(env_name, backbone):
    import dataclasses

    env, params = make_ppo_env(env_name)
    config = dataclasses.replace(MEMORY, backbone=BACKBONES[backbone])
    _, metrics = jax.jit(make_train(config, env, params))(jax.random.key(0))
    assert final_return(metrics) >= TARGETS[env_name, backbone]
