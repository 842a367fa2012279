"""Hydra composition of ``mnemax.configs``: every env name as a config option, and overrides checked first.

``env=<name>`` works for every name :func:`mnemax.envs.names` lists (every
gymnax id and every ``popgym/...`` port) without a YAML file per env:
:func:`register_configs` stores ``{name: <name>, kwargs: {}}`` for each in
Hydra's ``ConfigStore`` under group ``env``. A YAML file in ``configs/env/``
with the same name (``configs/env/popgym/RepeatPreviousEasy.yaml``) takes its
place, for envs whose defaults a config should pin. A user's own env needs no
entry: ``env=my_package.my_module:MyEnv`` (or ``env.name=...``).

The world model is the group ``configs/worldmodel/`` placed at the key
``world_model``: ``world_model=rssm`` picks the option and
``world_model.cnn_depth=16`` sets a field of it.

:func:`check_overrides` reads the command line before Hydra does, so that a
misspelt key or option is one sentence with the valid choices rather than
Hydra's multi-line composition error; it also turns ``backbone.options.K=V``
and ``env.kwargs.K=V`` into ``++`` overrides, so any option of the chosen
backbone or env can be set whether or not the YAML lists it.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
from pathlib import Path
from typing import Any, Sequence

from mnemax.agents.registry import agent_entry, agent_names
from mnemax.backbones import BackboneSpec
from mnemax.configs.choices import unknown_name_message
from mnemax.experiment.config import (
    FROM_TOP_LEVEL,
    NO_BACKBONE,
    TOP_LEVEL_SECTIONS,
    ConfigError,
    ExperimentConfig,
    RunConfig,
    run_config_from_dict,
    to_plain,
    unknown_key_message,
)
from mnemax.worldmodels.registry import world_model_entry, world_model_names

CONFIG_MODULE = "mnemax.configs"
CONFIG_NAME = "config"
# Keys under these sections are free-form (checked when the backbone or env is built).
_OPEN_SECTIONS = ("backbone.options", "env.kwargs")
WORLD_MODEL_GROUP = "worldmodel"
"""The folder of world-model options; their package (the key they fill) is ``world_model``."""
GROUP_FOLDERS = {"agent": "agent", "backbone": "backbone", "env": "env", "world_model": WORLD_MODEL_GROUP}
"""Each section's config group folder in ``configs/``."""


def configs_dir() -> Path:
    """The directory of the YAML configs shipped inside the installed package."""
    return Path(str(importlib.resources.files(CONFIG_MODULE)))


def yaml_options(group: str) -> list[str]:
    """Options of a config group that have a YAML file (``popgym/RepeatFirstEasy`` for nested files)."""
    root = configs_dir() / group
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml")) if root.is_dir() else []


def backbone_yaml(name: str) -> dict[str, Any]:
    """The plain contents of ``configs/backbone/<name>.yaml``; an unknown name is one sentence with the choices."""
    from omegaconf import OmegaConf

    path = configs_dir() / "backbone" / f"{name}.yaml"
    if not path.exists():
        raise ConfigError(unknown_name_message("backbone", name, [o for o in yaml_options("backbone") if o != NO_BACKBONE]))
    return OmegaConf.to_container(OmegaConf.load(path))


def backbone_size(name: str, size: str, features: int) -> BackboneSpec:
    """The backbone ``name`` at the named size ``size`` of ``configs/backbone/<name>.yaml`` (its ``sizes:`` block).

    A size is a complete set of options over the backbone class's defaults, so
    scripts that compare backbones at one size name it instead of writing the
    options out; ``features`` is the width the script compares at.
    """
    sizes = backbone_yaml(name).get("sizes") or {}
    if size not in sizes:
        raise ConfigError(unknown_name_message("size", size, sizes, plural=f"sizes of backbone {name!r}"))
    return BackboneSpec(name, int(features), tuple(sorted((sizes[size] or {}).items())))


def env_options() -> list[str]:
    """Every ``env=`` choice: registered env names plus YAML-only ones."""
    from mnemax.envs import names

    return sorted(set(names()) | set(yaml_options("env")))


def group_options(group: str) -> list[str]:
    """The valid choices of ``agent=``, ``backbone=``, ``env=`` or ``world_model=``: YAML files and registered names."""
    if group == "env":
        return env_options()
    registered = {"agent": agent_names, "world_model": world_model_names}.get(group, list)()
    return sorted(set(yaml_options(GROUP_FOLDERS[group])) | set(registered))


