"""Typed configs at the boundary: a composed Hydra config -> frozen dataclasses.

Hydra composes ``configs/config.yaml`` with one option from each group
(``agent/``, ``backbone/``, ``env/``, ``worldmodel/``) and the command-line overrides. Nothing
downstream sees that dictionary: :func:`run_config_from_dict` converts it once
into a :class:`RunConfig` of frozen (hashable, jit-static) dataclasses, and
every mistake is reported there, before anything compiles, as one
:class:`ConfigError` sentence naming the key and the valid choices.

The conversion is generic over dataclass fields (:func:`build_dataclass`):
an agent's config class (from :mod:`mnemax.agents.registry`) and a world
model's (from :mod:`mnemax.worldmodels.registry`) are all it needs to know
about them. Each config class checks its values when it is built, so a
config that exists is valid, and this conversion is the one place a run's
values are checked.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from mnemax.agents.registry import agent_entry
from mnemax.backbones import BackboneSpec
from mnemax.configs.choices import unknown_name_message
from mnemax.worldmodels.registry import world_model_entry, world_model_name

NO_BACKBONE = "none"
"""The backbone option that means "feed-forward": the agent config's ``backbone`` becomes ``None``."""

LOGGERS = ("tensorboard", "wandb")

MAX_TOTAL_STEPS = 2**31 - 1
"""Env steps per seed a run may take: step counters are int32 on the device."""

POSITIVE_ENV_KWARGS = ("max_steps_in_episode", "episode_length")
"""Env options that count steps, so must be positive integers."""


class ConfigError(ValueError):
    """A config value or key is wrong; the message is one sentence naming the key and the fix."""


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    """An environment as configs name it: ``mnemax.envs.make(name, **dict(kwargs))``.

    ``kwargs`` is a sorted tuple of ``(key, value)`` pairs so the spec hashes.
    """

    name: str
    kwargs: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        for key, value in self.kwargs:
            if key in POSITIVE_ENV_KWARGS and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(f"Key 'env.kwargs.{key}' counts steps and must be a positive integer, got {value!r}.")


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """The top-level keys of ``configs/config.yaml``: what to run, not how the agent learns.

    Attributes:
      name: run name; the run folder is ``runs/<timestamp>-<name>``.
      seed: the root seed; seed ``i`` of the vmapped batch uses ``fold_in(PRNGKey(seed), i)``,
        so it draws the same stream whatever ``seeds`` is.
      seeds: number of independent seeds trained together under ``jax.vmap``.
      total_steps: environment steps per seed (``2e6`` is accepted and becomes ``2000000``).
      run_dir: the run folder; ``None`` means ``runs/<timestamp>-<name>``.
      resume: continue from the latest checkpoint in ``run_dir`` (or, with ``run_dir``
        unset, in the newest ``runs/*-<name>`` folder).
      checkpoint_every: updates between checkpoints (0: only the final one).
      keep_checkpoints: how many recent checkpoints to keep on disk.
      log_every: updates per compiled chunk, i.e. between two host syncs
        (progress bar, metrics.csv, loggers); ``None`` picks about 100 chunks per run.
      loggers: any of ``tensorboard`` and ``wandb``, written beside the run folder's own files.
      progress: show a progress bar (a plain line every few seconds when not on a terminal).
    """

    name: str = "run"
    seed: int = 0
    seeds: int = 1
    total_steps: int = 100_000
    run_dir: str | None = None
    resume: bool = False
    checkpoint_every: int = 0
    keep_checkpoints: int = 3
    log_every: int | None = None
    loggers: tuple[str, ...] = ()
    progress: bool = True

    def __post_init__(self) -> None:
        for key in ("seeds", "total_steps"):
            if getattr(self, key) < 1:
                raise ConfigError(f"Key '{key}' must be at least 1, got {getattr(self, key)}.")
        if self.total_steps > MAX_TOTAL_STEPS:
            raise ConfigError(
                f"Key 'total_steps' is {self.total_steps:.3g}, more than the {MAX_TOTAL_STEPS} env steps a run can count; lower it."
            )
        for key in ("checkpoint_every", "keep_checkpoints"):
            if getattr(self, key) < 0:
                raise ConfigError(f"Key '{key}' must be 0 or more, got {getattr(self, key)}.")
        if self.log_every is not None and self.log_every < 1:
            raise ConfigError(f"Key 'log_every' must be at least 1 or null (automatic), got {self.log_every}.")
        unknown = [name for name in self.loggers if name not in LOGGERS]
        if unknown:
            raise ConfigError(f"Unknown logger {unknown[0]!r} in 'loggers'; valid loggers: {', '.join(LOGGERS)}.")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything one run needs, typed: the experiment keys, the agent's own config, the env."""

    experiment: ExperimentConfig
    agent_name: str
    agent: Any
    env: EnvSpec

    @property
    def backbone(self) -> BackboneSpec | None:
        """The agent's sequence core: its own ``backbone`` field, or its world model's."""
        if hasattr(self.agent, "backbone"):
            return self.agent.backbone
        return getattr(getattr(self.agent, "world_model", None), "backbone", None)


