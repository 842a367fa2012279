"""Agents: PPO for feed-forward and memory policies (and, beside it, Dreamer-style and LLM agents)."""

from mnemax.agents.ppo import (
    HParams,
    PPOConfig,
    RunnerState,
    Trainer,
    make_ppo_env,
    make_rollout,
    make_train,
    make_trainer,
    runner_state_shardings,
)
from mnemax.agents.evaluation import Episodes, make_evaluate, trial_returns
from mnemax.agents.returns import generalized_advantage_estimate

__all__ = [
    "Episodes",
    "HParams",
    "PPOConfig",
    "RunnerState",
    "Trainer",
    "generalized_advantage_estimate",
    "make_evaluate",
    "make_ppo_env",
    "make_rollout",
    "make_train",
    "make_trainer",
    "runner_state_shardings",
    "trial_returns",
]
