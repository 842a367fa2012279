"""Hydra composition of ``mnemax.configs``: every env name as a config option, and overrides checked first.

``env=<name>`` works for every name :func:`mnemax.envs.names` lists (every
gymnax id and every ``popgym/...`` port) without a YAML file per env:
:func:`register_env_configs` stores ``{name: <name>, kwargs: {}}`` for each in
Hydra's ``ConfigStore`` under group ``env``. A YAML file in ``configs/env/``
with the same name (``configs/env/popgym/RepeatPreviousEasy.yaml``) takes its
place, for envs whose defaults a config should pin. A user's own env needs no
entry: ``env.name=my_package.my_module:MyEnv``.

:func:`check_overrides` reads the command line before Hydra does, so that a
misspelt key or option is one sentence with the valid choices rather than
Hydra's multi-line composition error; it also turns ``backbone.options.K=V``
and ``env.kwargs.K=V`` into ``++`` overrides, so any option of the chosen
backbone or env can be set whether or not the YAML lists it.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.resources
from pathlib import Path
from typing import Any, Sequence

from mnemax.experiment.config import (
    NO_BACKBONE,
    TOP_LEVEL_SECTIONS,
    ConfigError,
    ExperimentConfig,
    RunConfig,
    run_config_from_dict,
    unknown_key_message,
)

CONFIG_MODULE = "mnemax.configs"
CONFIG_NAME = "config"
# Keys under these sections are free-form (checked when the backbone or env is built).
_OPEN_SECTIONS = ("backbone.options", "env.kwargs")


def configs_dir() -> Path:
    """The directory of the YAML configs shipped inside the installed package."""
    return Path(str(importlib.resources.files(CONFIG_MODULE)))


def yaml_options(group: str) -> list[str]:
    """Options of a config group that have a YAML file (``popgym/RepeatFirstEasy`` for nested files)."""
    root = configs_dir() / group
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml")) if root.is_dir() else []


def env_options() -> list[str]:
    """Every ``env=`` choice: registered env names plus YAML-only ones."""
    from mnemax.envs import names

    return sorted(set(names()) | set(yaml_options("env")))


def group_options(group: str) -> list[str]:
    """The valid choices of ``agent=``, ``backbone=`` or ``env=``."""
    if group == "env":
        return env_options()
    return yaml_options(group)


def register_env_configs() -> None:
    """Store ``{name, kwargs: {}}`` under group ``env`` for every registered env without a YAML file."""
    from hydra.core.config_store import ConfigStore
    from mnemax.envs import names

    store = ConfigStore.instance()
    with_yaml = set(yaml_options("env"))
    for name in names():
        if name in with_yaml:
            continue
        folder, _, leaf = f"env/{name}".rpartition("/")
        store.store(group=folder, name=leaf, node={"name": name, "kwargs": {}}, provider="mnemax.envs")


def _default_choice(group: str) -> str:
    from omegaconf import OmegaConf

    defaults = OmegaConf.to_container(OmegaConf.load(configs_dir() / f"{CONFIG_NAME}.yaml")).get("defaults", [])
    for item in defaults:
        if isinstance(item, dict) and group in item:
            return str(item[group])
    raise ConfigError(f"configs/{CONFIG_NAME}.yaml names no default for group {group!r}; pick one with {group}=NAME.")


def _check_choice(group: str, choice: Any) -> None:
    options = group_options(group)
    if str(choice) in options:
        return
    close = difflib.get_close_matches(str(choice), options, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else "."
    raise ConfigError(f"Unknown {group} {str(choice)!r}{hint} Valid choices for {group}=: {', '.join(options)}.")


def _agent_fields(agent_name: str) -> list[str]:
    from mnemax.experiment.agent_table import agent_entry

    fields = [f.name for f in dataclasses.fields(agent_entry(agent_name).config_class)]
    return ["name", *(f for f in fields if f not in ("total_steps", "backbone"))]


def check_overrides(overrides: Sequence[str]) -> list[str]:
    """Check Hydra command-line overrides against the config schema; return them ready for Hydra.

    Raises :class:`ConfigError` (one sentence) for an unknown top-level key,
    agent field or group choice. ``backbone.options.K=V`` and ``env.kwargs.K=V``
    come back as ``++`` (add-or-set) overrides; everything else is unchanged.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import OverrideType
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except HydraException as error:
        first = str(error).strip().splitlines()[0]
        raise ConfigError(f"Cannot read the command-line overrides: {first}") from error

    choices: dict[str, list[str]] = {}
    for o in parsed:
        if o.key_or_group in TOP_LEVEL_SECTIONS and o.type is not OverrideType.DEL:
            # backbone=gru,s5 under --multirun is a sweep: check every choice
            values = list(o.sweep_string_iterator()) if o.is_sweep_override() else [str(o.value())]
            choices[o.key_or_group] = values
            for choice in values:
                _check_choice(o.key_or_group, choice)
    agent_name = choices.get("agent", [_default_choice("agent")])[0]
    top_level = [f.name for f in dataclasses.fields(ExperimentConfig)] + list(TOP_LEVEL_SECTIONS)

    ready = []
    for override, text in zip(parsed, overrides):
        key = override.key_or_group
        if key.startswith("hydra.") or key == "hydra" or override.package is not None:
            ready.append(text)
            continue
        section, _, rest = key.partition(".")
        open_section = any(key.startswith(prefix + ".") for prefix in _OPEN_SECTIONS)
        if open_section and override.type is OverrideType.CHANGE:
            ready.append("++" + text)
            continue
        if override.type is not OverrideType.CHANGE:  # +key, ++key, ~key: Hydra and the converter judge them
            ready.append(text)
            continue
        if section not in top_level:
            raise ConfigError(unknown_key_message("", section, top_level))
        if rest and section == "agent":
            field = rest.partition(".")[0]
            if field in ("total_steps", "backbone"):
                raise ConfigError(f"Key 'agent.{field}' is set at the top level; write {field}=... instead.")
            if field not in _agent_fields(agent_name):
                raise ConfigError(unknown_key_message("agent", field, _agent_fields(agent_name)))
        elif rest and section == "backbone" and rest.partition(".")[0] not in ("name", "features", "options"):
            raise ConfigError(unknown_key_message("backbone", rest, ["name", "features", "options"]))
        elif rest and section == "env" and rest.partition(".")[0] not in ("name", "kwargs"):
            raise ConfigError(unknown_key_message("env", rest, ["name", "kwargs"]))
        elif rest and section not in TOP_LEVEL_SECTIONS:
            raise ConfigError(f"Key {section!r} is a single value, so {key!r} does not exist; write {section}=VALUE.")
        ready.append(text)
    return ready


