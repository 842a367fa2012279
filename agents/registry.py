"""Agents by name: each agent module registers its ``make_trainer`` with its config class.

::

    @register_agent("ppo", PPOConfig, make_env=make_ppo_env)
    def make_trainer(config: PPOConfig, env, env_params) -> Trainer: ...

The experiment layer looks agents up here by the name configs give them
(``agent=ppo``): the config class is what ``agent: {...}`` is converted into,
``make_env(name, **kwargs) -> (env, env_params)`` builds the env as that agent
trains on it (default :func:`mnemax.envs.make`), and ``make_trainer(config, env,
env_params) -> Trainer`` builds the agent. The built-in agents' modules are
imported on the first lookup, so importing the registry imports no agent.
Adding an agent: a module in ``agents/`` with the decorator, its name in
:data:`BUILT_IN_AGENTS`, and ``configs/agent/<name>.yaml``.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable, NamedTuple

from mnemax.configs.choices import unknown_name_message
from mnemax.envs import make as make_env

BUILT_IN_AGENTS = ("mnemax.agents.ppo", "mnemax.agents.dreamer")
"""Modules whose import registers mnemax's own agents."""

TrainerFactory = Callable[..., Any]
EnvFactory = Callable[..., tuple[Any, Any]]


class AgentEntry(NamedTuple):
    """A registered agent: its config class, its trainer factory and how it builds its env."""

    name: str
    config_class: type
    make_trainer: TrainerFactory
    make_env: EnvFactory


_AGENTS: dict[str, AgentEntry] = {}


def register_agent(name: str, config_class: type, *, make_env: EnvFactory = make_env) -> Callable[[TrainerFactory], TrainerFactory]:
    """Decorator on ``make_trainer(config, env, env_params) -> Trainer``: ``agent=<name>`` trains it.

    ``config_class`` must be a frozen dataclass; its fields are the keys of ``agent: {...}``
    (``total_steps`` and ``backbone``/``world_model`` fields are filled from the top level).
    """
    if not (dataclasses.is_dataclass(config_class) and config_class.__dataclass_params__.frozen):
        raise TypeError(f"An agent's config must be a frozen dataclass (hashable, static under jit), got {config_class!r}.")

    def add(make_trainer: TrainerFactory) -> TrainerFactory:
        _AGENTS[name] = AgentEntry(name, config_class, make_trainer, make_env)
        return make_trainer

    return add


def _load_built_in() -> None:
    for module in BUILT_IN_AGENTS:
        importlib.import_module(module)


def agent_names() -> list[str]:
    """The registered agent names, sorted."""
    _load_built_in()
    return sorted(_AGENTS)


def agent_entry(name: str) -> AgentEntry:
    """The agent registered as ``name``; an unknown name is one sentence with the valid ones."""
    _load_built_in()
    if name not in _AGENTS:
        raise ValueError(unknown_name_message("agent", name, _AGENTS))
    return _AGENTS[name]


def agent_for_config(config: Any) -> AgentEntry:
    """The agent whose config class ``config`` is an instance of."""
    _load_built_in()
    for entry in _AGENTS.values():
        if type(config) is entry.config_class:
            return entry
    raise TypeError(f"{type(config).__name__} is not the config of a registered agent; register one with @register_agent.")
