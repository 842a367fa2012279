"""Agents behind one :class:`Trainer` type, registered by name: PPO for feed-forward and memory policies, Dreamer, LLM agents."""

from mnemax.agents.ppo import (
    HParams,
    PPOConfig,
    RunnerState,
    make_ppo_env,
    make_rollout,
    make_trainer,
    runner_state_shardings,
)
from mnemax.agents.registry import agent_names, register_agent
from mnemax.agents.trainer import Trainer, make_train
from mnemax.agents.evaluation import Episodes, make_evaluate, trial_returns
from mnemax.agents.returns import generalized_advantage_estimate

__all__ = [
    "Episodes",
    "HParams",
    "PPOConfig",
    "RunnerState",
    "Trainer",
    "agent_names",
    "generalized_advantage_estimate",
    "make_evaluate",
    "make_ppo_env",
    "make_rollout",
    "make_train",
    "make_trainer",
    "register_agent",
    "runner_state_shardings",
    "trial_returns",
]
