"""The agents the runner can train, by the name configs give them (``agent=ppo``).

Each entry says three things the runner needs and nothing more: the agent's
frozen config class (what :mod:`mnemax.experiment.config` converts
``agent: {...}`` into), ``make_trainer(config, env, env_params) -> Trainer``
(``init(key) -> state``, ``update(state) -> (state, metrics)``, ``num_updates``),
and ``make_env(env_spec, config) -> (env, env_params)``, the environment as
that agent trains on it (PPO adds its observation wrappers there).

Entries load lazily so that importing the experiment layer does not import
every agent; :func:`register_agent` adds one (a user's own agent, or a test's).
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any, Callable


@dataclasses.dataclass(frozen=True)
class AgentEntry:
    """How the runner builds one agent: config class, trainer factory, env factory."""

    config_class: type
    make_trainer: Callable[[Any, Any, Any], Any]
    make_env: Callable[[Any, Any], tuple[Any, Any]]


def _ppo() -> AgentEntry:
    from mnemax.agents.ppo import PPOConfig, make_ppo_env, make_trainer

    def make_env(env_spec: Any, config: PPOConfig) -> tuple[Any, Any]:
        return make_ppo_env(env_spec.name, **dict(env_spec.kwargs))

    return AgentEntry(config_class=PPOConfig, make_trainer=make_trainer, make_env=make_env)


def _dreamer() -> AgentEntry:
    from mnemax.agents.dreamer import DreamerConfig, make_dreamer_env, make_trainer

    def make_env(env_spec: Any, config: DreamerConfig) -> tuple[Any, Any]:
        return make_dreamer_env(env_spec.name, **dict(env_spec.kwargs))

    return AgentEntry(config_class=DreamerConfig, make_trainer=make_trainer, make_env=make_env)


_LOADERS: dict[str, Callable[[], AgentEntry]] = {"ppo": _ppo, "dreamer": _dreamer}


def register_agent(name: str, entry: AgentEntry | Callable[[], AgentEntry]) -> None:
    """Make ``agent=<name>`` (``agent: {name: <name>}``) train ``entry``; a callable is loaded on first use."""
    _LOADERS[name] = entry if callable(entry) and not isinstance(entry, AgentEntry) else (lambda: entry)


def agent_names() -> list[str]:
    """The registered agent names, sorted."""
    return sorted(_LOADERS)


def agent_entry(name: str) -> AgentEntry:
    """The entry for ``name``; an unknown name is one sentence with the valid ones."""
    from mnemax.experiment.config import ConfigError

    if name not in _LOADERS:
        close = difflib.get_close_matches(name, list(_LOADERS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else "."
        raise ConfigError(f"Unknown agent {name!r}{hint} Valid agents: {', '.join(agent_names())}.")
    return _LOADERS[name]()