def compose(overrides: Sequence[str] = ()) -> Any:
    """The composed ``DictConfig`` for ``overrides``, as ``scripts/train.py`` would see it (without running)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    ready = check_overrides(overrides)
    register_env_configs()
    GlobalHydra.instance().clear()
    from hydra.errors import HydraException

    with initialize_config_module(config_module=CONFIG_MODULE, version_base=None):
        try:
            return hydra_compose(config_name=CONFIG_NAME, overrides=ready)
        except HydraException as error:
            raise ConfigError(" ".join(str(error).split("\n")[0].split())) from error


def to_run_config(cfg: Any) -> RunConfig:
    """A composed ``DictConfig`` -> :class:`RunConfig` (interpolations resolved, every key checked)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        plain = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as error:
        raise ConfigError(f"Cannot resolve the config: {str(error).splitlines()[0]}") from error
    return run_config_from_dict(plain)


def load_run_config(overrides: Sequence[str] = ()) -> RunConfig:
    """Compose ``mnemax.configs`` with ``overrides`` and convert it: the typed config ``train.py`` would run."""
    return to_run_config(compose(overrides))


__all__ = [
    "CONFIG_MODULE",
    "CONFIG_NAME",
    "NO_BACKBONE",
    "check_overrides",
    "compose",
    "configs_dir",
    "group_options",
    "load_run_config",
    "register_env_configs",
    "to_run_config",
]
