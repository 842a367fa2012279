"""World models by name: ``configs/worldmodel/<name>.yaml`` picks one, ``world_model.<field>=...`` sets it.

A world model registers its builder with its frozen config class::

    @register_world_model("rssm", WorldModelConfig)
    def build_latent_world_model(config, obs_shape, action_size) -> WorldModel: ...

The config class is what the experiment layer converts ``world_model: {name,
...}`` into (every field checked); the builder makes the
:class:`~mnemax.worldmodels.protocol.WorldModel` for an env's observations and
actions (:func:`make_world_model`). A config class with a ``backbone`` field
receives the run's top-level ``backbone``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

from mnemax.configs.choices import unknown_name_message

Builder = Callable[[Any, tuple[int, ...], int], Any]
"""``build(config, obs_shape, action_size) -> WorldModel``."""


class WorldModelEntry(NamedTuple):
    """A registered world model: its config class and its builder."""

    config_class: type
    build: Builder


_WORLD_MODELS: dict[str, WorldModelEntry] = {}


def register_world_model(name: str, config_class: type) -> Callable[[Builder], Builder]:
    """Decorator on ``build(config, obs_shape, action_size)``: ``world_model=<name>`` builds configs of ``config_class``."""
    if not (dataclasses.is_dataclass(config_class) and config_class.__dataclass_params__.frozen):
        raise TypeError(f"A world model's config must be a frozen dataclass, got {config_class!r}.")

    def add(build: Builder) -> Builder:
        taken = _WORLD_MODELS.get(name)
        if taken is not None and taken.config_class is not config_class:
            raise ValueError(f"A world model named {name!r} is already registered.")
        _WORLD_MODELS[name] = WorldModelEntry(config_class, build)
        return build

    return add


def world_model_names() -> list[str]:
    """The registered world-model names, sorted."""
    return sorted(_WORLD_MODELS)


def world_model_entry(name: str) -> WorldModelEntry:
    """The entry registered as ``name``; an unknown name is one sentence with the valid ones."""
    if name not in _WORLD_MODELS:
        raise ValueError(unknown_name_message("world model", name, _WORLD_MODELS))
    return _WORLD_MODELS[name]


def world_model_name(config: Any) -> str:
    """The name under which ``config``'s class is registered."""
    for name, entry in _WORLD_MODELS.items():
        if type(config) is entry.config_class:
            return name
    raise TypeError(
        f"{type(config).__name__} is not a registered world-model config; register its builder with "
        "@register_world_model(name, ConfigClass)."
    )


def make_world_model(config: Any, obs_shape: tuple[int, ...], action_size: int) -> Any:
    """The world model ``config`` describes, for observations of ``obs_shape`` and actions of width ``action_size``."""
    return world_model_entry(world_model_name(config)).build(config, tuple(int(d) for d in obs_shape), int(action_size))
