"""Slow learning checks: PPO must actually solve tasks, feed-forward and with memory (`pytest -m slow`)."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from mnemax.agents import PPOConfig, make_ppo_env, make_train
from mnemax.experiment.composition import load_run_config

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


def shipped_config(env_name: str, backbone: str, total_steps: int) -> PPOConfig:
    """The PPO config ``python scripts/train.py env=ENV backbone=BACKBONE total_steps=N`` runs (configs/)."""
    overrides = [f"env={env_name}", f"backbone={backbone}", f"total_steps={total_steps}"]
    return load_run_config(overrides).agent


# Each memory check trains the shipped defaults (configs/agent/ppo.yaml: 16 envs x 128 steps,
# 4 epochs x 4 minibatches, lr 1e-3 annealed, 64-wide tanh encoder and heads; configs/backbone/
# s5.yaml: 2 layers x 64, state 64; gru.yaml: 64 units) for 5e5 env steps with seed 0, the run
# `python scripts/train.py env=ENV backbone=BACKBONE` does.
# POPGym returns lie in [-1, 1]; a memoryless policy scores about -0.5 on RepeatPreviousEasy
# (chance of naming the suit seen 4 steps ago) and about 0.4 on PositionOnlyCartPoleEasy.
# Measured (mean return over the last 10% of updates): RepeatPreviousEasy S5 0.994, GRU 0.996;
# PositionOnlyCartPoleEasy S5 0.997, GRU 0.971.
TOTAL_STEPS = 500_000
TARGET = 0.9
TASKS = ("popgym/PositionOnlyCartPoleEasy", "popgym/RepeatPreviousEasy")


@pytest.mark.parametrize("backbone", ["gru", "s5"])
@pytest.mark.parametrize("env_name", TASKS)
def test_memory_ppo_solves_popgym_easy_tasks_with_shipped_defaults(env_name, backbone):
    config = shipped_config(env_name, backbone, TOTAL_STEPS)
    env, params = make_ppo_env(env_name)
    _, metrics = jax.jit(make_train(config, env, params))(jax.random.key(0))
    assert final_return(metrics) >= TARGET
