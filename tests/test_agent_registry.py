"""The agent seam: an agent defined here, registered by name, runs through scripts/train.py without a file in agents/ or configs/."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import pytest

from mnemax.agents import Trainer, agent_names, register_agent
from mnemax.agents.registry import agent_entry, agent_for_config
from mnemax.agents.trainer import action_space, episode_metrics, make_train
from mnemax.envs import make as make_env
from mnemax.experiment.composition import check_overrides, group_options, load_run_config
from mnemax.experiment.config import ConfigError

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train.py"


@dataclasses.dataclass(frozen=True)
class RandomPolicyConfig:
    """Uniform random actions: an agent that learns nothing, so its numbers are the env's alone."""

    total_steps: int = 64
    num_envs: int = 2
    num_steps: int = 8

    @property
    def num_updates(self) -> int:
        return self.total_steps // (self.num_envs * self.num_steps)


class RandomPolicyState(NamedTuple):
    env_state: Any
    returns: jax.Array  # [B]
    lengths: jax.Array  # [B]
    rng: jax.Array
    update_count: jax.Array


@register_agent("random_policy", RandomPolicyConfig, make_env=make_env)
def make_random_policy(config: RandomPolicyConfig, env: Any, env_params: Any) -> Trainer:
    actions = action_space(env, env_params, "random_policy")
    step_envs = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def init(key):
        reset_key, key = jax.random.split(key)
        _, env_state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(reset_key, config.num_envs), env_params)
        zeros = jnp.zeros((config.num_envs,), jnp.float32)
        return RandomPolicyState(env_state, zeros, zeros, key, jnp.zeros((), jnp.int32))

    def step(state, key):
        action_key, env_key = jax.random.split(key)
        action = jax.random.randint(action_key, (config.num_envs,), 0, actions.size)
        _, env_state, reward, terminated, truncated, _ = step_envs(
            jax.random.split(env_key, config.num_envs), state.env_state, action, env_params
        )
        done = terminated | truncated
        returns, lengths = state.returns + reward, state.lengths + 1.0
        state = state._replace(env_state=env_state, returns=jnp.where(done, 0.0, returns), lengths=jnp.where(done, 0.0, lengths))
        return state, (done, returns, lengths)

    def update(state):
        rng, key = jax.random.split(state.rng)
        state, (done, returns, lengths) = jax.lax.scan(step, state, jax.random.split(key, config.num_steps))
        count = state.update_count + 1
        metrics = {"env_steps": (count * config.num_envs * config.num_steps).astype(jnp.float32), **episode_metrics(done, returns, lengths)}
        return state._replace(rng=rng, update_count=count), metrics

    return Trainer(init=init, update=update, num_updates=config.num_updates)


def test_a_registered_agent_is_a_name_like_the_built_in_ones():
    assert {"ppo", "dreamer", "random_policy"} <= set(agent_names())
    assert "random_policy" in group_options("agent")  # agent=random_policy needs no YAML file
    assert agent_for_config(RandomPolicyConfig()) is agent_entry("random_policy")
    env, params = make_env("CartPole-v1")
    _, metrics = jax.jit(make_train(RandomPolicyConfig(total_steps=32), env, params))(jax.random.key(0))
    assert metrics["env_steps"].tolist() == [16.0, 32.0]
    with pytest.raises(ConfigError, match=r"Unknown agent 'random_polcy'; did you mean 'random_policy'\?"):
        check_overrides(["agent=random_polcy"])
    with pytest.raises(ConfigError, match=r"Unknown key 'agent.num_env'; did you mean 'num_envs'\?"):
        check_overrides(["agent=random_policy", "agent.num_env=3"])
    config = load_run_config(["agent=random_policy", "agent.num_envs=4", "backbone=none", "env=CartPole-v1"])
    assert config.agent == RandomPolicyConfig(total_steps=config.experiment.total_steps, num_envs=4)


def test_scripts_train_runs_a_registered_agent(tmp_path, monkeypatch, capsys):
    spec = importlib.util.spec_from_file_location("train_script", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    run_dir = tmp_path / "run"
    argv = ["agent=random_policy", "backbone=none", "env=CartPole-v1", "total_steps=64", f"run_dir={run_dir}", "progress=false"]
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), *argv])
    monkeypatch.chdir(tmp_path)
    script.main()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["agent"], summary["status"], summary["env_steps"], summary["num_updates"]) == ("random_policy", "finished", 64.0, 4)
    assert "run folder:" in capsys.readouterr().out