# --------------------------------------------------------------------------- generic conversion


def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "null"
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(arm) for arm in typing.get_args(tp))
    if origin is typing.Literal:
        return "one of " + ", ".join(map(repr, typing.get_args(tp)))
    if origin in (tuple, list, Sequence):
        return "a list"
    if origin in (dict, Mapping) or _is_pairs(tp):
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(tp, getattr(tp, "__name__", str(tp)))


def _is_pairs(tp: Any) -> bool:
    """``tuple[tuple[str, X], ...]``: a hashable mapping, written in YAML as a mapping."""
    if typing.get_origin(tp) is not tuple:
        return False
    args = typing.get_args(tp)
    if len(args) != 2 or args[1] is not Ellipsis or typing.get_origin(args[0]) is not tuple:
        return False
    inner = typing.get_args(args[0])
    return len(inner) == 2 and inner[0] is str


def _frozen(value: Any) -> Any:
    """Lists -> tuples and mappings -> sorted pairs, recursively, so ``Any`` values hash."""
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _frozen(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return value


def _wrong_type(key: str, tp: Any, value: Any) -> ConfigError:
    return ConfigError(f"Key '{key}' expects {_type_name(tp)}, got {_describe(value)}.")


def _number_from_string(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def coerce(tp: Any, value: Any, key: str) -> Any:
    """Convert the plain YAML ``value`` to the field type ``tp``; raise :class:`ConfigError` if it cannot.

    Integers written as floats (``2e6``, ``1000.0``) become ints; an integer is
    accepted for a float; lists become tuples; a mapping becomes a nested
    dataclass or, for ``tuple[tuple[str, X], ...]`` fields, sorted pairs.
    """
    if tp is Any:
        return _frozen(value)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        arms = typing.get_args(tp)
        if value is None:
            if type(None) in arms:
                return None
            raise _wrong_type(key, tp, value)
        for arm in arms:
            if arm is type(None):
                continue
            try:
                return coerce(arm, value, key)
            except ConfigError:
                pass
        raise _wrong_type(key, tp, value)
    if origin is typing.Literal:
        if value in typing.get_args(tp):
            return value
        raise ConfigError(f"Key '{key}' must be {_type_name(tp)}, got {value!r}.")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _wrong_type(key, tp, value)
    if tp is int:
        number = _number_from_string(value) if isinstance(value, str) else value
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise _wrong_type(key, tp, value)
        if isinstance(number, float) and not (math.isfinite(number) and number.is_integer()):
            raise ConfigError(f"Key '{key}' expects an integer, got {value!r}, which is not a whole number.")
        return int(number)
    if tp is float:
        number = _number_from_string(value) if isinstance(value, str) else value
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise _wrong_type(key, tp, value)
        return float(number)
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        raise _wrong_type(key, tp, value)
    if _is_pairs(tp):
        if value is None:
            return ()
        if not isinstance(value, Mapping):
            raise _wrong_type(key, tp, value)
        value_type = typing.get_args(typing.get_args(tp)[0])[1]
        return tuple(sorted((str(k), coerce(value_type, v, f"{key}.{k}")) for k, v in value.items()))
    if origin is tuple:
        args = typing.get_args(tp)
        if isinstance(value, str) and args == (str, Ellipsis):
            value = [value]  # loggers=tensorboard means loggers=[tensorboard]
        if not isinstance(value, (list, tuple)):
            raise _wrong_type(key, tp, value)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(coerce(args[0], v, f"{key}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ConfigError(f"Key '{key}' expects a list of {len(args)} items, got {len(value)}.")
        return tuple(coerce(a, v, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):  # already built (a backbone passed down from the top level)
            return value
        if not isinstance(value, Mapping):
            raise _wrong_type(key, tp, value)
        return build_dataclass(tp, value, key)
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise _wrong_type(key, tp, value)


def unknown_key_message(path: str, key: str, valid: Sequence[str]) -> str:
    """``Unknown key 'agent.lerning_rate'; did you mean 'learning_rate'? Valid keys: ...``."""
    return unknown_name_message("key", key, valid, prefix=f"{path}." if path else "")


def build_dataclass(cls: type, values: Mapping[str, Any], path: str = "") -> Any:
    """Build the frozen dataclass ``cls`` from a plain mapping, checking every key and type.

    Keys missing from ``values`` take the field's default. ``path`` is the
    dotted prefix used in error messages (``"agent"``).
    """
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in values:
        if key not in fields:
            raise ConfigError(unknown_key_message(path, str(key), list(fields)))
    kwargs = {key: coerce(hints[key], value, f"{path}.{key}" if path else key) for key, value in values.items()}
    for name, field in fields.items():
        if name not in kwargs and field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            full = f"{path}.{name}" if path else name
            raise ConfigError(f"Key {full!r} is required and has no default; set it in the config or as {full}=VALUE.")
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as error:
        where = f"'{path}'" if path else "the config"
        raise ConfigError(f"Invalid {where}: {error}") from error


def to_plain(value: Any) -> Any:
    """A dataclass (or pairs, tuples) back to YAML-ready dicts and lists, the inverse of :func:`coerce`."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        hints = typing.get_type_hints(type(value))
        out = {}
        for field in dataclasses.fields(value):
            item = getattr(value, field.name)
            out[field.name] = dict((k, to_plain(v)) for k, v in item) if _is_pairs(hints[field.name]) else to_plain(item)
        return out
    if isinstance(value, tuple):
        return [to_plain(v) for v in value]
    return value


# --------------------------------------------------------------------------- the run config


TOP_LEVEL_SECTIONS = ("agent", "backbone", "env", "world_model")
FROM_TOP_LEVEL = ("total_steps", "backbone", "world_model")
"""Agent config fields filled from the top level of a run config, never set under ``agent``."""


def _section(values: Mapping[str, Any], key: str) -> dict[str, Any]:
    section = values.get(key)
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        raise ConfigError(f"Key {key!r} must be a mapping (pick it with {key}=NAME), got {_describe(section)}.")
    return dict(section)


def backbone_from_dict(values: Mapping[str, Any]) -> BackboneSpec | None:
    """``{name, features, options}`` -> :class:`BackboneSpec` (``name: none`` -> ``None``), options checked."""
    from mnemax.backbones import make, names

    allowed = ("name", "features", "options")
    # Named sizes and the leaderboard's changes are for scripts (composition.backbone_size, experiment/leaderboard.py).
    values = {k: v for k, v in values.items() if k not in ("sizes", "leaderboard")}
    for key in values:
        if key not in allowed:
            raise ConfigError(unknown_key_message("backbone", str(key), allowed))
    name = coerce(str, values.get("name", NO_BACKBONE), "backbone.name")
    if name == NO_BACKBONE:
        return None
    if name not in names():
        raise ConfigError(unknown_name_message("backbone", name, [NO_BACKBONE, *names()]))
    features = coerce(int, values.get("features", 128), "backbone.features")
    if features < 1:
        raise ConfigError(f"Key 'backbone.features' is the backbone's output width and must be at least 1, got {features}.")
    options = coerce(tuple[tuple[str, Any], ...], values.get("options") or {}, "backbone.options")
    try:
        make(name, features, **dict(options))
    except (TypeError, ValueError) as error:
        raise ConfigError(f"In 'backbone.options': {error}") from error
    return BackboneSpec(name=name, features=features, options=options)


def env_from_dict(values: Mapping[str, Any] | str) -> EnvSpec:
    """``{name, kwargs}`` (or just the name) -> :class:`EnvSpec`."""
    if isinstance(values, str):
        values = {"name": values}
    return build_dataclass(EnvSpec, values, "env")


def world_model_from_dict(values: Mapping[str, Any], backbone: BackboneSpec | None) -> Any:
    """``{name, <fields>}`` -> the registered world model's config; ``backbone`` (if set) goes to its ``backbone`` field."""
    values = dict(values)
    name = coerce(str, values.pop("name", "rssm"), "world_model.name")
    try:
        config_class = world_model_entry(name).config_class
    except ValueError as error:
        raise ConfigError(str(error)) from error
    if "backbone" in values:
        raise ConfigError("Key 'world_model.backbone' is set at the top level; write backbone=NAME (and backbone.features=...) instead.")
    fields = {f.name for f in dataclasses.fields(config_class)}
    if backbone is not None and "backbone" in fields:
        values["backbone"] = backbone
    return build_dataclass(config_class, values, "world_model")


def _agent_values(agent_name: str, agent_values: Mapping[str, Any], derived: Mapping[str, Any]) -> dict[str, Any]:
    """``agent: {...}`` with the top-level values its config class takes; every key checked."""
    fields = {f.name for f in dataclasses.fields(agent_entry(agent_name).config_class)}
    for key in agent_values:
        if key in FROM_TOP_LEVEL:
            raise ConfigError(f"Key 'agent.{key}' is set at the top level; write {key}=... instead of agent.{key}=....")
        if key not in fields:
            raise ConfigError(unknown_key_message("agent", str(key), sorted(fields - set(FROM_TOP_LEVEL))))
    return {**agent_values, **{k: v for k, v in derived.items() if k in fields}}


def run_config_from_dict(values: Mapping[str, Any]) -> RunConfig:
    """Convert a composed config (plain dicts, interpolations resolved) into a :class:`RunConfig`.

    Layout: the :class:`ExperimentConfig` keys at the top level, plus
    ``agent: {name, <agent config fields>}``, ``backbone: {name, features, options}``,
    ``world_model: {name, <world-model config fields>}`` and ``env: {name, kwargs}``.
    ``total_steps`` and the world model are set on the agent config if its class
    has those fields; the backbone on the agent config's ``backbone`` field, or
    else on its world model's. The agent's config class comes from
    :mod:`mnemax.agents.registry`; each config is built once, and building it checks it.
    """
    values = dict(values)
    agent_values = _section(values, "agent")
    backbone_values = _section(values, "backbone")
    env_values = values.get("env") if isinstance(values.get("env"), str) else _section(values, "env")
    top = {k: v for k, v in values.items() if k not in TOP_LEVEL_SECTIONS}
    experiment_fields = [f.name for f in dataclasses.fields(ExperimentConfig)]
    for key in top:
        if key not in experiment_fields:
            raise ConfigError(unknown_key_message("", str(key), [*experiment_fields, *TOP_LEVEL_SECTIONS]))
    experiment = build_dataclass(ExperimentConfig, top)

    agent_name = coerce(str, agent_values.pop("name", "ppo"), "agent.name")
    try:
        config_class = agent_entry(agent_name).config_class
    except ValueError as error:
        raise ConfigError(str(error)) from error
    agent_fields = {f.name for f in dataclasses.fields(config_class)}
    backbone = backbone_from_dict(backbone_values)
    derived: dict[str, Any] = {"total_steps": experiment.total_steps}
    if "backbone" in agent_fields:
        derived["backbone"] = backbone
    if "world_model" in agent_fields:
        derived["world_model"] = world_model_from_dict(_section(values, "world_model"), backbone)
    elif backbone is not None and "backbone" not in agent_fields:
        raise ConfigError(f"Agent {agent_name!r} takes no backbone; use backbone={NO_BACKBONE}.")
    agent = build_dataclass(config_class, _agent_values(agent_name, agent_values, derived), "agent")
    return RunConfig(experiment=experiment, agent_name=agent_name, agent=agent, env=env_from_dict(env_values))


def run_config_to_dict(config: RunConfig) -> dict[str, Any]:
    """The inverse of :func:`run_config_from_dict`: what the run folder's ``config.yaml`` holds."""
    agent = to_plain(config.agent)
    agent.pop("total_steps", None)
    backbone = agent.pop("backbone", None)
    world_model = agent.pop("world_model", None)
    out = to_plain(config.experiment)
    out["agent"] = {"name": config.agent_name, **agent}
    if world_model is not None:
        backbone = world_model.pop("backbone", backbone)
        out["world_model"] = {"name": world_model_name(config.agent.world_model), **world_model}
    out["backbone"] = {"name": NO_BACKBONE} if backbone is None else backbone
    out["env"] = to_plain(config.env)
    return out


# Keys that change how a run is watched or stored, never what it computes.
_NOT_HASHED = ("name", "run_dir", "resume", "checkpoint_every", "keep_checkpoints", "log_every", "loggers", "progress")


def config_hash(config: RunConfig) -> str:
    """A short hash of everything that determines the numbers (agent, backbone, env, seeds, budget).

    Stored with each checkpoint so that resuming under another config is refused.
    """
    plain = run_config_to_dict(config)
    for key in _NOT_HASHED:
        plain.pop(key, None)
    text = json.dumps(plain, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


OPEN_MAPPINGS = ("kwargs",)
"""Config mappings whose keys the user chooses (an env's keyword arguments): compared key by key in full. A core's
``options`` are stored whole (every field the core's YAML lists), so an option absent from a stored config is one
added since, which keeps its default as a new field does."""


def stored_config_changes(stored: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """What differs between a run's stored plain config and ``current``, as :func:`config_difference` lists it.

    Keys that do not change the numbers (``name``, ``run_dir``, logging, ...)
    are left out, and so are keys the stored config does not have: fields
    added to mnemax after the run was written, which keep their defaults, so
    an upgrade does not orphan finished runs and checkpoints (a new field's
    default must therefore keep the old behaviour). Inside
    :data:`OPEN_MAPPINGS` every key counts.
    """

    def plain(config: Mapping[str, Any]) -> dict[str, Any]:
        kept = {key: value for key, value in config.items() if key not in _NOT_HASHED}
        return json.loads(json.dumps(kept, sort_keys=True, default=repr))  # tuples as lists, as YAML reads them

    def known(current: Any, stored: Any) -> Any:
        if isinstance(current, dict) and isinstance(stored, dict):
            return {
                key: value if key in OPEN_MAPPINGS else known(value, stored[key])
                for key, value in current.items()
                if key in stored
            }
        return current

    stored = plain(stored)
    return config_difference(stored, known(plain(current), stored))


def config_difference(a: Mapping[str, Any], b: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two plain config dicts (for refusal messages)."""
    keys = sorted(set(a) | set(b))
    out = []
    for key in keys:
        full = f"{prefix}{key}"
        left, right = a.get(key), b.get(key)
        if isinstance(left, Mapping) and isinstance(right, Mapping):
            out.extend(config_difference(left, right, full + "."))
        elif left != right:
            out.append(f"{full} ({left!r} -> {right!r})")
    return out