def register_configs() -> None:
    """Make every registered env, agent and world model a group option, also without a YAML file.

    Stores ``{name, kwargs: {}}`` under group ``env`` for each env name, and
    ``{name, <field defaults>}`` under ``agent`` and ``worldmodel`` for each agent
    and world model, so ``agent.<field>=...`` sets any field. A YAML file of the
    same name wins.
    """
    from hydra.core.config_store import ConfigStore
    from mnemax.envs import names

    store = ConfigStore.instance()
    with_yaml = set(yaml_options("env"))
    for name in names():
        if name in with_yaml:
            continue
        folder, _, leaf = f"env/{name}".rpartition("/")
        store.store(group=folder, name=leaf, node={"name": name, "kwargs": {}}, provider="mnemax.envs")
    for section, registered in (("agent", agent_names()), ("world_model", world_model_names())):
        folder = GROUP_FOLDERS[section]
        for name in sorted(set(registered) - set(yaml_options(folder))):
            node = {"name": name, **_field_defaults((agent_entry if section == "agent" else world_model_entry)(name).config_class)}
            store.store(group=folder, name=name, node=node, package=section, provider="mnemax")


def _field_defaults(config_class: type) -> dict[str, Any]:
    """The config class's fields that have defaults, as YAML-ready values (fields filled from the top level left out)."""
    out = {}
    for field in dataclasses.fields(config_class):
        if field.name in FROM_TOP_LEVEL or not field.init:
            continue
        if field.default is not dataclasses.MISSING:
            out[field.name] = to_plain(field.default)
        elif field.default_factory is not dataclasses.MISSING:
            out[field.name] = to_plain(field.default_factory())
    return out


def _default_choice(group: str) -> str:
    from omegaconf import OmegaConf

    defaults = OmegaConf.to_container(OmegaConf.load(configs_dir() / f"{CONFIG_NAME}.yaml")).get("defaults", [])
    for item in defaults:
        if isinstance(item, dict) and GROUP_FOLDERS[group] in item:
            return str(item[GROUP_FOLDERS[group]])
    raise ConfigError(f"configs/{CONFIG_NAME}.yaml names no default for group {group!r}; pick one with {group}=NAME.")


def _check_choice(group: str, choice: Any) -> None:
    options = group_options(group)
    if str(choice) in options or (group == "env" and ":" in str(choice)):
        return
    raise ConfigError(unknown_name_message(group.replace("_", " "), str(choice), options, plural=f"choices for {group}="))


def _settable_fields(section: str, choice: str) -> list[str]:
    """The keys ``<section>.KEY=`` may set for the chosen agent or world model."""
    try:
        config_class = (agent_entry if section == "agent" else world_model_entry)(choice).config_class
    except ValueError as error:
        raise ConfigError(str(error)) from error
    return ["name", *(f.name for f in dataclasses.fields(config_class) if f.name not in FROM_TOP_LEVEL)]


def _ready_group_override(key: str, text: str) -> str:
    """A group choice as Hydra takes it: ``world_model=X`` picks ``worldmodel=X``; ``env=pkg.mod:Cls`` sets ``env.name``."""
    value = text.partition("=")[2]
    if key == "world_model":
        return f"{WORLD_MODEL_GROUP}={value}"
    if key == "env" and ":" in value:
        return f"env.name={value}"
    return text


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
    chosen = {section: choices.get(section, [None])[0] or _default_choice(section) for section in ("agent", "world_model")}
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
        if not rest and section in TOP_LEVEL_SECTIONS:
            ready.append(_ready_group_override(section, text))
            continue
        if rest and section in ("agent", "world_model"):
            field = rest.partition(".")[0]
            if field in FROM_TOP_LEVEL:
                raise ConfigError(f"Key '{section}.{field}' is set at the top level; write {field}=... instead.")
            valid = _settable_fields(section, chosen[section])
            if field not in valid:
                raise ConfigError(unknown_key_message(section, field, valid))
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
    register_configs()
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
    "backbone_size",
    "backbone_yaml",
    "CONFIG_NAME",
    "NO_BACKBONE",
    "check_overrides",
    "compose",
    "configs_dir",
    "group_options",
    "load_run_config",
    "register_configs",
    "to_run_config",
]
